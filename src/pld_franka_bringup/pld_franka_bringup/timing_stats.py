"""Timing statistics of the running graph, from what a probe received (`pld bench graph`). Pure, no ROS.

The probe records, per message, the wall time it was received (`recv_ns`, one monotonic clock for every
topic) and what the message says about itself (header stamp, episode id, step). From those:

- loop period and jitter: intervals between consecutive commands of one episode; jitter is
  |period - nominal| (the 99th percentile is the number that says how late a command can be; a standard
  deviation would hide rare stalls), as `pld_residual.actor.timing` reports it from inside the actor;
  `loop_jitter_steady_ms` leaves out each episode's first period (the start of an episode);
  `observation_jitter_ms` is the same for the observations the probe received: in realtime the sim
  publishes them on a steady grid (`publish_phase_s`), so this is the noise of delivery and of the probe's
  own scheduling, the floor under the loop's figure;
- observation -> command latency: a command carries the (episode_id, step) of the observation it answers,
  so the latency of an observation is the receive time of the first command naming it minus its own;
- chunk age at use: the chunk a command used is found exactly (its base action is one row of that chunk,
  float32 for float32), so the age is the command stamp minus the chunk stamp (the node clock: sim time in
  simulation), and its wall age is the command's receive time minus that of the observation the chunk
  answers.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

NS_PER_MS = 1_000_000


@dataclass(frozen=True)
class ObservationRecord:
    """An observation as the probe saw it."""

    recv_ns: int
    stamp_ns: int
    episode_id: int
    step: int


@dataclass(frozen=True)
class CommandRecord:
    """A command as the probe saw it; `base` is the base action it carries (zeros when none applied)."""

    recv_ns: int
    stamp_ns: int
    episode_id: int
    step: int
    base: tuple[float, ...] = ()
    provenance: int = 0


@dataclass(frozen=True)
class ChunkRecord:
    """An action chunk as the probe saw it: rows `actions` [H][D], stamped with its observation's stamp."""

    recv_ns: int
    stamp_ns: int
    actions: tuple[tuple[float, ...], ...]
    inference_ms: float = 0.0


@dataclass(frozen=True)
class LatencyMatch:
    """Observation -> command latencies and what did not pair up."""

    latencies_ns: list[int] = field(default_factory=list)
    unanswered: int = 0  # observations inside the commanded steps of their episode that got no command
    repeated: int = 0  # commands naming an observation another command answered before


@dataclass(frozen=True)
class ChunkAges:
    """Age of the chunk each command used (commands whose base matched no chunk row are `unmatched`)."""

    ages_ns: list[int] = field(default_factory=list)
    wall_ages_ns: list[int] = field(default_factory=list)
    unmatched: int = 0


def percentiles(values: Iterable[float], qs: Sequence[float] = (50, 99)) -> dict[float, float | None]:
    """q -> the q-th percentile (numpy's linear interpolation); None for every q when there are no values."""
    array = np.asarray(list(values), dtype=np.float64)
    if array.size == 0:
        return {q: None for q in qs}
    return {q: float(np.percentile(array, q)) for q in qs}


def summary_ms(values_ns: Iterable[int], prefix: str, digits: int = 3) -> dict[str, float | None]:
    """`{prefix}_p50`, `{prefix}_p99` in milliseconds from nanosecond values (None when empty)."""
    result = {}
    for q, value in percentiles(np.asarray(list(values_ns), dtype=np.float64) / NS_PER_MS).items():
        result[f"{prefix}_p{q:g}"] = None if value is None else round(value, digits)
    return result


def receive_periods(
    records: Iterable[CommandRecord | ObservationRecord], skip_first: bool = False
) -> list[int]:
    """Receive intervals (ns) between consecutive commands (or observations) of the same episode, in
    receive order.

    Records outside episodes (episode_id 0) and the gap across a reset are not loop periods; with
    `skip_first`, neither is each episode's first period.
    """
    ordered = sorted((c for c in records if c.episode_id > 0), key=lambda c: c.recv_ns)
    periods, first_of = [], set()
    for earlier, later in itertools.pairwise(ordered):
        if later.episode_id != earlier.episode_id:
            continue
        if skip_first and later.episode_id not in first_of:
            first_of.add(later.episode_id)
            continue
        periods.append(later.recv_ns - earlier.recv_ns)
    return periods


def jitter(periods_ns: Iterable[int], nominal_ns: float) -> list[float]:
    """|period - nominal| for every period (ns)."""
    if nominal_ns <= 0:
        raise ValueError(f"nominal period must be positive, got {nominal_ns}")
    return [abs(p - nominal_ns) for p in periods_ns]


def match_commands(
    observations: Iterable[ObservationRecord], commands: Iterable[CommandRecord]
) -> LatencyMatch:
    """Pair each observation with the first command received that names its (episode_id, step).

    Only observations of episodes (episode_id > 0) count. `unanswered`: observations with no command
    although commands answered steps before and after them in the same episode (the last observation of
    an episode, or those between episodes, are not expected to get one).
    """
    first: dict[tuple[int, int], int] = {}
    repeated = 0
    for command in sorted(commands, key=lambda c: c.recv_ns):
        key = (command.episode_id, command.step)
        if command.episode_id <= 0:
            continue
        if key in first:
            repeated += 1
        else:
            first[key] = command.recv_ns
    span: dict[int, tuple[int, int]] = {}
    for episode, step in first:
        low, high = span.get(episode, (step, step))
        span[episode] = (min(low, step), max(high, step))
    latencies, unanswered, seen = [], 0, set()
    for obs in sorted(observations, key=lambda o: o.recv_ns):
        key = (obs.episode_id, obs.step)
        if obs.episode_id <= 0 or key in seen:
            continue
        seen.add(key)
        answered = first.get(key)
        if answered is not None:
            latencies.append(answered - obs.recv_ns)
        elif obs.episode_id in span and span[obs.episode_id][0] < obs.step < span[obs.episode_id][1]:
            unanswered += 1
    return LatencyMatch(latencies, unanswered, repeated)


def chunk_ages(
    commands: Iterable[CommandRecord],
    chunks: Sequence[ChunkRecord],
    observations: Iterable[ObservationRecord] = (),
    search: int = 16,
) -> ChunkAges:
    """The age of the chunk behind each command's base action.

    For a command, the chunks stamped at or before it are searched newest first (at most `search`); the
    first with a row equal to the command's base (as float32) is the one used. Commands with an all-zero
    base (a hold that used no chunk) are skipped. Wall age needs the observation the chunk answers (same
    stamp) among `observations`.
    """
    ordered = sorted(chunks, key=lambda c: c.stamp_ns)
    stamps = np.asarray([c.stamp_ns for c in ordered], dtype=np.int64)
    rows = [np.asarray(c.actions, dtype=np.float32).reshape(len(c.actions), -1) for c in ordered]
    obs_recv: dict[int, int] = {}
    for obs in observations:
        obs_recv.setdefault(obs.stamp_ns, obs.recv_ns)
    ages, wall_ages, unmatched = [], [], 0
    for command in commands:
        base = np.asarray(command.base, dtype=np.float32)
        if base.size == 0 or not np.any(base):
            continue
        newest = int(np.searchsorted(stamps, command.stamp_ns, side="right"))
        for index in range(newest - 1, max(newest - search, 0) - 1, -1):
            actions = rows[index]
            if actions.shape[1] == base.size and np.any(np.all(actions == base, axis=1)):
                stamp = ordered[index].stamp_ns
                ages.append(command.stamp_ns - stamp)
                if stamp in obs_recv:
                    wall_ages.append(command.recv_ns - obs_recv[stamp])
                break
        else:
            unmatched += 1
    return ChunkAges(ages, wall_ages, unmatched)


def summarize_mode(
    observations: Sequence[ObservationRecord],
    commands: Sequence[CommandRecord],
    chunks: Sequence[ChunkRecord],
    window_ns: tuple[int, int],
    nominal_period_ns: float | None,
) -> dict[str, float | int | None]:
    """The probe's numbers of one run: observations received in `window_ns` (start, end) and the commands
    answering them; periods, jitter and chunk ages of the commands received in the window.

    `nominal_period_ns` None (lockstep: as fast as possible) takes the median period as the nominal, so
    the jitter is the spread of the step period.
    """
    start, end = window_ns
    inside = lambda r: start <= r.recv_ns <= end  # noqa: E731
    window_obs = [o for o in observations if inside(o)]
    window_commands = [c for c in commands if inside(c)]
    keys = {(o.episode_id, o.step) for o in window_obs}
    match = match_commands(window_obs, [c for c in commands if (c.episode_id, c.step) in keys])
    periods = receive_periods(window_commands)
    nominal = nominal_period_ns
    if nominal is None:
        nominal = float(np.median(periods)) if periods else 0.0
    ages = chunk_ages(window_commands, chunks, observations)
    seconds = (end - start) / 1e9
    window_chunks = [c for c in chunks if inside(c)]
    return {
        "window_s": round(seconds, 3),
        "observations": len(window_obs),
        "commands": len(window_commands),
        "commands_per_s": round(len(window_commands) / seconds, 2) if seconds > 0 else None,
        "chunks": len(window_chunks),
        "loop_nominal_period_ms": round(nominal / NS_PER_MS, 3) if nominal > 0 else None,
        **summary_ms(periods, "loop_period_ms"),
        **summary_ms(jitter(periods, nominal) if nominal > 0 else [], "loop_jitter_ms"),
        **summary_ms(
            jitter(receive_periods(window_commands, skip_first=True), nominal) if nominal > 0 else [],
            "loop_jitter_steady_ms",
        ),
        **summary_ms(
            jitter(receive_periods(window_obs), nominal) if nominal > 0 else [], "observation_jitter_ms"
        ),
        **summary_ms(match.latencies_ns, "obs_to_command_ms"),
        "obs_answered": len(match.latencies_ns),
        "unanswered_observations": match.unanswered,
        "repeated_commands": match.repeated,
        **summary_ms(ages.ages_ns, "chunk_age_ms"),
        **summary_ms(ages.wall_ages_ns, "chunk_wall_age_ms"),
        "chunk_unmatched_commands": ages.unmatched,
        **summary_ms([round(c.inference_ms * NS_PER_MS) for c in window_chunks], "vla_inference_ms"),
    }


def counter_deltas(before: dict, after: dict, names: Iterable[str], prefix: str = "") -> dict[str, int]:
    """after[name] - before[name] for integer counters (a missing counter counts as 0)."""
    return {f"{prefix}{name}": int(after.get(name, 0) or 0) - int(before.get(name, 0) or 0) for name in names}


def ratio(ours: float | None, bare: float | None, digits: int = 2) -> float | None:
    """ours / bare, None when either is missing or bare is not positive."""
    if ours is None or bare is None or bare <= 0:
        return None
    return round(ours / bare, digits)
