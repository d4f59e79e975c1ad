"""The graph builder: which nodes run per launch argument, the overrides, the errors, and that the task
YAMLs fit the nodes' config dataclasses (the contract between config/ and the nodes)."""

from __future__ import annotations

import itertools
from dataclasses import fields
from pathlib import Path

import pytest
import yaml

from pld_franka_bringup.graph import (
    CONTINUOUS_EPISODES,
    LAUNCH_ARGUMENTS,
    NODE_TYPES,
    REWARDS,
    GraphArgs,
    NodeSpec,
    build_graph,
    build_learner,
    import_ref,
    load_node_parameters,
    parameter_file,
)

CONFIG_DIR = Path(__file__).resolve().parents[1] / "config"
TASKS = ("pick_cube", "peg_insertion")
NODE_NAMES = {executable for _, executable in NODE_TYPES}


def _args(mode: str = "train", **kwargs) -> GraphArgs:
    if mode == "collect":
        kwargs.setdefault("checkpoint", "runs/learn/best_policy")
    return GraphArgs(mode=mode, **kwargs)


def _by_name(specs: list[NodeSpec]) -> dict[str, NodeSpec]:
    names = [s.name for s in specs]
    assert len(names) == len(set(names)), f"duplicate nodes: {names}"
    return {s.name: s for s in specs}


# ------------------------------------------------------------------ node list per argument combination


COMBINATIONS = list(
    itertools.product(
        ("train", "collect", "eval"), (True, False), ("local", "remote"), REWARDS, (True, False)
    )
)


@pytest.mark.parametrize(("mode", "record", "learner", "reward", "realtime"), COMBINATIONS)
def test_node_list_per_argument_combination(mode, record, learner, reward, realtime) -> None:
    args = _args(mode, record=record, learner=learner, reward=reward, realtime=realtime)
    names = [spec.name for spec in build_graph(args)]
    expected = ["sim_node", "vla_server", "residual_actor"]
    expected += ["reward_node"] if reward == "classifier" else []
    expected += ["episode_manager"]
    expected += ["recorder"] if record else []
    expected += ["learner"] if mode == "train" and learner == "local" else []
    assert names == expected


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, {"sim_node", "vla_server", "residual_actor", "episode_manager", "recorder", "learner"}),
        ({"mode": "eval", "record": False}, {"sim_node", "vla_server", "residual_actor", "episode_manager"}),
        (
            {"mode": "collect", "reward": "classifier", "learner": "local"},
            {"sim_node", "vla_server", "residual_actor", "reward_node", "episode_manager", "recorder"},
        ),
    ],
)
def test_node_list_examples(kwargs, expected) -> None:
    assert {spec.name for spec in build_graph(_args(**kwargs))} == expected


def test_specs_name_packages_executables_and_the_task_yaml() -> None:
    for task in TASKS:
        specs = build_graph(_args(task=task, reward="classifier", namespace="robot2"))
        for spec in specs:
            assert (spec.package, spec.executable) in NODE_TYPES
            assert spec.name == spec.executable
            assert spec.namespace == "robot2" and spec.fqn == f"/robot2/{spec.name}"
            assert spec.params_file == CONFIG_DIR.resolve() / f"{task}.yaml"
            assert spec.remappings == ()
    assert _by_name(build_graph(_args(namespace="")))["sim_node"].fqn == "/sim_node"


# ------------------------------------------------------------------ overrides


@pytest.mark.parametrize(
    ("mode", "source", "deterministic", "keep_failures"),
    [("train", "train", False, None), ("collect", "pld", True, False), ("eval", "eval", True, None)],
)
def test_mode_overrides(mode, source, deterministic, keep_failures) -> None:
    nodes = _by_name(build_graph(_args(mode, learner="remote")))
    assert nodes["episode_manager"].overrides["mode"] == mode
    assert nodes["residual_actor"].overrides["deterministic"] is deterministic
    recorder = nodes["recorder"].overrides
    assert recorder["source"] == source
    assert recorder.get("keep_failures") == keep_failures  # None: the YAML's (true) stays


def test_argument_overrides() -> None:
    args = _args(
        "collect",
        checkpoint="runs/x/best_policy",
        backend="openpi",
        dataset_dir="/data/pld",
        num_episodes=7,
        realtime=True,
        reward="classifier",
    )
    nodes = _by_name(build_graph(args))
    assert nodes["residual_actor"].overrides == {
        "deterministic": True,
        "checkpoint": "runs/x/best_policy",
        "trigger": "observation",  # sim: realtime too
        "execute_steps": 0,
        "wait_for_chunk": False,  # realtime: a hold rather than a late command
        "use_sim_time": True,
    }
    assert nodes["vla_server"].overrides == {"backend": "openpi", "every_n_steps": 1, "use_sim_time": True}
    assert nodes["recorder"].overrides == {
        "source": "pld",
        "keep_failures": False,
        "dataset_dir": "/data/pld",
        "use_sim_time": True,
    }
    assert nodes["episode_manager"].overrides == {"mode": "collect", "num_episodes": 7, "use_sim_time": True}
    assert nodes["sim_node"].overrides == {"mode": "realtime", "reward_topic": "predicate_reward"}
    assert nodes["reward_node"].overrides == {"use_sim_time": True}


def test_defaults_leave_the_yaml_values() -> None:
    nodes = _by_name(build_graph(GraphArgs()))
    assert nodes["vla_server"].overrides == {"use_sim_time": True}  # backend '' = the YAML's
    assert "dataset_dir" not in nodes["recorder"].overrides
    assert nodes["residual_actor"].overrides["checkpoint"] == ""
    assert nodes["residual_actor"].overrides["trigger"] == "observation"
    assert nodes["sim_node"].overrides == {"mode": "lockstep", "reward_topic": "reward"}
    assert nodes["episode_manager"].overrides["num_episodes"] == CONTINUOUS_EPISODES  # sim: runs on
    assert nodes["learner"].overrides == {"use_sim_time": True}


def test_every_node_but_the_sim_runs_on_sim_time() -> None:
    for spec in build_graph(_args(reward="classifier")):
        assert spec.overrides.get("use_sim_time") is (None if spec.name == "sim_node" else True), spec.name


def test_remote_learner_spec() -> None:
    spec = build_learner(GraphArgs(task="peg_insertion", namespace="robot2"))
    assert (spec.package, spec.executable, spec.fqn) == ("pld_residual", "learner", "/robot2/learner")
    assert spec.params_file.name == "peg_insertion.yaml"
    assert spec.overrides == {"use_sim_time": True}


# ------------------------------------------------------------------ argument strings and errors


def test_launch_argument_defaults_give_the_default_args() -> None:
    declared = [arg.name for arg in LAUNCH_ARGUMENTS]
    assert sorted(declared) == sorted(f.name for f in fields(GraphArgs) if f.name != "task")
    assert GraphArgs.from_strings({arg.name: arg.default for arg in LAUNCH_ARGUMENTS}) == GraphArgs()
    for arg in LAUNCH_ARGUMENTS:
        assert arg.description
        assert arg.choices is None or arg.default in arg.choices


def test_from_strings_parses_launch_values() -> None:
    args = GraphArgs.from_strings(
        {
            "task": "peg_insertion",
            "mode": "collect",
            "checkpoint": "runs/x",
            "record": "false",
            "realtime": "True",
            "num_episodes": " 12 ",
            "learner": "remote",
            "reward": "classifier",
            "namespace": "/robot2",
        }
    )
    assert args == GraphArgs(
        task="peg_insertion",
        mode="collect",
        checkpoint="runs/x",
        record=False,
        realtime=True,
        num_episodes=12,
        learner="remote",
        reward="classifier",
        namespace="/robot2",
    )


def test_sim_defaults_to_true_unless_a_robot_is_configured() -> None:
    assert GraphArgs.from_strings({}).sim is True
    assert GraphArgs.from_strings({"sim": "auto"}).reward == "predicate"
    robot = GraphArgs.from_strings({"robot_ip": "172.16.0.2"})
    assert (robot.sim, robot.reward) == (False, "classifier")
    assert GraphArgs.from_strings({"robot_ip": "172.16.0.2", "sim": "true"}).sim is True


@pytest.mark.parametrize(
    ("values", "match"),
    [
        ({"mode": "learn"}, r"mode:='learn' is not valid; expected one of train, collect, eval"),
        ({"learner": "cloud"}, r"learner:='cloud' is not valid; expected one of local, remote"),
        ({"reward": "human"}, r"reward:='human' is not valid; expected one of predicate, classifier"),
        ({"record": "yes"}, r"record:='yes' is not valid; expected true or false"),
        ({"sim": "1"}, r"sim:='1' is not valid; expected true or false"),
        ({"num_episodes": "ten"}, r"num_episodes:='ten' is not valid; expected an integer"),
        ({"num_episodes": "-1"}, r"num_episodes: must be >= 0"),
        ({"mode": "collect"}, r"mode:=collect needs checkpoint:="),
        ({"sim": "false", "reward": "predicate"}, r"reward:=predicate needs the simulator"),
        ({"namespace": "a b"}, r"namespace: must be a ROS namespace"),
        ({"task": "../etc"}, r"task: must be a task name"),
        ({"robot": "x"}, r"unknown argument\(s\) \['robot'\]; known: \["),
    ],
)
def test_bad_arguments_say_which_and_what_is_allowed(values, match) -> None:
    with pytest.raises(ValueError, match=match):
        GraphArgs.from_strings(values)


def test_sim_false_needs_the_franka_driver() -> None:
    with pytest.raises(ValueError, match=r"Franka driver node is not available yet; use sim:=true"):
        build_graph(GraphArgs.from_strings({"sim": "false"}))


def test_a_task_without_a_preset_lists_the_presets(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"no graph preset for task 'pick_cube_cluttered'.*peg_insertion"):
        build_graph(GraphArgs(task="pick_cube_cluttered"))
    with pytest.raises(ValueError, match=r"presets: \[\]"):
        parameter_file("pick_cube", tmp_path)


def test_parameter_file_source_tree_then_installed_share(tmp_path: Path, monkeypatch) -> None:
    assert parameter_file("pick_cube") == CONFIG_DIR.resolve() / "pick_cube.yaml"
    share = tmp_path / "prefix" / "share" / "pld_franka_bringup" / "config"
    share.mkdir(parents=True)
    (share / "lab_task.yaml").write_text("{}\n")
    monkeypatch.setenv("AMENT_PREFIX_PATH", f"/nonexistent:{tmp_path / 'prefix'}")
    assert parameter_file("lab_task") == (share / "lab_task.yaml").resolve()
    assert parameter_file("lab_task", share) == (share / "lab_task.yaml").resolve()


# ------------------------------------------------------------------ load_node_parameters


def test_load_node_parameters_merges_sections_and_overrides_win(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "/**": {"ros__parameters": {"a": 0, "b": 0, "c": 0, "d": 0}},
                "sim_node": {"ros__parameters": {"b": 1}},
                "/**/sim_node": {"ros__parameters": {"c": 2}},
                "/robot2/sim_node": {"ros__parameters": {"d": 3, "mode": "lockstep"}},
                "/**/vla_server": {"ros__parameters": {"a": 9}},
            }
        )
    )
    spec = NodeSpec("pld_sim", "sim_node", "sim_node", "robot2", path, {"mode": "realtime"})
    assert load_node_parameters(spec) == {"a": 0, "b": 1, "c": 2, "d": 3, "mode": "realtime"}
    other_namespace = NodeSpec("pld_sim", "sim_node", "sim_node", "franka", path, {})
    assert load_node_parameters(other_namespace) == {"a": 0, "b": 1, "c": 2, "d": 0}
    absent = NodeSpec(
        "pld_residual", "no_such_node", "no_such_node", "franka", CONFIG_DIR / "pick_cube.yaml", {"x": 1}
    )
    assert load_node_parameters(absent) == {"x": 1}  # no section: the overrides (and node defaults) only


def test_a_section_without_ros_parameters_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("/**/sim_node:\n  task: pick_cube\n")
    with pytest.raises(ValueError, match=r"section '/\*\*/sim_node' needs a 'ros__parameters:' mapping"):
        load_node_parameters(NodeSpec("pld_sim", "sim_node", "sim_node", "franka", path))


# ------------------------------------------------------------------ the YAML presets fit the nodes


def _config_class(node: str) -> type:
    """The node's config dataclass through NODE_TYPES; skipped (with the reason) while it is not written."""
    (ref,) = [config for (_, executable), (_, config) in NODE_TYPES.items() if executable == node]
    try:
        return import_ref(ref)
    except (ImportError, AttributeError) as exc:
        pytest.skip(f"{ref} does not exist yet ({exc})")


def _sections(task: str) -> dict[str, dict]:
    document = yaml.safe_load((CONFIG_DIR / f"{task}.yaml").read_text())
    sections = {}
    for key, section in document.items():
        assert key.startswith("/**/"), f"{task}.yaml: {key!r} must be '/**/<node>' to match any namespace"
        node = key.removeprefix("/**/")
        assert node in NODE_NAMES, f"{task}.yaml: unknown node {node!r}"
        assert set(section) == {"ros__parameters"}, f"{task}.yaml: {key}"
        sections[node] = section["ros__parameters"]
    return sections


def test_presets_exist_and_name_their_task() -> None:
    assert sorted(p.stem for p in CONFIG_DIR.glob("*.yaml")) == sorted(TASKS)
    for task in TASKS:
        sections = _sections(task)
        assert {
            "sim_node",
            "vla_server",
            "residual_actor",
            "episode_manager",
            "recorder",
            "reward_node",
        } <= set(sections)
        assert sections["sim_node"]["task"] == sections["episode_manager"]["task"] == task
        assert task in sections["reward_node"]["checkpoint"]
        for node, params in sections.items():
            assert "use_sim_time" not in params, f"{task}.yaml {node}: use_sim_time is set by the builder"


def test_sim_image_size_is_the_small_vla_input() -> None:
    small_vla = import_ref("pld_vla_server.small_vla.config:SmallVLAConfig")
    for task in TASKS:
        sections = _sections(task)
        assert sections["vla_server"]["backend"] == "small_vla"
        assert sections["sim_node"]["image_size"] == small_vla().image_size


@pytest.mark.parametrize(("task", "node"), list(itertools.product(TASKS, sorted(NODE_NAMES))))
def test_yaml_keys_are_config_fields(task: str, node: str) -> None:
    params = _sections(task).get(node)
    if params is None:
        pytest.skip(f"{task}.yaml has no {node} section")
    cls = _config_class(node)
    unknown = sorted(set(params) - {f.name for f in fields(cls)})
    assert not unknown, f"{task}.yaml {node}: not fields of {cls.__name__}: {unknown}"


@pytest.mark.parametrize(("task", "node"), list(itertools.product(TASKS, sorted(NODE_NAMES))))
def test_load_node_parameters_builds_the_node_config(
    task: str, node: str, tmp_path: Path, monkeypatch
) -> None:
    # relative paths of the presets resolve against the start directory: give them one
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "base_vla" / "flow").mkdir(parents=True)
    (tmp_path / "policy").mkdir()
    config = tmp_path / "src" / "pld_residual" / "config"
    config.mkdir(parents=True)
    for name in ("learn_pick_cube.yaml",):
        (config / name).write_text("task: pick_cube\n")
    args = GraphArgs(task=task, reward="classifier", checkpoint=str(tmp_path / "policy"), num_episodes=3)
    spec = _by_name(build_graph(args))[node]
    cls = _config_class(node)
    missing = sorted(set(spec.overrides) - {"use_sim_time"} - {f.name for f in fields(cls)})
    if missing:
        pytest.skip(f"{cls.__name__} has no field(s) {missing} yet (the builder sets them)")
    params = load_node_parameters(spec)
    assert params.pop("use_sim_time", None) is (None if node == "sim_node" else True)
    cfg = cls.from_dict(params)
    for name, value in spec.overrides.items():
        if name != "use_sim_time":
            assert getattr(cfg, name) == value, name


def test_node_types_resolve_where_written() -> None:
    pytest.importorskip("rclpy", reason="the node classes import rclpy")
    for node in (
        "sim_node",
        "vla_server",
        "residual_actor",
        "reward_node",
        "episode_manager",
        "recorder",
        "learner",
    ):
        (refs,) = [r for (_, executable), r in NODE_TYPES.items() if executable == node]
        node_cls, config_cls = (import_ref(ref) for ref in refs)
        assert node_cls.__name__.endswith("Node") and hasattr(config_cls, "from_dict")


def test_seed_argument_sets_the_first_episodes_seed() -> None:
    nodes = _by_name(build_graph(GraphArgs.from_strings({"mode": "eval", "seed": "10000"})))
    assert nodes["episode_manager"].overrides["seed"] == 10000
    assert "seed" not in _by_name(build_graph(GraphArgs()))["episode_manager"].overrides
    with pytest.raises(ValueError, match="seed"):
        GraphArgs.from_strings({"seed": "ten"})


def test_num_episodes_auto_runs_until_stopped_in_sim_and_waits_with_a_robot() -> None:
    assert GraphArgs.from_strings({}).num_episodes == CONTINUOUS_EPISODES
    assert GraphArgs.from_strings({"num_episodes": "auto"}).num_episodes == CONTINUOUS_EPISODES
    assert GraphArgs.from_strings({"robot_ip": "10.0.0.2", "num_episodes": "auto"}).num_episodes == 0
    assert GraphArgs.from_strings({"num_episodes": "0"}).num_episodes == 0
