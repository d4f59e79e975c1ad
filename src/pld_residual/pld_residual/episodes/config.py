"""The one validated configuration of the episode manager node (each field is one ROS parameter)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from pld_sim.config_checks import check_field_types, config_from_dict

MODES = ("train", "collect", "eval")


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass(frozen=True)
class EpisodeManagerConfig:
    """Options of the episode manager; `pld_residual/README.md` describes the state machine they drive."""

    task: str = field(default="pick_cube", metadata=_help("task of the registry to reset to"))
    stage: int = field(default=0, metadata=_help("GPU-insertion stage (1..4); 0 for single-stage tasks"))
    mode: str = field(
        default="train",
        metadata=_help("train: warm-up then probing; collect: probing; eval: the residual from step 0"),
    )
    num_episodes: int = field(
        default=0, metadata=_help("episodes to run at start; 0 = wait for run_episodes goals")
    )
    seed: int = field(
        default=0, metadata=_help("seed of the first episode (episode i: seed + i); negative = drawn")
    )
    time_limit_steps: int = field(
        default=0, metadata=_help("control steps per episode at most; 0 = the task's own limit")
    )
    control_hz: float = field(default=20.0, metadata=_help("control rate (for the task's time limit)"))
    probing_alpha: float = field(
        default=0.5, metadata=_help("T_base ~ U{0..floor(alpha * T)} base-only steps (train, collect)")
    )
    warmup_episodes: int = field(default=100, metadata=_help("train: first episodes driven by the base only"))
    abort_after_hold_s: float = field(
        default=1.0,
        metadata=_help("abort the episode after this long (wall clock) without a non-hold command"),
    )
    reset_timeout_s: float = field(
        default=10.0, metadata=_help("retry a reset that has not answered after this long (wall clock)")
    )
    vla_status_timeout_s: float = field(
        default=3.0,
        metadata=_help(
            "start an episode only while the VLA server's vla_status said ready within this long (wall "
            "clock); 0 = do not wait for it"
        ),
    )
    probing_seed: int = field(default=0, metadata=_help("seed of the T_base draws"))
    status_period_s: float = field(default=1.0, metadata=_help("period of the episode_status topic (s)"))

    def __post_init__(self) -> None:
        check_field_types(self)
        if not self.task:
            raise ValueError("EpisodeManagerConfig.task: must not be empty")
        if self.mode not in MODES:
            raise ValueError(f"EpisodeManagerConfig.mode: must be one of {list(MODES)}, got {self.mode!r}")
        for name in ("stage", "num_episodes", "time_limit_steps", "warmup_episodes", "probing_seed"):
            if getattr(self, name) < 0:
                raise ValueError(f"EpisodeManagerConfig.{name}: must be >= 0, got {getattr(self, name)}")
        if self.vla_status_timeout_s < 0:
            raise ValueError(
                f"EpisodeManagerConfig.vla_status_timeout_s: must be >= 0, got {self.vla_status_timeout_s}"
            )
        for name in ("control_hz", "abort_after_hold_s", "reset_timeout_s", "status_period_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"EpisodeManagerConfig.{name}: must be positive, got {getattr(self, name)}")
        if not 0.0 <= self.probing_alpha <= 1.0:
            alpha = self.probing_alpha
            raise ValueError(f"EpisodeManagerConfig.probing_alpha: must be in [0, 1], got {alpha}")

    def resolved_time_limit(self, task: str | None = None) -> int:
        """`time_limit_steps`, or the task's own limit at `control_hz` (pld_sim's registry)."""
        if self.time_limit_steps > 0:
            return self.time_limit_steps
        from pld_sim.tasks import TASKS

        name = task or self.task
        if name not in TASKS:
            raise ValueError(f"unknown task {name!r}: set time_limit_steps, or use one of {sorted(TASKS)}")
        return round(TASKS[name].time_limit_s * self.control_hz)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> EpisodeManagerConfig:
        return config_from_dict(cls, values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
