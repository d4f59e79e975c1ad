"""The ROS half of `pld bench graph`: the PLD graph composed in this process, timed by a probe in ANOTHER.

Why a separate probe process: the composed graph (sim, VLA server, residual actor, episode manager) shares
one interpreter, its GIL and its executor threads. A probe there would receive late whenever the VLA or
the renderer holds the GIL, so it would measure its own starvation, and its callbacks would slow the graph
it measures. In its own process it is what a robot driver is: an independent DDS subscriber. Both
processes read the same system-wide monotonic clock (Linux CLOCK_MONOTONIC), so the window the graph
process marks and the receive times the probe records compare directly.

Per mode (`realtime`, `lockstep`): start the probe (`observation`, `command`, `action_chunk`), compose the
graph for `mode:=eval record:=false` with many episodes, wait until commands carry base actions, settle,
then measure for `seconds`; counters of the nodes are read before and after (deltas). The graph runs in
this process (`pld run`'s composition), or with `processes` one process per node as `ros2 launch` starts
them (`node_processes`); then the counters come from the nodes' latched status topics, at most one status
period (1 s) old. The bare pair: a plain rclpy publisher of the same Observation (the sim's last one:
same cameras, image size, proprio) at 20 Hz in this process, the probe subscribing in its own: header
stamp (monotonic) -> receive time.

The probe: `python -m pld_franka_bringup.ros.bench_graph --namespace NS --out FILE [--bare]`; it prints
`ready` once subscribed, records until a line or EOF on stdin, writes FILE (JSON) and exits.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import rclpy
from rclpy.clock import Clock, ClockType
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import serialize_message
from std_msgs.msg import String

from pld_franka_bringup.graph import GraphArgs, build_graph
from pld_franka_bringup.timing_stats import (
    ChunkRecord,
    CommandRecord,
    ObservationRecord,
    counter_deltas,
    summarize_mode,
    summary_ms,
)
from pld_interfaces.msg import ActionChunk, ActionCommand, Observation
from pld_sim.ros.conversions import nanoseconds_to_time, observation_to_msg, time_to_nanoseconds

PROBE_QOS = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)  # matches the reliable publishers
LAST_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
LATCHED_QOS = QoSProfile(  # the nodes' status topics
    depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)
BARE_TOPIC = "bare_observation"
NUM_EPISODES = 10_000  # "until the time is up": the run stops at the end of the window
SIM_COUNTERS = ("rejected", "stale_commands", "holds")
ACTOR_COUNTERS = (
    "holds",
    "stale_observation",
    "stale_chunk",
    "invalid_observations",
    "invalid_chunks",
    "policy_error",
)
# The nodes' latched JSON status topics, for a graph in other processes.
STATUS_TOPICS = {
    "sim": "sim_status",
    "actor": "actor_status",
    "vla": "vla_status",
    "episodes": "episode_status",
}
VLA_COUNTERS = ("dropped_stale", "dropped_not_ready", "rejected_invalid", "failed")


@dataclasses.dataclass
class ModeRun:
    """What one mode's run hands back: the summary, and the sim's last observation (for the bare pair)."""

    summary: dict[str, Any]
    sample: Observation | None = None


# ---------------------------------------------------------------------- the probe process


class Probe:
    """The probe child process: started subscribed, stopped with its records."""

    def __init__(self, namespace: str, *, bare: bool = False, ready_timeout_s: float = 60.0) -> None:
        fd, name = tempfile.mkstemp(prefix="pld-bench-graph-", suffix=".json")
        os.close(fd)
        self.out = Path(name)
        command = [sys.executable, "-m", __name__, "--namespace", namespace, "--out", str(self.out)]
        self.process = subprocess.Popen(
            [*command, *(["--bare"] if bare else [])],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        line = _readline(self.process, ready_timeout_s)
        if line.strip() != "ready":
            self.kill()
            raise RuntimeError(f"graph probe did not start (said {line!r}): {self._stderr()}")

    def stop(self, timeout_s: float = 30.0) -> dict[str, Any]:
        """End the recording; the records as the probe wrote them."""
        try:
            assert self.process.stdin is not None
            self.process.stdin.write("stop\n")
            self.process.stdin.close()
            self.process.wait(timeout=timeout_s)
        except (subprocess.TimeoutExpired, BrokenPipeError) as exc:
            self.kill()
            raise RuntimeError(f"graph probe did not stop: {exc}: {self._stderr()}") from None
        if self.process.returncode != 0:
            raise RuntimeError(f"graph probe exited with {self.process.returncode}: {self._stderr()}")
        try:
            return json.loads(self.out.read_text())
        finally:
            self.out.unlink(missing_ok=True)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.out.unlink(missing_ok=True)

    def _stderr(self) -> str:
        try:
            _, err = self.process.communicate(timeout=5)
        except (subprocess.TimeoutExpired, ValueError):
            return ""
        return (err or "")[-3000:]


def _readline(process: subprocess.Popen, timeout_s: float) -> str:
    """One stdout line of `process`, or '' after the timeout (a thread: pipes have no timeout)."""
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(process.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout_s)
    return lines[0] if lines else ""


def probe_main(argv: list[str] | None = None) -> int:
    """The probe process: record receive times until told to stop, then write them as JSON."""
    parser = argparse.ArgumentParser(description="pld bench graph probe (started by the benchmark)")
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--bare", action="store_true", help="only the bare publisher's topic")
    parser.add_argument("--max-seconds", type=float, default=900.0, help="stop on its own after this")
    options = parser.parse_args(argv)
    records: dict[str, list] = {"observations": [], "commands": [], "chunks": [], "bare": []}
    context = rclpy.Context()
    rclpy.init(args=[], context=context)
    node = Node("pld_bench_graph_probe", namespace=options.namespace, context=context)
    now = time.monotonic_ns

    def on_observation(msg: Observation) -> None:
        recv = now()
        records["observations"].append(
            [recv, time_to_nanoseconds(msg.header.stamp), int(msg.episode_id), int(msg.step)]
        )

    def on_command(msg: ActionCommand) -> None:
        recv = now()
        stamp = time_to_nanoseconds(msg.header.stamp)
        base = [float(v) for v in msg.base]
        record = [recv, stamp, int(msg.episode_id), int(msg.step), int(msg.provenance), base]
        records["commands"].append(record)

    def on_chunk(msg: ActionChunk) -> None:
        recv = now()
        actions = [float(v) for v in msg.actions]
        dim = int(msg.action_dim) or 1
        rows = [actions[i : i + dim] for i in range(0, len(actions), dim)]
        stamp = time_to_nanoseconds(msg.header.stamp)
        records["chunks"].append([recv, stamp, float(msg.inference_time_ms), rows])

    def on_bare(msg: Observation) -> None:
        records["bare"].append([now(), time_to_nanoseconds(msg.header.stamp)])

    if options.bare:
        node.create_subscription(Observation, BARE_TOPIC, on_bare, PROBE_QOS)
    else:
        node.create_subscription(Observation, "observation", on_observation, PROBE_QOS)
        node.create_subscription(ActionCommand, "command", on_command, PROBE_QOS)
        node.create_subscription(ActionChunk, "action_chunk", on_chunk, PROBE_QOS)
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.readline(), stop.set()), daemon=True).start()
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    print("ready", flush=True)
    deadline = time.monotonic() + options.max_seconds
    try:
        while not stop.is_set() and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=context)
    Path(options.out).write_text(json.dumps(records))
    return 0


def _parse(records: dict[str, list]) -> tuple[list, list, list]:
    observations = [ObservationRecord(*r) for r in records["observations"]]
    commands = [
        CommandRecord(recv, stamp, episode, step, tuple(base), provenance)
        for recv, stamp, episode, step, provenance, base in records["commands"]
    ]
    chunks = [
        ChunkRecord(recv, stamp, tuple(tuple(row) for row in rows), inference_ms)
        for recv, stamp, inference_ms, rows in records["chunks"]
    ]
    return observations, commands, chunks


# ---------------------------------------------------------------------- one mode of the graph


def graph_specs(cfg: Any, realtime: bool, namespace: str) -> list:
    """The graph of `pld run <task> mode:=eval record:=false realtime:=...` plus the bench's overrides."""
    args = GraphArgs(
        task=cfg.task,
        mode="eval",
        record=False,
        checkpoint=cfg.residual_checkpoint,
        namespace=namespace,
        num_episodes=NUM_EPISODES,
        realtime=realtime,
    )
    overrides = cfg.node_overrides()
    return [
        dataclasses.replace(s, overrides={**s.overrides, **overrides.get(s.name, {})})
        for s in build_graph(args)
    ]


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(float(value), digits)


class InProcessGraph:
    """The graph composed in this process (`pld run`): counters read from the nodes themselves."""

    def __init__(self, specs: list, context: Any) -> None:
        from pld_franka_bringup.ros.compose import ComposedGraph

        self.graph = ComposedGraph(specs, context)

    def close(self) -> None:
        self.graph.close()

    def spin_until(self, done, timeout_s: float) -> bool:
        return self.graph.spin_until(done, timeout_s)

    def snapshot(self) -> dict[str, dict]:
        nodes = self.graph.nodes
        return {
            "sim": dict(nodes["sim_node"].driver.status()),
            "actor": dict(nodes["residual_actor"].actor.status()),
            "vla": dict(nodes["vla_server"].server.status()),
            "episodes": dict(nodes["episode_manager"].machine.counters.__dict__),
        }

    def commanding(self) -> bool:
        """Commands flow with base actions from a chunk, and the probe is matched on `command`."""
        actor = self.graph.nodes["residual_actor"]
        last = actor.actor.last_step
        return (
            last is not None
            and last.provenance.name != "HOLD"
            and self.graph.nodes["vla_server"].server.status()["ready"]
            and actor.count_subscribers("command") >= 2  # the sim and the probe
        )

    def sample(self) -> Observation:
        sim = self.graph.nodes["sim_node"].driver
        return observation_to_msg(
            sim.observation, list(sim.proprio_names), nanoseconds_to_time(0), sim.frame_id, 1, 0
        )


class ProcessGraph:
    """One process per node (as `ros2 launch`): counters from the latched status topics (JSON), seen by a
    watcher node in this process together with the newest command and observation."""

    def __init__(self, specs: list, context: Any, namespace: str) -> None:
        from pld_franka_bringup.node_processes import NodeProcesses

        self.work_dir = Path(tempfile.mkdtemp(prefix="pld-bench-graph-nodes-"))
        self.status: dict[str, dict] = {}
        self.last_provenance: int | None = None
        self.last_observation: Observation | None = None
        self.node = Node("pld_bench_graph_watch", namespace=namespace, context=context)
        for key, topic in STATUS_TOPICS.items():
            self.node.create_subscription(String, topic, lambda m, k=key: self._on_status(k, m), LATCHED_QOS)
        self.node.create_subscription(ActionCommand, "command", self._on_command, PROBE_QOS)
        self.node.create_subscription(Observation, "observation", self._on_observation, LAST_QOS)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self.nodes = NodeProcesses(specs, self.work_dir).start_all()

    def _on_status(self, key: str, msg: String) -> None:
        self.status[key] = json.loads(msg.data)

    def _on_command(self, msg: ActionCommand) -> None:
        self.last_provenance = int(msg.provenance)

    def _on_observation(self, msg: Observation) -> None:
        self.last_observation = msg

    def close(self) -> None:
        killed = self.nodes.stop()
        self.executor.shutdown()
        self.node.destroy_node()
        if killed:
            raise RuntimeError(f"nodes {killed} did not stop on SIGINT; logs in {self.nodes.log_dir}")
        shutil.rmtree(self.work_dir, ignore_errors=True)

    def spin_until(self, done, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while not done():
            if time.monotonic() > deadline:
                return False
            if self.nodes.exited():
                raise RuntimeError(f"nodes ended: {self.nodes.exited()}\n{self.nodes.logs()}")
            self.executor.spin_once(timeout_sec=0.05)
        return True

    def snapshot(self) -> dict[str, dict]:
        status = copy.deepcopy(self.status)
        return {
            "sim": status.get("sim", {}),
            "actor": status.get("actor", {}),
            "vla": status.get("vla", {}),
            "episodes": status.get("episodes", {}).get("counters", {}),
        }

    def commanding(self) -> bool:
        return (
            self.last_provenance is not None
            and self.last_provenance != ActionCommand.PROVENANCE_HOLD
            and bool(self.status.get("vla", {}).get("ready"))
        )

    def sample(self) -> Observation | None:
        return self.last_observation


def run_mode(cfg: Any, mode: str, log=None) -> ModeRun:
    """Measure one mode (`realtime` / `lockstep`) for `cfg.seconds`."""
    from pld_franka_bringup.ros.compose import init_context

    realtime = mode == "realtime"
    namespace = f"pld_bench_graph_{os.getpid()}_{mode}"
    probe = Probe(namespace)
    context = init_context()
    specs = graph_specs(cfg, realtime, namespace)
    try:
        graph = ProcessGraph(specs, context, namespace) if cfg.processes else InProcessGraph(specs, context)
        try:
            started = time.monotonic()
            if not graph.spin_until(graph.commanding, cfg.startup_timeout_s):
                snapshot = graph.snapshot()
                raise RuntimeError(
                    f"{mode}: no base commands after {cfg.startup_timeout_s:.0f} s: "
                    f"actor {snapshot['actor']}, vla {snapshot['vla']}"
                )
            startup_s = time.monotonic() - started
            graph.spin_until(lambda: False, cfg.settle_s)
            before = graph.snapshot()
            start = time.monotonic_ns()
            graph.spin_until(lambda: False, cfg.seconds)
            end = time.monotonic_ns()
            after = graph.snapshot()
            graph.spin_until(lambda: False, 0.5)  # commands answering the window's last observations
            sample = graph.sample()
        finally:
            graph.close()
        records = probe.stop()
    finally:
        probe.kill()
        rclpy.try_shutdown(context=context)
    observations, commands, chunks = _parse(records)
    nominal = 1e9 / cfg.control_hz if realtime else None
    actor_before, actor_after = before["actor"].get("counters", {}), after["actor"].get("counters", {})
    summary: dict[str, Any] = {
        "mode": mode,
        "composition": "processes" if cfg.processes else "one_process",
        "startup_s": round(startup_s, 2),
        **summarize_mode(observations, commands, chunks, (start, end), nominal),
        "actor_loop_jitter_ms_p99": _round(after["actor"].get("loop", {}).get("jitter_p99_ms")),
        "episodes": after["episodes"].get("episodes", 0) - before["episodes"].get("episodes", 0),
        "successes": after["episodes"].get("successes", 0) - before["episodes"].get("successes", 0),
        "dropped": {
            **counter_deltas(before["sim"], after["sim"], SIM_COUNTERS, "sim_"),
            **counter_deltas(actor_before, actor_after, ACTOR_COUNTERS, "actor_"),
            **counter_deltas(before["vla"], after["vla"], VLA_COUNTERS, "vla_"),
        },
    }
    summary["dropped"]["probe_unanswered_observations"] = summary["unanswered_observations"]
    if log is not None:
        log(f"{mode}: {summary['commands']} commands in {summary['window_s']} s")
    return ModeRun(summary, sample)


# ---------------------------------------------------------------------- the bare rclpy pair


def run_bare(msg: Observation, seconds: float, rate_hz: float, startup_timeout_s: float = 60.0) -> dict:
    """A plain rclpy publisher of the Observation `msg` at `rate_hz`, the probe subscribing elsewhere."""
    namespace = f"pld_bench_graph_{os.getpid()}_bare"
    msg = copy.deepcopy(msg)
    size = len(serialize_message(msg))
    probe = Probe(namespace, bare=True)
    context = rclpy.Context()
    rclpy.init(args=[], context=context)
    node = Node("pld_bench_bare_publisher", namespace=namespace, context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    try:
        publisher = node.create_publisher(Observation, BARE_TOPIC, PROBE_QOS)
        deadline = time.monotonic() + startup_timeout_s
        while publisher.get_subscription_count() < 1:
            if time.monotonic() > deadline:
                raise RuntimeError("bare pair: the probe never subscribed")
            executor.spin_once(timeout_sec=0.05)

        def publish() -> None:
            msg.step += 1
            msg.header.stamp = nanoseconds_to_time(time.monotonic_ns())
            publisher.publish(msg)

        node.create_timer(1.0 / rate_hz, publish, clock=Clock(clock_type=ClockType.STEADY_TIME))
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            executor.spin_once(timeout_sec=0.05)
        sent = msg.step
        time.sleep(0.2)  # the last messages in flight
        records = probe.stop()
    finally:
        probe.kill()
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=context)
    latencies = [recv - stamp for recv, stamp in records["bare"]]
    return {
        "rate_hz": rate_hz,
        "message_bytes": size,
        "sent": sent,
        "received": len(latencies),
        **summary_ms(latencies, "latency_ms"),
    }


if __name__ == "__main__":
    sys.exit(probe_main())
