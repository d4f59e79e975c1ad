"""The one validated configuration of the residual actor (the 20 Hz action combiner).

Each field is one read-only ROS parameter of `residual_actor_node`; YAML presets and in-process runs use
`from_dict` / `to_dict`. Invalid values fail at construction with a message naming the field, so a bad
launch file stops the node before it sends a single command.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from pld_residual.agent.config import ResidualSACConfig

FEATURE_SOURCES = ("chunk", "none")
TRIGGERS = ("timer", "observation")
WORKSPACE_MODES = ("clip", "reject")


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass(frozen=True)
class ResidualActorConfig:
    """Options of the residual actor; see `pld_residual/README.md` for how the safety rules use them."""

    rate_hz: float = field(default=20.0, metadata=_help("control rate of the command timer (Hz)"))
    watchdog_s: float = field(
        default=0.2,
        metadata=_help("hold when the newest observation or action chunk is older than this (by its stamp)"),
    )
    max_delta_translation_m: float = field(
        default=0.02, metadata=_help("largest |dx|, |dy|, |dz| per control step (m), clipped per axis")
    )
    max_delta_rotation_rad: float = field(
        default=0.1, metadata=_help("largest |drx|, |dry|, |drz| per control step (rad), clipped per axis")
    )
    action_scale_translation_m: float = field(
        default=0.02,
        metadata=_help(
            "translation of a normalised action of 1 (m); the agent's [-1, 1] space, as in training"
        ),
    )
    action_scale_rotation_rad: float = field(
        default=0.1, metadata=_help("rotation of a normalised action of 1 (rad), as in training")
    )
    max_delta_gripper: float = field(
        default=2.0, metadata=_help("largest change of the gripper command per step (2 = no limit)")
    )
    workspace_enabled: bool = field(
        default=True, metadata=_help("keep the TCP (observation proprio[:3]) inside the workspace box")
    )
    workspace_mode: str = field(
        default="clip", metadata=_help("'clip' the translation at the box, or 'reject' (hold) the command")
    )
    workspace_x_min: float = field(default=0.2, metadata=_help("workspace box, robot base frame (m)"))
    workspace_x_max: float = field(default=0.8, metadata=_help("workspace box, robot base frame (m)"))
    workspace_y_min: float = field(default=-0.5, metadata=_help("workspace box, robot base frame (m)"))
    workspace_y_max: float = field(default=0.5, metadata=_help("workspace box, robot base frame (m)"))
    workspace_z_min: float = field(default=0.0, metadata=_help("workspace box, robot base frame (m)"))
    workspace_z_max: float = field(default=0.7, metadata=_help("workspace box, robot base frame (m)"))
    initial_gripper: float = field(
        default=-1.0, metadata=_help("gripper command of a hold before any command was sent (-1 open)")
    )
    xi: float = field(default=0.5, metadata=_help("residual scale: command = base + xi * residual"))
    residual_enabled: bool = field(
        default=True, metadata=_help("false: pass the base action through (provenance BASE)")
    )
    deterministic: bool = field(
        default=True, metadata=_help("residual mean action (true) or a sample from the policy (exploration)")
    )
    checkpoint: str = field(
        default="", metadata=_help("ResidualPolicy directory loaded at start; '' = wait for policy_params")
    )
    params_topic_enabled: bool = field(
        default=True, metadata=_help("take new parameters from the policy_params topic")
    )
    agent_options: dict[str, Any] = field(
        default_factory=dict,
        metadata=_help(
            "ResidualSACConfig of the learner as a dict (JSON object string as a ROS parameter); "
            "shapes the policy that policy_params blobs load into when no checkpoint is given"
        ),
    )
    features_source: str = field(
        default="chunk",
        metadata=_help("residual input: 'chunk' = concat(ActionChunk.features, proprio), 'none' = proprio"),
    )
    seed: int = field(default=0, metadata=_help("seed of a policy built for policy_params (sampling noise)"))
    trigger: str = field(
        default="timer",
        metadata=_help(
            "'timer': one command per period of the node clock (realtime); 'observation': one command per "
            "new observation once a chunk covers it (lockstep sim: as fast as the graph answers)"
        ),
    )
    execute_steps: int = field(
        default=0,
        metadata=_help(
            "trigger 'observation': a chunk serves at most this many steps, then the actor waits (up to "
            "watchdog_s of wall time) for the next; 0 = any row of the horizon. = the VLA's every_n_steps"
        ),
    )
    wait_for_chunk: bool = field(
        default=True,
        metadata=_help(
            "trigger 'observation': wait (up to watchdog_s of wall time) for the chunk that covers a new "
            "observation, as `pld learn` does (lockstep); false: act at once with what there is, a hold "
            "while no chunk of the episode has come (realtime: the loop never waits for the VLA)"
        ),
    )
    status_period_s: float = field(default=1.0, metadata=_help("period of the actor_status topic (s)"))

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            expected = dict if f.name == "agent_options" else type(f.default)
            if expected is float:
                ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
            else:
                ok = isinstance(value, expected) and (expected is bool or not isinstance(value, bool))
            if not ok:
                raise ValueError(
                    f"ResidualActorConfig.{f.name}: must be a finite {expected.__name__}, got {value!r}"
                )
            if expected is float:  # ROS integer parameters (`-p rate_hz:=20`) arrive as int
                object.__setattr__(self, f.name, float(value))
        for name in (
            "rate_hz",
            "watchdog_s",
            "max_delta_translation_m",
            "max_delta_rotation_rad",
            "max_delta_gripper",
            "action_scale_translation_m",
            "action_scale_rotation_rad",
            "status_period_s",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"ResidualActorConfig.{name}: must be positive, got {getattr(self, name)}")
        if self.watchdog_s < self.period_s:
            raise ValueError(
                f"ResidualActorConfig.watchdog_s: {self.watchdog_s} s is shorter than one control period "
                f"({self.period_s} s), so the actor would only ever hold"
            )
        for axis in "xyz":
            low, high = getattr(self, f"workspace_{axis}_min"), getattr(self, f"workspace_{axis}_max")
            if not low < high:
                raise ValueError(
                    f"ResidualActorConfig.workspace_{axis}_min: {low} must be below the max {high}"
                )
        if self.workspace_mode not in WORKSPACE_MODES:
            raise ValueError(
                f"ResidualActorConfig.workspace_mode: must be one of {list(WORKSPACE_MODES)}, "
                f"got {self.workspace_mode!r}"
            )
        if self.features_source not in FEATURE_SOURCES:
            raise ValueError(
                f"ResidualActorConfig.features_source: must be one of {list(FEATURE_SOURCES)}, "
                f"got {self.features_source!r}"
            )
        if self.trigger not in TRIGGERS:
            raise ValueError(
                f"ResidualActorConfig.trigger: must be one of {list(TRIGGERS)}, got {self.trigger!r}"
            )
        if self.execute_steps < 0:
            raise ValueError(f"ResidualActorConfig.execute_steps: must be >= 0, got {self.execute_steps}")
        if not -1.0 <= self.initial_gripper <= 1.0:
            raise ValueError(
                f"ResidualActorConfig.initial_gripper: must be in [-1, 1], got {self.initial_gripper}"
            )
        if not 0.0 <= self.xi <= 1.0:
            raise ValueError(f"ResidualActorConfig.xi: must be in [0, 1], got {self.xi}")
        if self.seed < 0:
            raise ValueError(f"ResidualActorConfig.seed: must be >= 0, got {self.seed}")
        if self.checkpoint and not Path(self.checkpoint).exists():
            raise ValueError(f"ResidualActorConfig.checkpoint: {self.checkpoint!r} does not exist")
        try:  # a typo in an option fails here, not when the first parameters arrive
            self.agent_config()
        except (TypeError, ValueError) as exc:
            raise ValueError(f"ResidualActorConfig.agent_options: {exc}") from None

    def agent_config(self) -> ResidualSACConfig:
        """The learner's agent config that `policy_params` blobs are shaped by (without a checkpoint)."""
        return ResidualSACConfig.from_dict(self.agent_options)

    @property
    def period_s(self) -> float:
        return 1.0 / self.rate_hz

    @property
    def period_ns(self) -> int:
        return round(1e9 / self.rate_hz)

    @property
    def action_high(self) -> np.ndarray:
        """Physical size of a normalised action of 1 per dimension (the learner's action space)."""
        t, r = self.action_scale_translation_m, self.action_scale_rotation_rad
        return np.array([t, t, t, r, r, r, 1.0])

    @property
    def watchdog_ns(self) -> int:
        return round(self.watchdog_s * 1e9)

    @property
    def workspace_low(self) -> tuple[float, float, float]:
        return (self.workspace_x_min, self.workspace_y_min, self.workspace_z_min)

    @property
    def workspace_high(self) -> tuple[float, float, float]:
        return (self.workspace_x_max, self.workspace_y_max, self.workspace_z_max)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> ResidualActorConfig:
        """From YAML / ROS parameter values; `agent_options` may be a JSON object string."""
        values = dict(values)
        unknown = sorted(set(values) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"ResidualActorConfig: unknown option(s) {unknown}")
        options = values.get("agent_options")
        if isinstance(options, str):
            try:
                values["agent_options"] = json.loads(options) if options.strip() else {}
            except json.JSONDecodeError as exc:
                raise ValueError(f"ResidualActorConfig.agent_options: not a JSON object: {exc}") from None
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
