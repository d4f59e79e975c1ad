"""What one buffer slot costs in memory, against the naive `(obs, next_obs)`-per-transition layout.

Kept apart from the buffer so the figures can be computed for any spec without allocating 250k slots
(with 2x64x64x3 images that would be several GB).
"""

from __future__ import annotations

from dataclasses import dataclass

from pld_residual.replay.spec import FLOAT32, FieldSpec, ObsSpec

VALID_FLAG_BYTES = 1  # one bool per slot: "a sampleable transition starts here"


def transition_spec(action_dim: int) -> ObsSpec:
    """Per-slot transition fields the buffer stores beside the observation.

    `terminated` is a bool (the float `discount` is derived at sampling time, saving 3 bytes a slot).
    """
    return ObsSpec(
        (
            ("action", FieldSpec((action_dim,), FLOAT32)),
            ("reward", FieldSpec((), FLOAT32)),
            ("terminated", FieldSpec((), "bool")),
            ("mc_return", FieldSpec((), FLOAT32)),
        )
    )


def bytes_per_slot(spec: ObsSpec, action_dim: int = 7, extras: ObsSpec | None = None) -> int:
    """Bytes of one slot of `ReplayBuffer`: the observation once, the transition fields and the valid flag."""
    extra = extras.nbytes if extras is not None else 0
    return spec.nbytes + transition_spec(action_dim).nbytes + extra + VALID_FLAG_BYTES


def ours_bytes_per_transition(
    spec: ObsSpec, action_dim: int = 7, episode_length: float | None = None, extras: ObsSpec | None = None
) -> float:
    """Bytes per stored transition; with `episode_length` L, includes each episode's final-observation slot.

    An episode of L transitions occupies L + 1 slots, so the cost is `bytes_per_slot * (L + 1) / L`.
    """
    per_slot = bytes_per_slot(spec, action_dim, extras)
    if episode_length is None:
        return float(per_slot)
    if episode_length <= 0:
        raise ValueError(f"episode_length must be positive, got {episode_length}")
    return per_slot * (episode_length + 1) / episode_length


def naive_bytes_per_transition(spec: ObsSpec, action_dim: int = 7, extras: ObsSpec | None = None) -> int:
    """Bytes per transition when `obs` and `next_obs` are both stored, every field as float32.

    Plus action, reward, discount and mc_return (and any extras) as float32:
    `4 * (2 * obs_elements + action_dim + 3 + extra_elements)`. This is the layout of a plain SAC buffer
    that copies and casts everything per transition.
    """
    extra = extras.size if extras is not None else 0
    return 4 * (2 * spec.size + action_dim + 3 + extra)


@dataclass(frozen=True)
class MemoryReport:
    """Our bytes per transition against the naive layout, for one spec (reported in the README)."""

    bytes_per_slot: int
    ours_per_transition: float
    naive_per_transition: int
    episode_length: float | None

    @property
    def ratio(self) -> float:
        """How many times smaller our layout is."""
        return self.naive_per_transition / self.ours_per_transition

    def __str__(self) -> str:
        length = f"episodes of {self.episode_length:g} steps" if self.episode_length else "per slot"
        return (
            f"ours {self.ours_per_transition:,.1f} B/transition ({length}; {self.bytes_per_slot:,} B/slot) "
            f"vs naive {self.naive_per_transition:,} B/transition: {self.ratio:.2f}x smaller"
        )


def memory_report(
    spec: ObsSpec, action_dim: int = 7, episode_length: float | None = 200, extras: ObsSpec | None = None
) -> MemoryReport:
    """Both figures for `spec` (default episodes: 200 steps, the 10 s tasks at 20 Hz)."""
    return MemoryReport(
        bytes_per_slot=bytes_per_slot(spec, action_dim, extras),
        ours_per_transition=ours_bytes_per_transition(spec, action_dim, episode_length, extras),
        naive_per_transition=naive_bytes_per_transition(spec, action_dim, extras),
        episode_length=episode_length,
    )
