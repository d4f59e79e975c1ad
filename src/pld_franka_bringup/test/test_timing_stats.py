"""The pure statistics behind `pld bench graph`: percentiles, jitter, command <-> observation matching and
the age of the chunk each command used."""

from __future__ import annotations

import pytest

from pld_franka_bringup.timing_stats import (
    ChunkRecord,
    CommandRecord,
    ObservationRecord,
    chunk_ages,
    counter_deltas,
    jitter,
    match_commands,
    percentiles,
    ratio,
    receive_periods,
    summarize_mode,
    summary_ms,
)

MS = 1_000_000


def obs(recv_ms: float, episode: int, step: int, stamp_ms: float | None = None) -> ObservationRecord:
    stamp = step * 50 if stamp_ms is None else stamp_ms
    return ObservationRecord(round(recv_ms * MS), round(stamp * MS), episode, step)


def cmd(recv_ms: float, episode: int, step: int, base=(), stamp_ms: float | None = None) -> CommandRecord:
    stamp = step * 50 if stamp_ms is None else stamp_ms
    return CommandRecord(round(recv_ms * MS), round(stamp * MS), episode, step, tuple(base))


def test_percentiles_interpolate_and_are_none_without_values() -> None:
    assert percentiles(range(101)) == {50: 50.0, 99: 99.0}
    assert percentiles([3.0], (50, 90)) == {50: 3.0, 90: 3.0}
    assert percentiles([]) == {50: None, 99: None}


def test_summary_ms_converts_nanoseconds_and_names_the_keys() -> None:
    assert summary_ms([1 * MS, 2 * MS, 3 * MS], "lat_ms") == {"lat_ms_p50": 2.0, "lat_ms_p99": 2.98}
    assert summary_ms([], "lat_ms") == {"lat_ms_p50": None, "lat_ms_p99": None}


def test_receive_periods_stay_inside_an_episode_in_receive_order() -> None:
    commands = [
        cmd(100, 1, 1),
        cmd(0, 1, 0),  # received first although listed later
        cmd(152, 1, 2),
        cmd(900, 2, 0),  # a reset gap: not a loop period
        cmd(948, 2, 1),
        cmd(1000, 0, 0),  # outside any episode
    ]
    assert receive_periods(commands) == [100 * MS, 52 * MS, 48 * MS]


def test_jitter_is_the_absolute_deviation_from_the_nominal_period() -> None:
    assert jitter([48, 50, 57], 50) == [2, 0, 7]
    with pytest.raises(ValueError, match="positive"):
        jitter([1], 0)


def test_match_commands_pairs_the_first_command_naming_each_observation() -> None:
    observations = [obs(0, 1, 0), obs(50, 1, 1), obs(100, 1, 2), obs(150, 1, 3), obs(200, 1, 4)]
    observations.append(obs(50, 1, 1))  # the same observation recorded twice counts once
    observations.append(obs(300, 0, 7))  # between episodes: never expected to be answered
    commands = [
        cmd(8, 1, 0),
        cmd(61, 1, 1),
        cmd(110, 1, 1),  # answered again (a timer that fired before the next observation came)
        # step 2 gets no command: inside the answered span 0..3, so it is counted as unanswered
        cmd(170, 1, 3),
        # step 4 is the episode's last observation: no command expected
    ]
    match = match_commands(observations, commands)
    assert match.latencies_ns == [8 * MS, 11 * MS, 20 * MS]
    assert match.unanswered == 1
    assert match.repeated == 1


def test_match_commands_ignores_commands_outside_episodes() -> None:
    match = match_commands([obs(0, 0, 0)], [cmd(5, 0, 0), cmd(6, 0, 0)])
    assert match.latencies_ns == [] and match.repeated == 0 and match.unanswered == 0


def test_chunk_ages_find_the_chunk_whose_row_is_the_commands_base() -> None:
    old = ChunkRecord(10 * MS, 0, ((0.1, 0.2), (0.3, 0.4), (0.5, 0.6)))
    new = ChunkRecord(70 * MS, 50 * MS, ((0.7, 0.8), (0.9, 1.0), (1.1, 1.2)))
    observations = [obs(2, 1, 0, stamp_ms=0), obs(55, 1, 1, stamp_ms=50)]
    commands = [
        cmd(120, 1, 2, base=(0.5, 0.6), stamp_ms=100),  # row 2 of the old chunk: the new one not used yet
        cmd(160, 1, 3, base=(1.1, 1.2), stamp_ms=150),  # row 2 of the new one
        cmd(170, 1, 3, base=(0.0, 0.0), stamp_ms=150),  # a hold without a base: no chunk used
        cmd(180, 1, 3, base=(9.0, 9.0), stamp_ms=150),  # matches no row
        cmd(190, 1, 3, base=(0.7, 0.8), stamp_ms=40),  # stamped before the new chunk: only the old one
    ]
    ages = chunk_ages(commands, [new, old], observations)
    assert ages.ages_ns == [100 * MS, 100 * MS]
    assert ages.wall_ages_ns == [118 * MS, 105 * MS]  # command receive - the chunk's observation receive
    assert ages.unmatched == 2


def test_chunk_ages_compare_as_float32() -> None:
    chunk = ChunkRecord(0, 0, ((0.1, 0.2),))
    command = cmd(5, 1, 0, base=(0.10000000149011612, 0.20000000298023224), stamp_ms=0)  # float32 -> 64
    assert chunk_ages([command], [chunk]).ages_ns == [0]


def test_summarize_mode_counts_the_window_and_uses_the_median_period_in_lockstep() -> None:
    observations = [obs(10 * i, 1, i) for i in range(10)]
    commands = [cmd(10 * i + 3, 1, i, base=(0.5,), stamp_ms=50 * i) for i in range(9)]
    chunks = [ChunkRecord(0, 0, tuple((0.5,) for _ in range(10)), inference_ms=4.0)]
    window = (20 * MS, 80 * MS)  # observations 2..8, commands received at 23..73
    summary = summarize_mode(observations, commands, chunks, window, nominal_period_ns=None)
    assert summary["observations"] == 7 and summary["commands"] == 6
    assert summary["obs_answered"] == 7  # the command of step 8 arrives after the window: still paired
    assert summary["obs_to_command_ms_p50"] == 3.0 and summary["obs_to_command_ms_p99"] == 3.0
    assert summary["loop_nominal_period_ms"] == 10.0 and summary["loop_jitter_ms_p99"] == 0.0
    assert summary["commands_per_s"] == 100.0
    assert summary["chunk_age_ms_p50"] == 225.0  # rows 2..7 used: 100..350 ms old by their stamps
    assert summary["chunk_unmatched_commands"] == 0
    assert summary["vla_inference_ms_p50"] is None  # the chunk came before the window
    realtime = summarize_mode(observations, commands, chunks, window, nominal_period_ns=50 * MS)
    assert realtime["loop_jitter_ms_p50"] == 40.0
    assert realtime["observation_jitter_ms_p50"] == 40.0  # the observations came every 10 ms too
    assert summary["observation_jitter_ms_p99"] == 0.0  # lockstep: against the commands' median period


def test_counter_deltas_and_ratio() -> None:
    before, after = {"holds": 2, "rejected": 1}, {"holds": 5, "rejected": 1, "stale": 3}
    assert counter_deltas(before, after, ("holds", "rejected", "stale"), "sim_") == {
        "sim_holds": 3,
        "sim_rejected": 0,
        "sim_stale": 3,
    }
    assert ratio(12.0, 4.0) == 3.0
    assert ratio(None, 4.0) is None and ratio(1.0, 0.0) is None


def test_steady_periods_leave_out_each_episodes_first_period() -> None:
    commands = [
        CommandRecord(0, 0, 1, 0, (0.0,) * 7, 0),
        CommandRecord(20 * MS, 0, 1, 1, (0.0,) * 7, 0),  # the first period: waited for the first chunk
        CommandRecord(70 * MS, 0, 1, 2, (0.0,) * 7, 0),
        CommandRecord(121 * MS, 0, 1, 3, (0.0,) * 7, 0),
        CommandRecord(200 * MS, 0, 2, 0, (0.0,) * 7, 0),
        CommandRecord(230 * MS, 0, 2, 1, (0.0,) * 7, 0),
        CommandRecord(280 * MS, 0, 2, 2, (0.0,) * 7, 0),
    ]
    assert receive_periods(commands) == [20 * MS, 50 * MS, 51 * MS, 30 * MS, 50 * MS]
    assert receive_periods(commands, skip_first=True) == [50 * MS, 51 * MS, 50 * MS]
