"""The safety combiner: base action + xi * residual -> the command a robot may execute. Pure numpy.

Every rule that stops or changes a command is an *intervention*, returned with the command so the
node can count and publish it. Rules, in order (the first hold reason wins, one per step):

1. e-stop engaged -> hold.
2. stale observation (none, or its stamp more than `watchdog_s` from now) -> hold.
3. stale base (no chunk row applies now, or the chunk's stamp more than `watchdog_s` from now) -> hold.
4. the TCP position (proprio[:3]) is missing or not finite while the workspace box is enabled -> hold.
5. NaN / inf in the base action, then in the residual -> hold.
6. combine as the learner does (`pld_residual.agent.combine.combine`: clip(base + xi * residual) to
   [-1, 1]), then clip per step: translation and rotation per axis, the gripper's change against the
   last gripper command -> `clip_delta` when anything changed.
7. workspace box: the translation is clipped so the TCP does not leave the box (an axis already
   outside may only move back towards it) -> `workspace`; in `reject` mode the command is held instead.

Hold = zero delta pose with the last gripper command (never opens or closes the gripper on its own),
provenance HOLD. Stamps are integer nanoseconds on the node's clock (sim time with use_sim_time).
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass
from typing import NamedTuple

import numpy as np

from pld_residual.actor.config import ResidualActorConfig
from pld_residual.agent.combine import combine

ACTION_DIM = 7
GRIPPER = ACTION_DIM - 1


class Provenance(enum.IntEnum):
    """Who decided a command; values equal pld_interfaces/ActionCommand's PROVENANCE_* constants."""

    BASE = 0
    RESIDUAL = 1
    HUMAN = 2
    HOLD = 3


class Intervention(enum.StrEnum):
    """What the safety layer did to one command; the value is the counter's name."""

    ESTOP = "estop"
    STALE_OBSERVATION = "stale_observation"
    STALE_CHUNK = "stale_chunk"
    INVALID_PROPRIO = "invalid_proprio"
    NONFINITE_BASE = "nonfinite_base"
    NONFINITE_RESIDUAL = "nonfinite_residual"
    POLICY_ERROR = "policy_error"  # the residual policy raised (decided by the caller, not here)
    CLIP_DELTA = "clip_delta"
    WORKSPACE = "workspace"


class Combined(NamedTuple):
    command: np.ndarray  # float64 (7,)
    provenance: Provenance
    interventions: tuple[Intervention, ...]


@dataclass
class SafetyCounters:
    """Commands per intervention kind (a held step counts its one hold reason), plus totals."""

    commands: int = 0
    holds: int = 0
    estop: int = 0
    stale_observation: int = 0
    stale_chunk: int = 0
    invalid_proprio: int = 0
    nonfinite_base: int = 0
    nonfinite_residual: int = 0
    policy_error: int = 0
    clip_delta: int = 0
    workspace: int = 0

    def record(self, combined: Combined) -> None:
        self.commands += 1
        self.holds += combined.provenance is Provenance.HOLD
        for kind in combined.interventions:
            setattr(self, kind.value, getattr(self, kind.value) + 1)

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def hold_command(last_gripper: float) -> np.ndarray:
    """Zero delta pose, gripper kept at its last command."""
    command = np.zeros(ACTION_DIM)
    command[GRIPPER] = last_gripper
    return command


def hold(last_gripper: float, reason: Intervention, *also: Intervention) -> Combined:
    return Combined(hold_command(last_gripper), Provenance.HOLD, (*also, reason))


def is_stale(stamp_ns: int | None, now_ns: int, watchdog_ns: int) -> bool:
    """No stamp, or a stamp further than the watchdog from now (in the past, or in the future: clocks
    that disagree must not pass as fresh)."""
    return stamp_ns is None or abs(now_ns - stamp_ns) > watchdog_ns


def _vector(name: str, values: np.ndarray) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64).ravel()
    if array.shape != (ACTION_DIM,):
        raise ValueError(f"{name} must have {ACTION_DIM} values, got {array.size}")
    return array


def combine_safely(
    base: np.ndarray | None,
    residual: np.ndarray | None,
    xi: float,
    proprio: np.ndarray | None,
    cfg: ResidualActorConfig,
    now_ns: int,
    obs_stamp_ns: int | None,
    chunk_stamp_ns: int | None,
    estop: bool = False,
    *,
    last_gripper: float | None = None,
) -> Combined:
    """The command for this control step, its provenance and the interventions (see the module doc).

    `base` is the chunk row that applies now (None: no row applies -> stale), `residual` the policy's raw
    output in [-1, 1] (None: the residual does not act -> provenance BASE). `last_gripper` is the gripper
    of the previous command (None: `cfg.initial_gripper`). Raises ValueError only for wrong shapes.
    """
    gripper = cfg.initial_gripper if last_gripper is None else float(last_gripper)
    watchdog_ns = cfg.watchdog_ns
    if estop:
        return hold(gripper, Intervention.ESTOP)
    if is_stale(obs_stamp_ns, now_ns, watchdog_ns):
        return hold(gripper, Intervention.STALE_OBSERVATION)
    if base is None or is_stale(chunk_stamp_ns, now_ns, watchdog_ns):
        return hold(gripper, Intervention.STALE_CHUNK)
    tcp = None
    if cfg.workspace_enabled:
        tcp = None if proprio is None else np.asarray(proprio, dtype=np.float64).ravel()[:3]
        if tcp is None or tcp.size < 3 or not np.all(np.isfinite(tcp)):
            return hold(gripper, Intervention.INVALID_PROPRIO)
    base = _vector("base", base)
    if not np.all(np.isfinite(base)):
        return hold(gripper, Intervention.NONFINITE_BASE)
    if residual is not None:
        residual = _vector("residual", residual)
        if not np.all(np.isfinite(residual)):
            return hold(gripper, Intervention.NONFINITE_RESIDUAL)

    interventions: list[Intervention] = []
    # The residual lives in the learner's normalised space: combine there, as training did, then scale.
    high = cfg.action_high
    raw = base if residual is None else base + xi * residual * high
    delta = np.zeros(ACTION_DIM) if residual is None else residual
    command = high * np.asarray(combine(base / high, delta, xi), np.float64)
    t, r = cfg.max_delta_translation_m, cfg.max_delta_rotation_rad
    command[:3] = np.clip(command[:3], -t, t)
    command[3:6] = np.clip(command[3:6], -r, r)
    in_range = command[GRIPPER]  # the gripper range clip of `combine` is the command's definition, not a rule
    command[GRIPPER] = np.clip(in_range, gripper - cfg.max_delta_gripper, gripper + cfg.max_delta_gripper)
    if not np.allclose(command[:6], raw[:6], rtol=1e-9, atol=1e-12) or command[GRIPPER] != in_range:
        interventions.append(Intervention.CLIP_DELTA)

    if tcp is not None:
        low = np.asarray(cfg.workspace_low) - tcp
        high = np.asarray(cfg.workspace_high) - tcp
        inside = np.clip(command[:3], np.minimum(low, 0.0), np.maximum(high, 0.0))
        if np.any(inside != command[:3]):
            if cfg.workspace_mode == "reject":
                return hold(gripper, Intervention.WORKSPACE, *interventions)
            interventions.append(Intervention.WORKSPACE)
            command[:3] = inside

    provenance = Provenance.BASE if residual is None else Provenance.RESIDUAL
    return Combined(command, provenance, tuple(interventions))
