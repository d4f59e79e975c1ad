"""The residual learner of the ROS graph, without ROS: episodes rebuilt from the topics
(`graph_transitions`) go into the same replay buffers, through the same `EpisodeRecorder` and the same
jitted update calls (`loop.update_call`) as `pld learn`; parameters leave as versioned blobs.

Like `pld learn` (config from the same YAML, `learn_config`): warm-up episodes (driven by the base; the
episode manager decides which) go to the online buffer whole, and their successes also to the offline
buffer (up to `offline_episodes`: the base successes PLD replays 50/50); probing steps stay out of replay;
every env step of a non-warm-up episode owes `utd_ratio` gradient steps. The difference: the graph is
asynchronous, so an episode's transitions arrive when it ends and its updates run while the next one
plays (the actor acts with the parameters of the latest publication, as on a robot).

State lives in `out_dir` (`pld learn`'s checkpoint layout): restarting the node with the same `out_dir`
resumes; `policy/` always holds the newest published actor (for `mode:=collect` / `eval`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from pld_residual.learning.graph_transitions import EpisodeSteps
from pld_residual.replay.probing import EpisodePlan
from pld_sim.config_checks import check_field_types, config_from_dict

ROLLING = 20  # episodes in the reported recent training success rate


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass(frozen=True)
class LearnerNodeConfig:
    """Options of the learner node (one ROS parameter each); the algorithm's own come from `learn_config`."""

    learn_config: str = field(
        default="",
        metadata=_help("pld learn YAML (LearnConfig fields, agent: ...); '' = pld learn's defaults"),
    )
    out_dir: str = field(default="", metadata=_help("run directory; '' = runs/<time>-graph-learn-<task>"))
    publish_every_updates: int = field(
        default=100, metadata=_help("publish policy_params after this many gradient steps")
    )
    checkpoint_every_steps: int = field(
        default=5000, metadata=_help("env steps between checkpoints (and at shutdown)")
    )
    max_update_calls_per_tick: int = field(
        default=4, metadata=_help("jitted update calls per timer tick, so callbacks keep flowing")
    )
    control_hz: float = field(default=20.0, metadata=_help("control rate: chunk rows are this far apart"))
    action_scale_translation_m: float = field(
        default=0.02, metadata=_help("translation of a normalised action of 1 (m); = the actor's")
    )
    action_scale_rotation_rad: float = field(
        default=0.1, metadata=_help("rotation of a normalised action of 1 (rad); = the actor's")
    )
    seed: int = field(default=0, metadata=_help("seed of the learner state and its batch sampling"))
    status_period_s: float = field(default=1.0, metadata=_help("period of the learner_status topic (s)"))

    def __post_init__(self) -> None:
        check_field_types(self)
        for name in ("publish_every_updates", "checkpoint_every_steps", "max_update_calls_per_tick"):
            if getattr(self, name) < 1:
                raise ValueError(f"LearnerNodeConfig.{name}: must be >= 1, got {getattr(self, name)}")
        for name in (
            "control_hz",
            "action_scale_translation_m",
            "action_scale_rotation_rad",
            "status_period_s",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"LearnerNodeConfig.{name}: must be positive, got {getattr(self, name)}")
        if self.learn_config and not Path(self.learn_config).is_file():
            raise ValueError(f"LearnerNodeConfig.learn_config: {self.learn_config!r} is not a file")

    @property
    def action_high(self) -> np.ndarray:
        t, r = self.action_scale_translation_m, self.action_scale_rotation_rad
        return np.array([t, t, t, r, r, r, 1.0], np.float32)

    @property
    def period_ns(self) -> int:
        return round(1e9 / self.control_hz)

    def learn(self) -> Any:
        """The LearnConfig of `learn_config` (as `pld learn --config-file` reads it)."""
        from pld_residual.cli.learn import load_config_file
        from pld_residual.learning.config import LearnConfig

        values = load_config_file(Path(self.learn_config)) if self.learn_config else {}
        return LearnConfig.from_dict({**values, "seed": values.get("seed", self.seed)})

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> LearnerNodeConfig:
        return config_from_dict(cls, values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class GraphLearner:
    """Replay, agent and counters of the graph's learner; see the module docstring. Not thread-safe."""

    def __init__(self, cfg: LearnerNodeConfig) -> None:
        from pld_residual.learning.methods import METHODS

        self.cfg = cfg
        self.learn = cfg.learn()
        self.method = METHODS.lookup(self.learn.method)
        if not (self.method.guided and self.method.probing):
            raise ValueError(
                f"the graph learner runs PLD-style methods (guided, probing), not {self.learn.method!r}"
            )
        task = self.learn.task
        self.out = Path(cfg.out_dir) if cfg.out_dir else _default_out(task)
        self.out.mkdir(parents=True, exist_ok=True)
        self.state: Any = None
        self.online: Any = None
        self.offline: Any = None
        self.rng = np.random.default_rng(self.learn.seed)
        self.obs_fields = ("features", "proprio")
        self.version = 0  # policy_params publications
        self.published_at_updates = -1
        self.last_info: dict[str, Any] = {}
        self.last_error = ""
        self.episodes_skipped: dict[str, int] = {}
        self.start = time.monotonic()
        from pld_residual.learning.run_state import LoopCounters, find_checkpoint, load_run

        self.counters = LoopCounters(next_checkpoint_at=cfg.checkpoint_every_steps)
        checkpoint = find_checkpoint(self.out)
        if checkpoint is not None:
            self.state, self.online, self.offline, self.counters, _ = load_run(checkpoint)
            self.rng.bit_generator.state = self.counters.rng_state
            self.start -= self.counters.wall_time_s

    # ------------------------------------------------------------------ creation

    @property
    def ready(self) -> bool:
        return self.state is not None

    def _create(self, steps: EpisodeSteps) -> None:
        from pld_residual.agent import learner
        from pld_residual.replay import FieldSpec, ObsSpec, ReplayBuffer

        agent_cfg = self.method.agent_config(self.learn.agent_config())
        if "action_dim" not in self.learn.agent:
            agent_cfg = agent_cfg.replace(action_dim=len(steps.actions[0]))
        first = steps.fields[0]
        obs_dim = sum(first[name].size for name in self.obs_fields)
        self.state = learner.create(agent_cfg, int(obs_dim), seed=self.learn.seed)
        spec = ObsSpec(tuple((name, FieldSpec(value.shape, "float32")) for name, value in first.items()))
        args = dict(action_dim=agent_cfg.action_dim, gamma=agent_cfg.gamma, reward_bias=agent_cfg.reward_bias,
                    n_step=agent_cfg.n_step)  # fmt: skip
        self.online = ReplayBuffer(spec, self.learn.buffer_capacity, **args)
        capacity = max(2, self.learn.offline_episodes * (len(steps.actions) + 1) * 2)
        self.offline = ReplayBuffer(spec, capacity, **args)

    # ------------------------------------------------------------------ episodes

    def add_episode(
        self, steps: EpisodeSteps, t_base: int, time_limit: int, warmup: bool, success: bool
    ) -> bool:
        """Put one finished episode into replay; False (counted) when it could not be rebuilt."""
        from pld_residual.replay import EpisodeRecorder

        if steps.problem or steps.length == 0:
            reason = steps.problem.split(" ")[0] if steps.problem else "empty"
            self.episodes_skipped[reason] = self.episodes_skipped.get(reason, 0) + 1
            return False
        if self.state is None:
            self._create(steps)
        plan = (
            EpisodePlan.warmup_episode(time_limit)
            if warmup
            else EpisodePlan(base_steps=min(t_base, time_limit), time_limit_steps=time_limit)
        )
        recorder = EpisodeRecorder(plan, self.online)
        n = steps.length
        for k in range(n):
            terminated = steps.terminated and k == n - 1
            truncated = k == n - 1 and not terminated
            obs, next_obs = steps.fields[k], steps.fields[k + 1]
            recorder.step(
                obs, steps.actions[k], steps.rewards[k], next_obs, terminated, truncated, plan.controller(k)
            )
        c = self.counters
        c.episodes += 1
        c.env_steps += n
        c.train_outcomes.append(bool(success))
        if warmup:
            if success and self._offline_episodes() < self.learn.offline_episodes:
                self.offline.add_episode(steps.fields, steps.actions, steps.rewards, terminated=True)
        else:
            c.train_residual_outcomes.append(bool(success) and n > plan.base_steps)
            # pld learn owes updates for every env step of a non-warm-up episode, probing steps included
            c.pending_updates += self.state.config.utd_ratio * n
        if c.episodes % 10 == 0:
            self._curve_point()
        return True

    def _offline_episodes(self) -> int:
        return (
            int(self.offline.num_episodes)
            if hasattr(self.offline, "num_episodes")
            else len(self.offline) // 2
        )

    # ------------------------------------------------------------------ updates

    def run_updates(self, max_calls: int) -> int:
        """Run up to `max_calls` owed update calls; returns how many ran."""
        from pld_residual.learning.loop import update_call
        from pld_residual.replay import HybridSampler

        if self.state is None:
            return 0
        config, c = self.state.config, self.counters
        if len(self.online) == 0 and len(self.offline) == 0:
            return 0
        fraction = self.method.offline_fraction if len(self.offline) > 0 else 0.0
        sampler = HybridSampler(self.offline if fraction > 0 else self.online, self.online, fraction)
        calls = 0
        while c.pending_updates >= config.updates_per_call and calls < max_calls:
            self.state, self.last_info = update_call(
                self.state, sampler, self.rng, self.obs_fields, c.updates
            )
            c.pending_updates -= config.updates_per_call
            c.updates += config.updates_per_call
            calls += 1
        return calls

    def params_due(self) -> bool:
        """A first publication as soon as the state exists, then every `publish_every_updates`."""
        if self.state is None:
            return False
        if self.version == 0:
            return True
        return self.counters.updates - self.published_at_updates >= self.cfg.publish_every_updates

    def params_blob(self) -> tuple[int, int, str, bytes]:
        """(version, updates, format, blob) of the deployed actor; also saved as `policy/`."""
        from pld_residual.agent.policy import PARAMS_FORMAT, ResidualPolicy

        policy = ResidualPolicy.from_learner(self.state)
        self.version += 1
        self.published_at_updates = self.counters.updates
        return self.version, self.counters.updates, PARAMS_FORMAT, policy.params_to_bytes()

    # ------------------------------------------------------------------ files

    def checkpoint_due(self) -> bool:
        return self.state is not None and self.counters.env_steps >= self.counters.next_checkpoint_at

    def checkpoint(self) -> None:
        """Full checkpoint (resume) and `policy/` (deployable actor)."""
        from pld_residual.agent.policy import ResidualPolicy
        from pld_residual.learning.run_state import save_run

        if self.state is None:
            return
        c = self.counters
        while c.next_checkpoint_at <= c.env_steps:
            c.next_checkpoint_at += self.cfg.checkpoint_every_steps
        c.rng_state = self.rng.bit_generator.state
        c.wall_time_s = time.monotonic() - self.start
        save_run(self.out, self.state, self.online, self.offline, c, self.learn.to_dict())
        ResidualPolicy.from_learner(self.state).save(self.out / "policy")
        self._curve_point(write_only=True)

    def _curve_point(self, write_only: bool = False) -> None:
        from pld_residual.learning.curve import write_curve
        from pld_residual.learning.evaluation import wilson_interval

        c = self.counters
        recent = c.train_outcomes[-ROLLING:]
        if not recent:
            return
        if not write_only:
            successes = int(sum(recent))
            low, high = wilson_interval(successes, len(recent))
            residual = c.train_residual_outcomes[-ROLLING:]
            c.curve.append({
                "env_steps": c.env_steps, "episodes": c.episodes, "updates": c.updates,
                "success_rate": successes / len(recent), "ci95": [low, high],
                "residual_success_rate": float(np.mean(residual)) if residual else None,
                "wall_time_s": round(time.monotonic() - self.start, 1),
            })  # fmt: skip
        if c.curve:
            title = f"graph training on {self.learn.task}: success of the last {ROLLING} episodes"
            write_curve(self.out, c.curve, title)

    def status(self) -> dict[str, Any]:
        c = self.counters
        recent = c.train_outcomes[-ROLLING:]
        return {
            "out_dir": str(self.out), "ready": self.ready, "episodes": c.episodes, "env_steps": c.env_steps,
            "updates": c.updates, "pending_updates": c.pending_updates, "params_version": self.version,
            "online": 0 if self.online is None else len(self.online),
            "offline": 0 if self.offline is None else len(self.offline),
            "recent_success_rate": float(np.mean(recent)) if recent else None,
            "episodes_skipped": dict(self.episodes_skipped),
            "last_update": {k: round(float(v), 5) for k, v in self.last_info.items()},
            "last_error": self.last_error,
        }  # fmt: skip


def _default_out(task: str) -> Path:
    from pld_residual.cli.workspace import workspace_root

    return (workspace_root() or Path.cwd()) / "runs" / f"{datetime.now():%Y%m%d-%H%M%S}-graph-learn-{task}"
