"""One process per node (`node_processes`): the command lines and parameter files, and start / signal /
stop / logs against stand-in processes (plain Python programs at the process boundary)."""

from __future__ import annotations

import dataclasses
import json
import signal
import sys
import time
from pathlib import Path

import yaml

from pld_franka_bringup.graph import GraphArgs, build_graph, load_node_parameters
from pld_franka_bringup.node_processes import NodeProcesses, node_command


def _specs(namespace: str = "franka") -> list:
    return build_graph(GraphArgs(mode="eval", record=False, namespace=namespace))


def test_each_node_runs_its_module_with_its_merged_parameters(tmp_path: Path) -> None:
    specs = {s.name: s for s in _specs()}
    actor = dataclasses.replace(specs["residual_actor"], overrides={"agent_options": {"hidden": 8}})
    command = node_command(actor, tmp_path)
    assert command[:4] == [sys.executable, "-m", "pld_residual.ros.residual_actor_node", "--ros-args"]
    assert command[4:] == [
        "-r", "__ns:=/franka", "-r", "__node:=residual_actor", "--params-file",
        str(tmp_path / "residual_actor.yaml"),
    ]  # fmt: skip
    written = yaml.safe_load((tmp_path / "residual_actor.yaml").read_text())["/**"]["ros__parameters"]
    expected = load_node_parameters(actor)
    assert json.loads(written.pop("agent_options")) == {"hidden": 8}  # ROS has no dict parameters
    assert written == {k: v for k, v in expected.items() if k != "agent_options"}
    assert "xi" in written  # from the task YAML


def test_a_node_at_the_root_gets_no_namespace_remap(tmp_path: Path) -> None:
    sim = next(s for s in _specs(namespace="") if s.name == "sim_node")
    command = node_command(sim, tmp_path)
    assert not any(part.startswith("__ns:=") for part in command)
    assert "__node:=sim_node" in command


STAYS = "import time\nprint('up', flush=True)\nwhile True: time.sleep(0.05)"  # SIGINT: KeyboardInterrupt
IGNORES_SIGINT = (
    "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nprint('up', flush=True)\n"
    + ("while True: time.sleep(0.05)")
)


def _wait_for_line(path: Path, text: str, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while text not in (path.read_text() if path.exists() else ""):
        assert time.monotonic() < deadline, f"{path} never said {text!r}"
        time.sleep(0.05)


def test_start_signal_restart_and_stop_kill_only_what_ignores_sigint(tmp_path: Path) -> None:
    nodes = NodeProcesses(_specs()[:2], tmp_path)
    first, second = list(nodes.commands)
    nodes.commands = {first: [sys.executable, "-c", STAYS], second: [sys.executable, "-c", IGNORES_SIGINT]}
    try:
        nodes.start_all()
        for name in (first, second):
            _wait_for_line(nodes.log_dir / f"{name}.log", "up")
        nodes.send_signal(first, signal.SIGKILL)
        nodes.processes[first].wait(10)
        assert nodes.exited() == {first: -signal.SIGKILL}
        nodes.start(first)  # a restart appends to the same log
        deadline = time.monotonic() + 20
        while (nodes.log_dir / f"{first}.log").read_text().count("up") < 2:
            assert time.monotonic() < deadline, "the restarted node never came up"
            time.sleep(0.05)
    finally:
        killed = nodes.stop(timeout_s=2.0)
    assert killed == [second]  # the first stopped on SIGINT, the second had to be killed
    assert nodes.exited()[first] != 0 and set(nodes.exited()) == {first, second}
    assert f"--- {first}.log" in nodes.logs() and "up" in nodes.logs()


def test_nodes_stop_on_sigint_even_when_started_from_a_background_job(tmp_path: Path) -> None:
    """`cmd &` and `nohup` start a launcher with SIGINT ignored; its nodes must still stop on SIGINT."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        nodes = NodeProcesses(_specs()[:1], tmp_path)
        (name,) = nodes.commands
        nodes.commands = {name: [sys.executable, "-c", STAYS]}
        nodes.start_all()
        _wait_for_line(nodes.log_dir / f"{name}.log", "up")
        killed = nodes.stop(timeout_s=10.0)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert killed == [] and nodes.exited()[name] != 0
    assert "KeyboardInterrupt" in nodes.logs()
