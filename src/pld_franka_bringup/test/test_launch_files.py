"""Every launch file parses (always, also in CI without `launch`), and where `launch` / `launch_ros` are
importable each description declares the graph's arguments and starts exactly `build_graph`'s nodes with
the task YAML and the overrides as parameters. With them, `pick_cube.launch.py sim:=true` is also started
and must make commands flow within 30 s."""

from __future__ import annotations

import ast
import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from pld_franka_bringup.graph import LAUNCH_ARGUMENTS, GraphArgs, build_graph, build_learner

PACKAGE_DIR = Path(__file__).resolve().parents[1]
WORKSPACE = PACKAGE_DIR.parents[1]
PACKAGE_LAUNCH_FILES = sorted((PACKAGE_DIR / "launch").glob("*.launch.py"))
WORKSPACE_LAUNCH_FILES = sorted((WORKSPACE / "launch").glob("*.launch.py"))
LAUNCH_FILES = PACKAGE_LAUNCH_FILES + WORKSPACE_LAUNCH_FILES


def test_the_launch_files_are_there() -> None:
    names = {p.name for p in LAUNCH_FILES}
    assert {"pick_cube.launch.py", "peg_insertion.launch.py", "remote_learner.launch.py"} <= names


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_file_parses_and_defines_generate_launch_description(path: Path) -> None:
    source = path.read_text(encoding="utf-8")
    compile(source, str(path), "exec")
    tree = ast.parse(source)
    functions = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    assert "generate_launch_description" in functions
    assert ast.get_docstring(tree), f"{path.name}: say what it starts"
    # composition only: launch files import the shared builder, never rclpy or a node module
    imported = {
        alias.name if isinstance(node, ast.Import) else node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert imported == {"pld_franka_bringup.launch_description"}, imported


@pytest.mark.parametrize("path", PACKAGE_LAUNCH_FILES, ids=lambda p: p.name)
def test_each_task_launch_file_has_its_preset(path: Path) -> None:
    task = path.name.removesuffix(".launch.py")
    assert (PACKAGE_DIR / "config" / f"{task}.yaml").is_file()
    assert f'graph_launch_description("{task}")' in path.read_text(encoding="utf-8")


# ------------------------------------------------------------------ with launch / launch_ros


def _require_launch() -> ModuleType:
    reason = "launch / launch_ros are not installable from PyPI; they come with a full ROS 2 install"
    launch = pytest.importorskip("launch", reason=reason)
    if not hasattr(launch, "LaunchDescription"):  # the workspace's launch/ folder as a namespace package
        pytest.skip(f"{reason} (only the workspace's launch/ folder was found)")
    pytest.importorskip("launch_ros", reason=reason)
    return launch


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.name.replace(".", "_"), path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _nodes(launch: ModuleType, path: Path, arguments: dict[str, str]) -> tuple[list[str], list]:
    """(declared argument names, launch_ros Node actions) of a launch file for `arguments`."""
    description = _load(path).generate_launch_description()
    context = launch.LaunchContext()
    context.launch_configurations.update(arguments)
    declared, nodes = [], []
    for entity in description.entities:
        if isinstance(entity, launch.actions.DeclareLaunchArgument):
            declared.append(entity.name)
        for action in entity.visit(context) or []:  # defaults, then the OpaqueFunction's nodes
            action._perform_substitutions(context)  # name, namespace and parameter files, as execute does
            nodes.append(action)
    return declared, nodes


GRAPH_CASES = [
    {},
    {"mode": "eval", "record": "false", "namespace": "robot2"},
    {"mode": "eval", "dataset_dir": "2025", "backend": "true"},  # strings that YAML would turn into int, bool
    {"mode": "collect", "checkpoint": "CHECKPOINT", "realtime": "true", "dataset_dir": "/data/pld"},
    {"reward": "classifier", "learner": "remote", "num_episodes": "3", "backend": "openpi"},
]


def _case_id(case: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in case.items()) or "defaults"


@pytest.mark.parametrize("case", GRAPH_CASES, ids=_case_id)
@pytest.mark.parametrize("path", PACKAGE_LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_description_starts_the_built_graph(path: Path, case: dict, tmp_path: Path) -> None:
    launch = _require_launch()
    case = {k: str(tmp_path) if v == "CHECKPOINT" else v for k, v in case.items()}
    task = path.name.removesuffix(".launch.py")
    declared, nodes = _nodes(launch, path, case)
    assert sorted(declared) == sorted(arg.name for arg in LAUNCH_ARGUMENTS)
    specs = build_graph(GraphArgs.from_strings({"task": task, **case}))
    assert [(n.node_package, n.node_executable, n.node_name) for n in nodes] == [
        (s.package, s.executable, s.fqn) for s in specs
    ]
    for node, spec in zip(nodes, specs, strict=True):
        (yaml_file, is_file), (overrides_file, _) = node._Node__expanded_parameter_arguments
        assert is_file and Path(yaml_file) == spec.params_file
        written = yaml.safe_load(Path(overrides_file).read_text())
        assert written == {spec.fqn: {"ros__parameters": spec.overrides}}  # types kept ('' stays a string)


def test_invalid_arguments_fail_the_launch() -> None:
    launch = _require_launch()
    path = PACKAGE_DIR / "launch" / "pick_cube.launch.py"
    with pytest.raises(ValueError, match="Franka driver node is not available yet"):
        _nodes(launch, path, {"sim": "false", "reward": "classifier"})
    with pytest.raises(ValueError, match="mode:=collect needs checkpoint"):
        _nodes(launch, path, {"mode": "collect"})
    with pytest.raises(RuntimeError, match="learn"):  # DeclareLaunchArgument's choices
        _nodes(launch, path, {"mode": "learn"})


def test_remote_learner_launch_file_starts_only_the_learner() -> None:
    launch = _require_launch()
    path = WORKSPACE / "launch" / "remote_learner.launch.py"
    declared, nodes = _nodes(launch, path, {"task": "peg_insertion"})
    assert "task" in declared and "namespace" in declared
    spec = build_learner(GraphArgs(task="peg_insertion"))
    assert [(n.node_package, n.node_executable, n.node_name) for n in nodes] == [
        ("pld_residual", "learner", "/franka/learner")
    ]
    assert Path(nodes[0]._Node__expanded_parameter_arguments[0][0]) == spec.params_file


@pytest.mark.ros
@pytest.mark.slow
def test_pick_cube_launch_makes_commands_flow_within_30_s(tmp_path: Path) -> None:
    """`ros2 launch pld_franka_bringup pick_cube.launch.py sim:=true` (through launch's own LaunchService,
    as `ros2 launch` runs it) from the workspace root: a command must arrive on /franka/command."""
    _require_launch()
    rclpy = pytest.importorskip("rclpy", reason="the probe subscribes with rclpy")
    if not (WORKSPACE / "runs" / "base_vla" / "flow").is_dir():
        pytest.skip("runs/base_vla/flow (the preset's base VLA) is missing: run `pld pretrain` first")
    from pld_interfaces.msg import ActionCommand

    runner = (
        "import sys, launch\n"
        "from launch.launch_description_sources import PythonLaunchDescriptionSource\n"
        "service = launch.LaunchService()\n"
        "source = PythonLaunchDescriptionSource(sys.argv[1])\n"
        "include = launch.actions.IncludeLaunchDescription(source, launch_arguments=[('sim', 'true'), "
        "('record', 'false'), ('mode', 'eval'), ('num_episodes', '1')])\n"
        "service.include_launch_description(include)\n"
        "sys.exit(service.run())\n"
    )
    log = (tmp_path / "launch.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-c", runner, str(PACKAGE_DIR / "launch" / "pick_cube.launch.py")],
        cwd=WORKSPACE,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=os.environ.copy(),
        start_new_session=True,
    )
    received = []
    rclpy.init()
    try:
        node = rclpy.create_node("launch_probe")
        node.create_subscription(ActionCommand, "/franka/command", received.append, 10)
        deadline = time.monotonic() + 30.0
        while len(received) < 5 and time.monotonic() < deadline and process.poll() is None:
            rclpy.spin_once(node, timeout_sec=0.2)
        node.destroy_node()
    finally:
        rclpy.try_shutdown()
        _stop_group(process)
        log.close()
    output = (tmp_path / "launch.log").read_text()[-4000:]
    assert len(received) >= 5, f"{len(received)} commands in 30 s; launch output:\n{output}"


def _stop_group(process: subprocess.Popen) -> None:
    """Ctrl-C the launch and its nodes; also when the launch already died (a launch that fails on an
    exception leaves the nodes it started running, in its process group)."""
    for sig, wait_s in ((signal.SIGINT, 20.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            process.poll()  # reap the launch process, so that only live members keep the group
            try:
                os.killpg(process.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.2)
    process.wait()
