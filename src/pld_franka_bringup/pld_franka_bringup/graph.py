"""The PLD node graph of one robot namespace as data: which nodes run, and which parameters the launch
arguments change. ROS-free (no rclpy, no launch), so `ros2 launch` (`launch/*.launch.py` via
`launch_description`) and `pld run` (one process, no `ros2 launch`) compose the SAME graph from it.

Parameters come from one YAML file per task (`config/<task>.yaml`, keyed by node name); the launch
arguments only override the few values below. Nodes that exist per argument:

| node | package | exists when |
| --- | --- | --- |
| sim_node | pld_sim | `sim:=true` (`sim:=false` is an error until the Franka driver node exists) |
| vla_server | pld_vla_server | always |
| residual_actor | pld_residual | always |
| reward_node | pld_reward | `reward:=classifier` |
| episode_manager | pld_residual | always |
| recorder | pld_residual | `record:=true` |
| learner | pld_residual | `mode:=train` and `learner:=local` (remote: `launch/remote_learner.launch.py`) |

Overrides (parameter name -> value) computed from the arguments; everything else is the YAML's:

| argument | node | parameter | value |
| --- | --- | --- | --- |
| mode | episode_manager | mode | train / collect / eval |
| mode | recorder | source | train -> "train", collect -> "pld", eval -> "eval" |
| mode | recorder | keep_failures | collect -> false (only successes are PLD data); else the YAML's |
| mode | residual_actor | deterministic | train -> false (explore), collect / eval -> true |
| checkpoint | residual_actor | checkpoint | always ('' = no policy: base passes / learner's params) |
| backend | vla_server | backend | when given ('' = the YAML's) |
| dataset_dir | recorder | dataset_dir | when given ('' = the YAML's) |
| num_episodes | episode_manager | num_episodes | always (0 = wait for goals; auto: sim runs on, robot 0) |
| seed | episode_manager | seed | when given (episode i resets with seed + i; -1 = drawn) |
| realtime | sim_node | mode | true -> "realtime", false -> "lockstep" |
| sim | residual_actor | trigger | true -> "observation" (sim observations clock it), false -> "timer" |
| realtime | residual_actor | execute_steps | true -> 0 (any row of the newest chunk); else the YAML's (4) |
| realtime | residual_actor | wait_for_chunk | true -> false (hold until the episode's first chunk) |
| realtime | vla_server | every_n_steps | true -> 1 (answer the newest observation); else the YAML's (4) |
| reward | sim_node | reward_topic | predicate -> "reward", classifier -> "predicate_reward" |
| sim | every node but sim_node | use_sim_time | true with sim (stamps are sim time) |
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

PACKAGE = "pld_franka_bringup"
MODES = ("train", "collect", "eval")
LEARNERS = ("local", "remote")
REWARDS = ("predicate", "classifier")
AUTO = "auto"  # launch-argument value of `sim` and `reward`: derived from the other arguments
_BOOLS = ("true", "false")
_TASK = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_NAMESPACE = re.compile(r"/?([A-Za-z_][A-Za-z0-9_]*(/[A-Za-z_][A-Za-z0-9_]*)*)?")
# Recorder `source` per mode: the provenance written into every episode of the dataset.
RECORDER_SOURCE = {"train": "train", "collect": "pld", "eval": "eval"}
# num_episodes:=auto in simulation: episodes until the graph is stopped (a robot waits for goals instead,
# so that nothing moves before someone asks)
CONTINUOUS_EPISODES = 1_000_000

# (package, executable) -> ("module:NodeClass", "module:ConfigClass"); the node name is the executable.
# Strings, imported on demand (`import_ref`): the config of a node that is not written yet must not
# break the graph of the others.
NODE_TYPES: dict[tuple[str, str], tuple[str, str]] = {
    ("pld_sim", "sim_node"): ("pld_sim.ros.sim_node:SimNode", "pld_sim.sim_driver:SimDriverConfig"),
    ("pld_vla_server", "vla_server"): (
        "pld_vla_server.ros.vla_server_node:VLAServerNode",
        "pld_vla_server.server:VLAServerConfig",
    ),
    ("pld_residual", "residual_actor"): (
        "pld_residual.ros.residual_actor_node:ResidualActorNode",
        "pld_residual.actor.config:ResidualActorConfig",
    ),
    ("pld_residual", "episode_manager"): (
        "pld_residual.ros.episode_manager_node:EpisodeManagerNode",
        "pld_residual.episodes.config:EpisodeManagerConfig",
    ),
    ("pld_residual", "recorder"): (
        "pld_residual.ros.recorder_node:RecorderNode",
        "pld_residual.recording.config:RecorderConfig",
    ),
    ("pld_residual", "learner"): (
        "pld_residual.ros.learner_node:LearnerNode",
        "pld_residual.learning.learner_service:LearnerNodeConfig",
    ),
    ("pld_reward", "reward_node"): (
        "pld_reward.ros.reward_node:RewardNode",
        "pld_reward.node_config:RewardNodeConfig",
    ),
}


@dataclass(frozen=True)
class LaunchArgument:
    """One launch argument as `DeclareLaunchArgument` and `pld run --help` show it."""

    name: str
    default: str
    description: str
    choices: tuple[str, ...] | None = None


# Every GraphArgs field but `task` (fixed by the launch file / `pld run <task>`), in reading order.
LAUNCH_ARGUMENTS: tuple[LaunchArgument, ...] = (
    LaunchArgument(
        "sim", AUTO, "simulated robot (MuJoCo); auto = true unless robot_ip is given", (AUTO, *_BOOLS)
    ),
    LaunchArgument(
        "mode", "train", "train: learn the residual; collect: PLD data (needs checkpoint); eval", MODES
    ),
    LaunchArgument("backend", "", "VLA backend of vla_server; '' = the YAML's (small_vla)"),
    LaunchArgument("checkpoint", "", "residual policy directory; '' = none (base passes / learner's params)"),
    LaunchArgument("record", "true", "record every episode as rosbag2 MCAP (the PLD dataset)", _BOOLS),
    LaunchArgument("dataset_dir", "", "recorder output directory; '' = the YAML's"),
    LaunchArgument("robot_ip", "", "Franka controller address (real robot); '' = no robot configured"),
    LaunchArgument(
        "learner", "local", "local: learner node in this graph (mode train); remote: elsewhere", LEARNERS
    ),
    LaunchArgument(
        "reward",
        AUTO,
        "predicate: the sim's success predicate; classifier: reward_node; auto = predicate with sim",
        (AUTO, *REWARDS),
    ),
    LaunchArgument("namespace", "franka", "robot namespace of every node and topic"),
    LaunchArgument(
        "num_episodes",
        AUTO,
        "episodes to run; 0 = wait for RunEpisodes goals; auto = until stopped in sim, 0 with a robot",
    ),
    LaunchArgument("seed", "", "seed of the first episode (episode i: seed + i); '' = the YAML's (0)"),
    LaunchArgument(
        "realtime", "false", "sim at 20 Hz wall clock (true) or lockstep, as fast as possible", _BOOLS
    ),
)


@dataclass(frozen=True)
class GraphArgs:
    """The launch arguments, validated; see the module docstring for what each one changes."""

    task: str = field(default="pick_cube", metadata={"help": "task preset: config/<task>.yaml"})
    sim: bool = field(default=True, metadata={"help": "simulated robot instead of the Franka driver"})
    mode: str = field(default="train", metadata={"help": "train, collect or eval"})
    backend: str = field(default="", metadata={"help": "VLA backend; '' = the YAML's"})
    checkpoint: str = field(default="", metadata={"help": "residual policy directory; '' = none"})
    record: bool = field(default=True, metadata={"help": "run the recorder"})
    dataset_dir: str = field(default="", metadata={"help": "recorder output directory; '' = the YAML's"})
    robot_ip: str = field(default="", metadata={"help": "Franka controller address"})
    learner: str = field(default="local", metadata={"help": "local (in this graph) or remote"})
    reward: str = field(default="predicate", metadata={"help": "predicate (sim only) or classifier"})
    namespace: str = field(default="franka", metadata={"help": "robot namespace"})
    num_episodes: int = field(
        default=CONTINUOUS_EPISODES, metadata={"help": "0 = wait for RunEpisodes goals (from_strings: auto)"}
    )
    seed: str = field(default="", metadata={"help": "first episode's seed; '' = the YAML's"})
    realtime: bool = field(default=False, metadata={"help": "sim realtime (true) or lockstep (false)"})

    def __post_init__(self) -> None:
        for f in fields(self):
            value, expected = getattr(self, f.name), type(f.default)
            if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
                raise ValueError(f"{f.name}: must be a {expected.__name__}, got {value!r}")
        if not _TASK.fullmatch(self.task):
            raise ValueError(f"task: must be a task name like pick_cube, got {self.task!r}")
        _check_choice("mode", self.mode, MODES)
        _check_choice("learner", self.learner, LEARNERS)
        _check_choice("reward", self.reward, REWARDS)
        if self.reward == "predicate" and not self.sim:
            raise ValueError(
                "reward:=predicate needs the simulator (its success predicate); with a robot use "
                "reward:=classifier"
            )
        if not _NAMESPACE.fullmatch(self.namespace):
            raise ValueError(f"namespace: must be a ROS namespace like franka, got {self.namespace!r}")
        if self.num_episodes < 0:
            raise ValueError(f"num_episodes: must be >= 0, got {self.num_episodes}")
        if self.seed:
            _parse_int("seed", self.seed)
        if self.mode == "collect" and not self.checkpoint:
            raise ValueError(
                "mode:=collect needs checkpoint:=<residual policy directory> (the specialist that takes "
                "over after probing)"
            )

    @classmethod
    def from_strings(cls, values: Mapping[str, str]) -> GraphArgs:
        """From launch-argument strings (`key:=value`); 'auto' / missing sim and reward are derived."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown argument(s) {unknown}; known: {sorted(known)}")
        text = {name: str(value).strip() for name, value in values.items()}
        parsed: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in text or f.name in ("sim", "reward", "num_episodes"):
                continue
            if isinstance(f.default, bool):
                parsed[f.name] = _parse_bool(f.name, text[f.name])
            elif isinstance(f.default, int):
                parsed[f.name] = _parse_int(f.name, text[f.name])
            else:
                parsed[f.name] = text[f.name]
        sim = text.get("sim", AUTO)
        # "default true when no robot is configured"
        parsed["sim"] = not parsed.get("robot_ip") if sim in ("", AUTO) else _parse_bool("sim", sim)
        episodes = text.get("num_episodes", AUTO)
        if episodes in ("", AUTO):
            parsed["num_episodes"] = CONTINUOUS_EPISODES if parsed["sim"] else 0
        else:
            parsed["num_episodes"] = _parse_int("num_episodes", episodes)
        reward = text.get("reward", AUTO)
        parsed["reward"] = (
            ("predicate" if parsed["sim"] else "classifier") if reward in ("", AUTO) else reward
        )
        return cls(**parsed)


@dataclass(frozen=True)
class NodeSpec:
    """One node of the graph: what to start, under which name, with which parameters."""

    package: str
    executable: str
    name: str
    namespace: str
    params_file: Path  # the task YAML (the node's section of it)
    overrides: dict[str, Any] = field(default_factory=dict)  # computed from the arguments; win over the YAML
    remappings: tuple[tuple[str, str], ...] = ()

    @property
    def fqn(self) -> str:
        """Fully qualified node name, e.g. /franka/sim_node."""
        namespace = self.namespace.strip("/")
        return f"/{namespace}/{self.name}" if namespace else f"/{self.name}"

    @property
    def node_class(self) -> str:
        return NODE_TYPES[(self.package, self.executable)][0]

    @property
    def config_class(self) -> str:
        return NODE_TYPES[(self.package, self.executable)][1]


def build_graph(args: GraphArgs, config_dir: Path | None = None) -> list[NodeSpec]:
    """The nodes of one robot namespace for `args` (see the module docstring's tables)."""
    if not args.sim:
        raise ValueError(
            "sim:=false: the Franka driver node is not available yet; use sim:=true (the simulated Franka)"
        )
    params_file = parameter_file(args.task, config_dir)
    sim_time = {"use_sim_time": True} if args.sim else {}

    def spec(package: str, name: str, **overrides: Any) -> NodeSpec:
        return NodeSpec(package, name, name, args.namespace, params_file, {**overrides, **sim_time})

    nodes = [
        NodeSpec(
            "pld_sim",
            "sim_node",
            "sim_node",
            args.namespace,
            params_file,
            {
                "mode": "realtime" if args.realtime else "lockstep",
                "reward_topic": "reward" if args.reward == "predicate" else "predicate_reward",
            },
        ),
        spec(
            "pld_vla_server",
            "vla_server",
            **({"backend": args.backend} if args.backend else {}),
            **({"every_n_steps": 1} if args.realtime else {}),  # realtime: answer the newest observation
        ),
        spec(
            "pld_residual",
            "residual_actor",
            deterministic=args.mode != "train",
            checkpoint=args.checkpoint,
            # the sim publishes one observation per control step: acting on it as it comes keeps the
            # latency at the graph's own (a sim-time timer races /clock and the observation it answers)
            trigger="observation" if args.sim else "timer",
            # realtime: act at once with the newest chunk's row for now (a hold until the episode's
            # first chunk: the loop never waits for the VLA); lockstep: wait for the chunk of every 4th
            # step, as `pld learn` re-plans (the YAML's execute_steps)
            **({"execute_steps": 0, "wait_for_chunk": False} if args.realtime else {}),
        ),
    ]
    if args.reward == "classifier":
        nodes.append(spec("pld_reward", "reward_node"))
    seed = {"seed": _parse_int("seed", args.seed)} if args.seed else {}
    nodes.append(
        spec("pld_residual", "episode_manager", mode=args.mode, num_episodes=args.num_episodes, **seed)
    )
    if args.record:
        recorder: dict[str, Any] = {"source": RECORDER_SOURCE[args.mode]}
        if args.mode == "collect":
            recorder["keep_failures"] = False
        if args.dataset_dir:
            recorder["dataset_dir"] = args.dataset_dir
        nodes.append(spec("pld_residual", "recorder", **recorder))
    if args.mode == "train" and args.learner == "local":
        nodes.append(build_learner(args, config_dir))
    return nodes


def build_learner(args: GraphArgs, config_dir: Path | None = None) -> NodeSpec:
    """The learner node: in the graph with learner:=local, alone in `launch/remote_learner.launch.py`."""
    overrides = {"use_sim_time": True} if args.sim else {}
    return NodeSpec(
        "pld_residual", "learner", "learner", args.namespace, parameter_file(args.task, config_dir), overrides
    )


def config_dirs() -> list[Path]:
    """Where task YAMLs are looked for: the source tree's `config/` (next to this package, also with
    `colcon build --symlink-install` / `pip install -e`), then each `share/pld_franka_bringup/config` of
    AMENT_PREFIX_PATH (where setup.py installs `config/*.yaml`)."""
    dirs = [Path(__file__).resolve().parent.parent / "config"]
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        if prefix:
            dirs.append(Path(prefix) / "share" / PACKAGE / "config")
    return dirs


def parameter_file(task: str, config_dir: Path | None = None) -> Path:
    """The parameter file of `task`: `<config_dir>/<task>.yaml`, or the first one of `config_dirs()`."""
    candidates = [Path(config_dir)] if config_dir is not None else config_dirs()
    for directory in candidates:
        path = directory / f"{task}.yaml"
        if path.is_file():
            return path.resolve()
    available = sorted({p.stem for d in candidates if d.is_dir() for p in d.glob("*.yaml")})
    raise ValueError(
        f"no graph preset for task {task!r}: {task}.yaml is not in {[str(d) for d in candidates]}; "
        f"presets: {available}"
    )


def node_section_keys(name: str, namespace: str = "") -> tuple[str, ...]:
    """YAML keys that address node `name` in `namespace`, in increasing precedence (rcl's matching rules
    for what the presets use: `/**` = every node, `/**/<name>` = that node in any namespace)."""
    keys = ["/**", name, f"/{name}", f"/**/{name}"]
    namespace = namespace.strip("/")
    if namespace:
        keys.append(f"/{namespace}/{name}")
    return tuple(keys)


def load_node_parameters(spec: NodeSpec) -> dict[str, Any]:
    """The parameters `spec`'s node runs with: its YAML sections merged, then the overrides on top."""
    with open(spec.params_file, encoding="utf-8") as stream:
        document = yaml.safe_load(stream) or {}
    if not isinstance(document, dict):
        raise ValueError(
            f"{spec.params_file}: expected a mapping of node names, got {type(document).__name__}"
        )
    values: dict[str, Any] = {}
    for key in node_section_keys(spec.name, spec.namespace):
        section = document.get(key)
        if section is None:
            continue
        params = section.get("ros__parameters") if isinstance(section, dict) else None
        if not isinstance(params, dict):
            raise ValueError(f"{spec.params_file}: section {key!r} needs a 'ros__parameters:' mapping")
        values.update(params)
    values.update(spec.overrides)
    return values


def import_ref(ref: str) -> Any:
    """The object named by a NODE_TYPES string 'module:Name' (ImportError / AttributeError if absent)."""
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name}:={value!r} is not valid; expected one of {', '.join(choices)}")


def _parse_bool(name: str, text: str) -> bool:
    lowered = text.lower()
    if lowered not in _BOOLS:
        raise ValueError(f"{name}:={text!r} is not valid; expected true or false")
    return lowered == "true"


def _parse_int(name: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{name}:={text!r} is not valid; expected an integer") from None
