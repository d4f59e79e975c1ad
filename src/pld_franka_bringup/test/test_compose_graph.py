"""The launch graph composed in one process (`pld run`'s core) on the simulated robot, end to end over
DDS: sim (lockstep) -> VLA server (a tiny random small VLA) -> residual actor -> sim, episodes run by the
episode manager and recorded by the recorder into a dataset that `pld dataset verify` accepts."""

from __future__ import annotations

import dataclasses
import gc
import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.ros

IMAGE_SIZE = 64
TIME_LIMIT = 12


@pytest.fixture
def tiny_graph_overrides(tiny_vla) -> dict[str, dict]:
    """Per node: what a test changes on top of the launch overrides (a random tiny VLA, short episodes)."""
    vla = {**tiny_vla, "image_size": IMAGE_SIZE}
    return {
        "sim_node": {"image_size": IMAGE_SIZE},
        "vla_server": {"checkpoint": "", "backend_options": json.dumps(vla), "every_n_steps": 4},
        "episode_manager": {"time_limit_steps": TIME_LIMIT, "abort_after_hold_s": 5.0},
    }


def compose(args, overrides: dict[str, dict]):
    from pld_franka_bringup.graph import build_graph

    specs = build_graph(args)
    return [dataclasses.replace(s, overrides={**s.overrides, **overrides.get(s.name, {})}) for s in specs]


def test_eval_episodes_over_the_graph_are_recorded_as_a_verified_dataset(
    ros_isolation: int, tmp_path: Path, tiny_graph_overrides
) -> None:
    from pld_franka_bringup.graph import GraphArgs
    from pld_franka_bringup.ros.compose import ComposedGraph, init_context, recording_idle
    from pld_residual.dataset.reader import read_episode
    from pld_residual.dataset.verify import verify_dataset

    dataset = tmp_path / "dataset"
    args = GraphArgs.from_strings(
        {
            "task": "pick_cube",
            "mode": "eval",
            "num_episodes": "2",
            "dataset_dir": str(dataset),
            "namespace": "t",
        }
    )
    context = init_context(domain_id=ros_isolation)
    try:
        with ComposedGraph(compose(args, tiny_graph_overrides), context) as graph:
            manager, recorder = graph.nodes["episode_manager"], graph.nodes["recorder"]
            assert gc.get_freeze_count() > 1000  # start-up objects out of the collector's walks
            assert set(graph.nodes) == {
                "sim_node",
                "vla_server",
                "residual_actor",
                "episode_manager",
                "recorder",
            }
            done = graph.spin_until(
                lambda: manager.last_result is not None and recording_idle(recorder), timeout_s=120
            )
            assert done, f"episodes did not finish: {manager.machine.status()}"
            result = manager.last_result
            sim_status = graph.nodes["sim_node"].driver.status()
    finally:
        import rclpy

        rclpy.try_shutdown(context=context)
    assert gc.get_freeze_count() == 0  # closed: collectable again
    assert result.episodes_run == 2 and result.aborted == 0
    report = verify_dataset(dataset)
    assert report["ok"] == 2 and not report["broken"], report
    index = json.loads((dataset / "index.json").read_text())
    records = index["episodes"] if isinstance(index, dict) else index
    assert [r["seed"] for r in records] == [0, 1]  # seed + i
    for record in records:
        assert record["cameras"] == ["side", "wrist"]  # learnt from the raw observation
        assert record["source"] == "eval" and record["task"] == "pick_cube" and record["t_base"] == 0
        episode = read_episode(dataset / record["bag"])
        assert record["length"] == TIME_LIMIT or record["success"]
        assert len(episode) == record["length"] and len(episode.proprio) == len(episode) + 1
        assert [phase for phase, _ in episode.phases] == [0, 2, 3]  # reset, residual (t_base 0), done
        assert episode.images["side"].shape[1:] == (IMAGE_SIZE, IMAGE_SIZE, 3)
        assert set(record["provenance"]) <= {"base", "hold"}  # no policy: the base passes through
    # lockstep: every command answered the newest observation (none dropped as stale mid-episode)
    assert sim_status["accepted"] + sim_status["holds"] >= 2 * TIME_LIMIT


def test_train_mode_learns_from_graph_episodes_publishes_params_and_checkpoints(
    ros_isolation: int, tmp_path: Path, tiny_graph_overrides
) -> None:
    """Warm-up episodes by the base, then probing episodes with the residual: the learner rebuilds every
    episode into replay, runs updates, publishes versioned parameters the actor applies, and leaves a
    checkpoint and a deployable `policy/`."""
    import yaml

    from pld_franka_bringup.graph import GraphArgs
    from pld_franka_bringup.ros.compose import ComposedGraph, init_context, recording_idle

    learn = tmp_path / "learn.yaml"
    learn.write_text(yaml.safe_dump({
        "task": "pick_cube", "warmup_episodes": 2, "offline_episodes": 2, "critic_pretrain_steps": 0,
        "agent": {"hidden": 16, "batch_size": 8, "updates_per_call": 2, "residual_axes": [0, 1, 5]},
    }))  # fmt: skip
    out = tmp_path / "learn"
    overrides = {
        **tiny_graph_overrides,
        "episode_manager": {
            **tiny_graph_overrides["episode_manager"],
            "warmup_episodes": 2,
            "probing_alpha": 0.5,
        },
        "learner": {"learn_config": str(learn), "out_dir": str(out), "publish_every_updates": 4},
        "residual_actor": {"agent_options": json.dumps({"hidden": 16, "residual_axes": [0, 1, 5]})},
    }
    args = GraphArgs.from_strings(
        {"task": "pick_cube", "mode": "train", "num_episodes": "5", "dataset_dir": str(tmp_path / "ds"),
         "namespace": "tr"}
    )  # fmt: skip
    context = init_context(domain_id=ros_isolation)
    try:
        with ComposedGraph(compose(args, overrides), context) as graph:
            manager, recorder, learner = (graph.nodes[n] for n in ("episode_manager", "recorder", "learner"))
            done = graph.spin_until(lambda: manager.last_result is not None and recording_idle(recorder), 180)
            assert done, f"episodes did not finish: {manager.machine.status()}"
            graph.spin_until(  # the learner thread's first compiles take tens of seconds on a busy CI
                lambda: learner.learner.counters.episodes >= 5 and learner.learner.version >= 2, 90
            )
            status = learner.learner.status()
            actor = graph.nodes["residual_actor"].actor.status()
    finally:
        import rclpy

        rclpy.try_shutdown(context=context)
    assert status["episodes"] == 5 and not status["episodes_skipped"], status
    assert status["env_steps"] == 5 * TIME_LIMIT  # every step of every episode rebuilt
    assert status["updates"] > 0 and status["params_version"] >= 2, status
    assert (actor["params_version"] or 0) >= 1 and actor["policy_loaded"], (
        actor["counters"],
        actor["last_error"],
        actor["params_pending"],
    )
    assert (out / "checkpoint" / "loop.json").is_file() and (out / "policy").is_dir()
    assert status["online"] > 0


def test_malformed_nan_and_wrong_size_messages_are_counted_and_dropped_and_episodes_go_on(
    ros_isolation: int, tmp_path: Path, tiny_graph_overrides
) -> None:
    """Bad messages on the graph's own topics mid-run: a NaN command (the sim refuses it and holds), chunks
    whose size disagrees with their header (the actor refuses them), observations with a wrong image size
    and mismatched proprio (the VLA server and the actor refuse them). Every node counts what it dropped
    and the episodes finish into a dataset that verifies."""
    import numpy as np
    from rclpy.node import Node
    from sensor_msgs.msg import Image

    from pld_franka_bringup.graph import GraphArgs
    from pld_franka_bringup.ros.compose import ComposedGraph, init_context, recording_idle
    from pld_interfaces.msg import ActionChunk, ActionCommand, Observation
    from pld_residual.dataset.verify import verify_dataset

    dataset = tmp_path / "dataset"
    args = GraphArgs.from_strings(
        {
            "task": "pick_cube",
            "mode": "eval",
            "num_episodes": "2",
            "dataset_dir": str(dataset),
            "namespace": "bad",
        }
    )
    context = init_context(domain_id=ros_isolation)
    try:
        with ComposedGraph(compose(args, tiny_graph_overrides), context) as graph:
            manager, recorder = graph.nodes["episode_manager"], graph.nodes["recorder"]
            vandal = Node("vandal", namespace="bad", context=context)
            graph.executor.add_node(vandal)
            commands = vandal.create_publisher(ActionCommand, "command", 10)
            chunks = vandal.create_publisher(ActionChunk, "action_chunk", 10)
            observations = vandal.create_publisher(Observation, "observation", 10)
            assert graph.spin_until(lambda: manager.machine.episode is not None, 60)
            for _ in range(3):
                commands.publish(ActionCommand(command=[float("nan")] * 7))
                chunks.publish(ActionChunk(horizon=4, action_dim=7, actions=[0.0] * 5))
                bad = Observation(camera_names=["side"], images=[Image(height=3, width=3, encoding="rgb8")])
                bad.proprio_names, bad.proprio = ["a", "b"], np.zeros(3, np.float32).tolist()
                observations.publish(bad)
                graph.spin_until(lambda: False, 0.2)
            done = graph.spin_until(lambda: manager.last_result is not None and recording_idle(recorder), 120)
            assert done, manager.machine.status()
            sim = graph.nodes["sim_node"].driver.status()
            actor = graph.nodes["residual_actor"].actor.status()["counters"]
            vla = graph.nodes["vla_server"].server.status()
            result = manager.last_result
            graph.executor.remove_node(vandal)
            vandal.destroy_node()
    finally:
        import rclpy

        rclpy.try_shutdown(context=context)
    assert sim["rejected"] >= 3, sim
    # the actor keeps the newest observation and chunk only (depth 1): a bad one may be replaced unseen
    assert actor["invalid_chunks"] >= 1 and actor["invalid_observations"] >= 1, actor
    assert vla["rejected_invalid"] >= 1, vla  # keep-last-1: a newer observation may replace a bad one
    assert result.episodes_run == 2
    assert not verify_dataset(dataset)["broken"]


def test_run_episodes_action_runs_a_batch_with_feedback_and_a_result(
    ros_isolation: int, tmp_path: Path, tiny_graph_overrides
) -> None:
    """num_episodes:=0: the episode manager waits; a run_episodes goal runs its batch (mode, seed) and
    answers with the counts, after feedback per phase change; a second goal during a batch is refused."""
    from rclpy.action import ActionClient
    from rclpy.node import Node

    from pld_franka_bringup.graph import GraphArgs
    from pld_franka_bringup.ros.compose import ComposedGraph, init_context
    from pld_interfaces.action import RunEpisodes

    args = GraphArgs.from_strings(
        {"task": "pick_cube", "mode": "train", "num_episodes": "0", "record": "false", "learner": "remote",
         "namespace": "act"}
    )  # fmt: skip
    context = init_context(domain_id=ros_isolation)
    try:
        with ComposedGraph(compose(args, tiny_graph_overrides), context) as graph:
            client_node = Node("goal_sender", namespace="act", context=context)
            graph.executor.add_node(client_node)
            client = ActionClient(client_node, RunEpisodes, "run_episodes")
            assert graph.spin_until(lambda: client.server_is_ready(), 30)
            graph.spin_until(lambda: False, 1.0)
            assert graph.nodes["episode_manager"].machine.counters.episodes == 0  # it waited for a goal
            feedback: list = []
            goal = RunEpisodes.Goal(
                task="pick_cube", num_episodes=2, mode=RunEpisodes.Goal.MODE_EVAL, seed=500
            )
            sent = client.send_goal_async(goal, feedback_callback=lambda f: feedback.append(f.feedback))
            assert graph.spin_until(sent.done, 30)
            handle = sent.result()
            assert handle.accepted
            second = client.send_goal_async(goal)
            assert graph.spin_until(second.done, 30) and not second.result().accepted
            result_future = handle.get_result_async()
            assert graph.spin_until(result_future.done, 120)
            result = result_future.result().result
            graph.executor.remove_node(client_node)
            client.destroy()
            client_node.destroy_node()
    finally:
        import rclpy

        rclpy.try_shutdown(context=context)
    assert result.episodes_run == 2 and 0.0 <= result.success_rate <= 1.0 and "done" in result.message
    assert {f.phase for f in feedback} >= {0, 2, 3}  # reset, residual (eval: T_base 0), done
