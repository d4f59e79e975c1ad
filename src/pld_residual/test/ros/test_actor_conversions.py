"""Observation / ActionChunk messages -> actor inputs, and actor steps -> ActionCommand."""

from __future__ import annotations

import array

import numpy as np
import pytest

pytestmark = pytest.mark.ros


def chunk_msg(horizon: int = 2, action_dim: int = 7, values: int | None = None):
    from builtin_interfaces.msg import Time
    from std_msgs.msg import Header

    from pld_interfaces.msg import ActionChunk

    n = horizon * action_dim if values is None else values
    return ActionChunk(
        header=Header(stamp=Time(sec=3, nanosec=5), frame_id="base"),
        horizon=horizon,
        action_dim=action_dim,
        actions=array.array("f", np.arange(n, dtype=np.float32).tobytes()),
        features=array.array("f", [0.5, -0.5]),
        model_id="hold",
    )


def test_chunks_become_row_major_arrays_and_malformed_ones_name_the_field() -> None:
    from pld_residual.ros.actor_conversions import chunk_input_from_msg

    chunk = chunk_input_from_msg(chunk_msg())
    assert chunk.actions.shape == (2, 7) and chunk.actions[1, 0] == 7.0 and chunk.horizon == 2
    assert chunk.stamp_ns == 3_000_000_005 and chunk.features.tolist() == [0.5, -0.5]
    for msg, field in [
        (chunk_msg(action_dim=6), "action_dim"),
        (chunk_msg(horizon=0), "horizon"),
        (chunk_msg(values=13), "actions"),
    ]:
        with pytest.raises(ValueError, match=rf"action_chunk\.{field}"):
            chunk_input_from_msg(msg)


def test_observations_keep_proprio_stamp_and_episode() -> None:
    from pld_residual.ros.actor_conversions import observation_input_from_msg
    from pld_sim.ros.conversions import nanoseconds_to_time, observation_to_msg

    msg = observation_to_msg(
        {"proprio": np.array([0.5, 0.0, 0.3])},
        ["tcp_x", "tcp_y", "tcp_z"],
        nanoseconds_to_time(7),
        "base",
        2,
        9,
    )
    obs = observation_input_from_msg(msg)
    assert obs.proprio.tolist() == pytest.approx([0.5, 0.0, 0.3]) and obs.stamp_ns == 7
    assert (obs.episode_id, obs.step, obs.frame_id) == (2, 9, "base")
    msg.proprio_names = ["tcp_x"]
    with pytest.raises(ValueError, match=r"observation\.proprio"):
        observation_input_from_msg(msg)


def test_steps_become_commands_with_provenance() -> None:
    from pld_interfaces.msg import ActionCommand
    from pld_residual.actor.core import ActorStep
    from pld_residual.actor.safety import Intervention, Provenance
    from pld_residual.ros.actor_conversions import actor_step_to_msg
    from pld_sim.ros.conversions import nanoseconds_to_time

    step = ActorStep(
        command=np.array([0.01, 0, 0, 0, 0, 0, 1.0]),
        base=np.array([0.02, 0, 0, 0, 0, 0, 1.0]),
        residual=np.array([-0.5, 0, 0, 0, 0, 0, 0]),
        provenance=Provenance.RESIDUAL,
        interventions=(Intervention.CLIP_DELTA,),
        episode_id=4,
        step=11,
        frame_id="base",
    )
    msg = actor_step_to_msg(step, nanoseconds_to_time(1_500_000_000))
    assert msg.provenance == ActionCommand.PROVENANCE_RESIDUAL and (msg.episode_id, msg.step) == (4, 11)
    assert msg.command[0] == pytest.approx(0.01) and msg.base[0] == pytest.approx(0.02)
    assert msg.residual[0] == -0.5 and msg.header.frame_id == "base"
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (1, 500_000_000)
