"""The residual actor without ROS: newest observation + current chunk -> residual -> safe command.

The node only converts messages and calls this class, so the same loop runs in-process (tests, bench)
and behind DDS. One `tick(now_ns)` per control period:

1. the current chunk's row for `now` is the base action (`chunk_index.chunk_row`; none -> stale);
2. with a policy loaded and the residual enabled, the residual policy sees
   concat(chunk features, proprio) (`features_source`) and the base action;
3. `safety.combine_safely` makes the command, provenance and interventions; all are counted.

Parameters come from a checkpoint at start and/or as versioned blobs (`apply_params`): a blob is applied
only when its version is higher than the current one, a bad blob is counted and the old parameters
stay. Without a checkpoint, the policy the first blob loads into is built from `agent_options` once the
input size is known (first observation and chunk); until then the newest blob waits. Without any
parameters the base action passes through (provenance BASE).
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import numpy as np

from pld_residual.actor.chunk_index import chunk_row
from pld_residual.actor.config import ResidualActorConfig
from pld_residual.actor.episode_gate import EpisodeGate, next_gate
from pld_residual.actor.safety import (
    ACTION_DIM,
    Combined,
    Intervention,
    Provenance,
    SafetyCounters,
    combine_safely,
    hold,
)
from pld_residual.actor.timing import LoopTimer


class Policy(Protocol):
    """What the actor needs of `pld_residual.agent.policy.ResidualPolicy`."""

    @property
    def obs_dim(self) -> int: ...

    def act(self, obs: np.ndarray, base_action: np.ndarray, deterministic: bool = True) -> np.ndarray: ...

    def load_bytes(self, blob: bytes) -> None: ...


@dataclass(frozen=True)
class ObservationInput:
    """What the actor keeps of an Observation."""

    proprio: np.ndarray  # float32 [P]
    stamp_ns: int
    episode_id: int = 0
    step: int = 0
    frame_id: str = ""


@dataclass(frozen=True)
class ChunkInput:
    """What the actor keeps of an ActionChunk."""

    actions: np.ndarray  # float32 [H, 7]
    stamp_ns: int
    features: np.ndarray  # float32 [F], F may be 0
    model_id: str = ""

    @property
    def horizon(self) -> int:
        return int(self.actions.shape[0])


@dataclass(frozen=True)
class ActorStep:
    """One control step's output: what to publish as an ActionCommand."""

    command: np.ndarray  # float64 (7,)
    base: np.ndarray  # the chunk row, zeros when none applied or it was not finite
    residual: np.ndarray  # raw residual when it acted, zeros otherwise
    provenance: Provenance
    interventions: tuple[Intervention, ...]
    episode_id: int
    step: int
    frame_id: str


class ParamsOutcome(enum.StrEnum):
    APPLIED = "applied"
    IGNORED = "ignored"  # version not higher than the current (or waiting) one
    REJECTED = "rejected"  # wrong format, or a blob that does not fit the policy
    PENDING = "pending"  # kept until the input size is known


@dataclass
class InputCounters:
    """Events outside the combiner: parameter updates and malformed messages."""

    params_applied: int = 0
    params_ignored: int = 0
    params_rejected: int = 0
    invalid_observations: int = 0
    invalid_chunks: int = 0
    estop_engagements: int = 0


def residual_input(features: np.ndarray, proprio: np.ndarray, source: str) -> np.ndarray:
    """The residual policy's observation vector: concat(features, proprio) or proprio alone."""
    proprio = np.asarray(proprio, np.float32).ravel()
    if source == "none":
        return proprio
    return np.concatenate([np.asarray(features, np.float32).ravel(), proprio])


def load_checkpoint(cfg: ResidualActorConfig) -> Policy | None:
    """The policy saved at `cfg.checkpoint` (None when no checkpoint is configured)."""
    if not cfg.checkpoint:
        return None
    from pld_residual.agent.policy import ResidualPolicy  # jax: only when a policy is wanted

    return ResidualPolicy.load(cfg.checkpoint, seed=cfg.seed)


def default_policy_factory(cfg: ResidualActorConfig) -> Callable[[int], Policy]:
    """Builds the policy a first parameter blob loads into, shaped like the learner's (`agent_options`)."""

    def make(obs_dim: int) -> Policy:
        from pld_residual.agent.policy import ResidualPolicy

        return ResidualPolicy.create(cfg.agent_config(), obs_dim, seed=cfg.seed)

    return make


def params_format() -> str:
    from pld_residual.agent.policy import PARAMS_FORMAT

    return PARAMS_FORMAT


class ResidualActor:
    """State of the 20 Hz actor: inputs, policy and its version, e-stop, counters, loop timing."""

    def __init__(
        self,
        cfg: ResidualActorConfig,
        policy: Policy | None = None,
        *,
        policy_factory: Callable[[int], Policy] | None = None,
    ) -> None:
        self.cfg = cfg
        self.policy = policy
        self.params_version: int | None = 0 if policy is not None else None
        self.params_num_updates = 0
        self._policy_factory = policy_factory or default_policy_factory(cfg)
        self._pending: tuple[int, int, bytes] | None = None  # version, num_updates, blob
        self.observation: ObservationInput | None = None
        self.chunk: ChunkInput | None = None
        self.estop = False
        self.last_gripper = cfg.initial_gripper
        self.safety = SafetyCounters()
        self.inputs = InputCounters()
        self.timer = LoopTimer(cfg.period_s)
        self.last_error = ""
        self.last_step: ActorStep | None = None
        self._ages_s: dict[str, float | None] = {"observation_age_s": None, "chunk_age_s": None}
        self.gate: EpisodeGate | None = None  # None until the episode manager speaks: no gating

    # ------------------------------------------------------------------ inputs

    def set_observation(self, observation: ObservationInput) -> None:
        self.observation = observation

    def set_chunk(self, chunk: ChunkInput) -> None:
        if chunk.actions.ndim != 2 or chunk.actions.shape[1] != ACTION_DIM:
            raise ValueError(f"chunk actions must be [H, {ACTION_DIM}], got {chunk.actions.shape}")
        self.chunk = chunk

    def set_episode(self, phase: int, t_base: int, stamp_ns: int) -> None:
        """An EpisodeEvent: from now on act inside episodes only, the residual from step T_base."""
        self.gate = next_gate(self.gate, phase, t_base, stamp_ns)

    def may_act(self, observation: ObservationInput | None = None) -> bool:
        """Whether a command is wanted for this observation (False between episodes)."""
        obs = observation or self.observation
        if self.gate is None:
            return True
        return obs is not None and self.gate.running(obs.stamp_ns)

    def current_chunk(self) -> ChunkInput | None:
        """The chunk to index: none when it answers an observation from before the current episode (its
        rows continue the previous episode's motion, not this one's)."""
        chunk = self.chunk
        if chunk is not None and self.gate is not None and chunk.stamp_ns < self.gate.start_stamp_ns:
            return None
        return chunk

    def covering_time(self, obs: ObservationInput) -> int | None:
        """Observation trigger: the time to tick at for `obs` when the current chunk covers its step (within
        `execute_steps` rows; any row with 0), else None (its chunk is still coming). The row is taken on
        the step grid, as sim stamps jitter by a few ns, and the time is that row's start."""
        chunk = self.current_chunk()
        if chunk is None:
            return None
        period = self.cfg.period_ns
        row = (obs.stamp_ns - chunk.stamp_ns + period // 2) // period
        limit = self.cfg.execute_steps or chunk.horizon
        if not 0 <= row < min(limit, chunk.horizon):
            return None
        now = max(obs.stamp_ns, chunk.stamp_ns + row * period)
        return now if chunk_row(chunk.stamp_ns, now, period, chunk.horizon) == row else None

    def _residual_allowed(self, obs: ObservationInput) -> bool:
        return self.gate is None or self.gate.residual_allowed(obs.step, obs.stamp_ns)

    def reject_input(self, kind: str, reason: str) -> None:
        """Count a malformed observation or chunk ('observation' / 'chunk') and keep the reason."""
        name = "invalid_observations" if kind == "observation" else "invalid_chunks"
        setattr(self.inputs, name, getattr(self.inputs, name) + 1)
        self.last_error = f"invalid {kind}: {reason}"

    def set_estop(self, engaged: bool) -> bool:
        """Engage or release the e-stop; returns whether the state changed."""
        changed = engaged != self.estop
        self.estop = engaged
        self.inputs.estop_engagements += changed and engaged
        return changed

    # ------------------------------------------------------------------ parameters

    def apply_params(self, version: int, num_updates: int, fmt: str, blob: bytes) -> ParamsOutcome:
        """Take a versioned parameter blob: higher versions only; a bad blob keeps the old parameters."""
        newest = self.params_version if self._pending is None else self._pending[0]
        if newest is not None and version <= newest:
            self.inputs.params_ignored += 1
            return ParamsOutcome.IGNORED
        if fmt != params_format():
            self.inputs.params_rejected += 1
            self.last_error = f"params version {version}: format {fmt!r}, expected {params_format()!r}"
            return ParamsOutcome.REJECTED
        if self.policy is None:
            self._pending = (version, num_updates, bytes(blob))
            return self._resolve_pending()
        return self._load(version, num_updates, blob)

    def _load(self, version: int, num_updates: int, blob: bytes) -> ParamsOutcome:
        assert self.policy is not None
        try:
            self.policy.load_bytes(bytes(blob))
        except ValueError as exc:
            self.inputs.params_rejected += 1
            self.last_error = f"params version {version} rejected: {exc}"
            return ParamsOutcome.REJECTED
        self.params_version, self.params_num_updates = version, num_updates
        self.inputs.params_applied += 1
        return ParamsOutcome.APPLIED

    def _resolve_pending(self) -> ParamsOutcome:
        """Build the policy and load the waiting blob once an observation and a chunk give the input size."""
        if self._pending is None or self.observation is None or self.chunk is None:
            return ParamsOutcome.PENDING
        version, num_updates, blob = self._pending
        self._pending = None
        obs_dim = residual_input(self.chunk.features, self.observation.proprio, self.cfg.features_source).size
        try:
            policy = self._policy_factory(obs_dim)
        except Exception as exc:  # a config that cannot build a policy: report, keep passing the base
            self.inputs.params_rejected += 1
            self.last_error = f"params version {version}: cannot build a policy for obs_dim {obs_dim}: {exc}"
            return ParamsOutcome.REJECTED
        try:
            policy.load_bytes(bytes(blob))
        except ValueError as exc:
            self.inputs.params_rejected += 1
            self.last_error = f"params version {version} rejected: {exc}"
            return ParamsOutcome.REJECTED
        self.policy = policy
        self.params_version, self.params_num_updates = version, num_updates
        self.inputs.params_applied += 1
        self.warm_up()
        return ParamsOutcome.APPLIED

    @property
    def params_pending(self) -> bool:
        return self._pending is not None

    def warm_up(self) -> None:
        """One throw-away `act` so the policy's jit compilation does not stall a control step."""
        if self.policy is None:
            return
        try:
            self.policy.act(np.zeros(self.policy.obs_dim, np.float32), np.zeros(ACTION_DIM, np.float32))
        except Exception as exc:  # reported by the first real step too; warming up must not raise
            self.last_error = f"policy warm-up failed: {exc}"

    # ------------------------------------------------------------------ control step

    def tick(self, now_ns: int, steady_ns: int | None = None) -> ActorStep:
        """The command for the control step at `now_ns` (node clock); `steady_ns` feeds the loop timing."""
        self.timer.tick(time.monotonic_ns() if steady_ns is None else steady_ns)
        if self._pending is not None:
            self._resolve_pending()
        cfg, obs, chunk = self.cfg, self.observation, self.current_chunk()
        base = None
        if chunk is not None:
            row = chunk_row(
                chunk.stamp_ns, now_ns, cfg.period_ns, chunk.horizon, tolerance_ns=cfg.watchdog_ns
            )
            base = None if row is None else chunk.actions[row].astype(np.float64)
        self._ages_s = {
            "observation_age_s": None if obs is None else (now_ns - obs.stamp_ns) * 1e-9,
            "chunk_age_s": None if chunk is None else (now_ns - chunk.stamp_ns) * 1e-9,
        }

        residual, failed = None, False
        if (
            self.policy is not None
            and cfg.residual_enabled
            and not self.estop
            and base is not None
            and obs is not None
            and self._residual_allowed(obs)
        ):
            try:
                x = residual_input(chunk.features, obs.proprio, cfg.features_source)  # type: ignore[union-attr]
                base_norm = np.clip(base / cfg.action_high, -1.0, 1.0)  # the policy saw normalised bases
                residual = np.asarray(
                    self.policy.act(x, base_norm, deterministic=cfg.deterministic), np.float64
                )
            except Exception as exc:  # e.g. an input size that no longer matches the policy
                failed = True
                self.last_error = f"residual policy failed: {exc}"

        combined = combine_safely(
            base,
            residual,
            cfg.xi,
            None if obs is None else obs.proprio,
            cfg,
            now_ns,
            None if obs is None else obs.stamp_ns,
            None if chunk is None else chunk.stamp_ns,
            self.estop,
            last_gripper=self.last_gripper,
        )
        if failed and combined.provenance is not Provenance.HOLD:
            combined = hold(self.last_gripper, Intervention.POLICY_ERROR)
        return self._finish(combined, base, residual, obs)

    def _finish(
        self,
        combined: Combined,
        base: np.ndarray | None,
        residual: np.ndarray | None,
        obs: ObservationInput | None,
    ) -> ActorStep:
        self.safety.record(combined)
        self.last_gripper = float(combined.command[ACTION_DIM - 1])
        zeros = np.zeros(ACTION_DIM)
        step = ActorStep(
            command=combined.command,
            base=base if base is not None and np.all(np.isfinite(base)) else zeros,
            residual=residual if combined.provenance is Provenance.RESIDUAL else zeros,
            provenance=combined.provenance,
            interventions=combined.interventions,
            episode_id=0 if obs is None else obs.episode_id,
            step=0 if obs is None else obs.step,
            frame_id="" if obs is None else obs.frame_id,
        )
        self.last_step = step
        return step

    # ------------------------------------------------------------------ status

    def status(self) -> dict[str, Any]:
        """JSON-able state for the latched status topic: readiness, parameters, counters, loop timing.

        `ready` means the last command was not a hold for e-stop or missing/stale inputs.
        """
        last = self.last_step
        waiting = {Intervention.ESTOP, Intervention.STALE_OBSERVATION, Intervention.STALE_CHUNK}
        ready = last is not None and not (
            last.provenance is Provenance.HOLD and waiting.intersection(last.interventions)
        )
        return {
            "ready": ready,
            "policy_loaded": self.policy is not None,
            "params_version": self.params_version,
            "params_num_updates": self.params_num_updates,
            "params_pending": self.params_pending,
            "residual_enabled": self.cfg.residual_enabled,
            "episode_phase": None if self.gate is None else self.gate.phase,
            "xi": self.cfg.xi,
            "estop": self.estop,
            "last_provenance": None if last is None else last.provenance.name.lower(),
            "last_interventions": [] if last is None else [i.value for i in last.interventions],
            "counters": {**self.safety.as_dict(), **asdict(self.inputs)},
            **self._ages_s,
            "loop": self.timer.stats(),
            "last_error": self.last_error,
        }
