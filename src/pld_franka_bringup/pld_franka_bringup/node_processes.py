"""The launch graph as one process per node, the way `ros2 launch` starts it, for machines without
`ros2 launch`: `pld bench graph --processes` and the multi-process fault tests.

Each node runs as `python -m <node module> --ros-args -r __ns:=/<ns> -r __node:=<name> --params-file F`,
where F holds the parameters `load_node_parameters` gives the node (its task-YAML sections and the
launch arguments' overrides, dicts as JSON strings, as ROS has no dict parameters). No rclpy here.
Output goes to `<work_dir>/logs/<name>.log`. Stopping sends SIGINT to every process, as `ros2 launch`
does on Ctrl-C, and kills the ones still running after a grace period.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

import yaml

from pld_franka_bringup.graph import NodeSpec, load_node_parameters


def node_command(spec: NodeSpec, params_dir: Path, python: str = sys.executable) -> list[str]:
    """The command line of `spec`'s node; writes its parameters to `params_dir/<name>.yaml`."""
    params = {
        k: json.dumps(v, sort_keys=True) if isinstance(v, dict) else v
        for k, v in load_node_parameters(spec).items()
    }
    params_dir.mkdir(parents=True, exist_ok=True)
    params_file = params_dir / f"{spec.name}.yaml"
    params_file.write_text(yaml.safe_dump({"/**": {"ros__parameters": params}}), encoding="utf-8")
    command = [python, "-m", spec.node_class.partition(":")[0], "--ros-args"]
    namespace = spec.namespace.strip("/")
    if namespace:
        command += ["-r", f"__ns:=/{namespace}"]
    return [*command, "-r", f"__node:={spec.name}", "--params-file", str(params_file)]


class NodeProcesses:
    """Every node of a graph in its own process: `with NodeProcesses(specs, work_dir) as nodes: ...`."""

    def __init__(
        self, specs: Iterable[NodeSpec], work_dir: Path, env: Mapping[str, str] | None = None
    ) -> None:
        self.work_dir = Path(work_dir)
        self.log_dir = self.work_dir / "logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.commands = {s.name: node_command(s, self.work_dir / "params") for s in specs}
        self.env = dict(os.environ if env is None else env)
        self.processes: dict[str, subprocess.Popen] = {}

    def __enter__(self) -> NodeProcesses:
        return self.start_all()

    def start_all(self) -> NodeProcesses:
        """Start every node, in graph order (all stopped again if one fails to start)."""
        try:
            for name in self.commands:
                self.start(name)
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def start(self, name: str) -> subprocess.Popen:
        """Start (or restart, after it ended) the node `name`; its output is appended to its log."""
        running = self.processes.get(name)
        if running is not None and running.poll() is None:
            raise RuntimeError(f"node {name} is already running (pid {running.pid})")
        with open(self.log_dir / f"{name}.log", "a", encoding="utf-8") as log:
            process = subprocess.Popen(
                self.commands[name],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                preexec_fn=_default_sigint,
            )
        self.processes[name] = process
        return process

    def send_signal(self, name: str, sig: int) -> None:
        """Signal one node's process (e.g. SIGKILL to take it down mid-episode)."""
        self.processes[name].send_signal(sig)

    def exited(self) -> dict[str, int]:
        """Nodes whose process has ended, with their exit codes."""
        return {n: p.returncode for n, p in self.processes.items() if p.poll() is not None}

    def stop(self, timeout_s: float = 20.0) -> list[str]:
        """SIGINT to every running node, wait up to `timeout_s` each; the names of those that had to be
        killed (empty when every node stopped on SIGINT)."""
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        killed = []
        for name, process in self.processes.items():
            try:
                process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
                killed.append(name)
        return killed

    def logs(self, tail_chars: int = 3000) -> str:
        """The end of every node's log, for error messages."""
        return "\n".join(
            f"--- {path.name}\n{path.read_text(errors='replace')[-tail_chars:]}"
            for path in sorted(self.log_dir.glob("*.log"))
        )


def _default_sigint() -> None:
    """In the child, before exec: SIGINT back to its default action. A shell starts background jobs
    (`cmd &`, `nohup`) with SIGINT ignored and children inherit that, so every node would ignore the
    SIGINT of `stop` and be killed without finalising its bags."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
