"""Which observations the actor may act on, and when the residual may act, from the episode manager's
`EpisodeEvent`s. Pure.

Before any event arrives (an actor without an episode manager) everything is allowed, as before. Once
events come: no command between episodes (after DONE, before the next episode's first observation), the
base alone for the first T_base steps (probing, or the whole episode in a warm-up), then the residual.
The actor decides the hand-over by the observation's step against T_base from the event, so it does not
depend on whether the RESIDUAL event or the observation arrives first.
"""

from __future__ import annotations

from dataclasses import dataclass

PHASE_PROBING, PHASE_RESIDUAL, PHASE_DONE = 1, 2, 3  # EpisodeEvent.PHASE_*


@dataclass(frozen=True)
class EpisodeGate:
    """The newest episode event, as the actor needs it."""

    phase: int
    t_base: int
    start_stamp_ns: int  # stamp of the episode's first observation (its RESET / PROBING events)

    def running(self, obs_stamp_ns: int) -> bool:
        """Whether an observation with this stamp belongs to a running episode."""
        return self.phase in (PHASE_PROBING, PHASE_RESIDUAL) and obs_stamp_ns >= self.start_stamp_ns

    def residual_allowed(self, obs_step: int, obs_stamp_ns: int) -> bool:
        return self.running(obs_stamp_ns) and obs_step >= self.t_base


def next_gate(current: EpisodeGate | None, phase: int, t_base: int, stamp_ns: int) -> EpisodeGate:
    """The gate after an event: a RESET / PROBING opens an episode at its stamp; later phases keep it."""
    if phase == PHASE_RESIDUAL and current is not None and current.phase != PHASE_DONE:
        return EpisodeGate(phase, t_base, current.start_stamp_ns)
    if phase == PHASE_DONE:
        start = current.start_stamp_ns if current is not None else stamp_ns
        return EpisodeGate(phase, t_base, start)
    return EpisodeGate(phase, t_base, stamp_ns)
