"""Rebuilding a graph episode into the learner's steps: the chunk and row each observation used (as the
actor and `pld learn` index them), executed actions normalised, rewards of the next observation, the end,
messages of other episodes kept out, and what makes an episode unusable."""

from __future__ import annotations

import numpy as np

from pld_residual.learning.graph_transitions import ChunkRecord, CommandRecord, EpisodeBuffer

P = 50_000_000  # 20 Hz
HIGH = np.array([0.02, 0.02, 0.02, 0.1, 0.1, 0.1, 1.0], np.float32)
START = 100 * P


def chunk(at_step: int, value: float, horizon: int = 6) -> ChunkRecord:
    actions = np.tile(np.array([value, 0, 0, 0, 0, 0, 1.0], np.float32), (horizon, 1))
    actions[:, 1] = np.arange(horizon) * 0.001  # the row shows in y
    return ChunkRecord(stamp(at_step), actions, np.full(4, value, np.float32))  # = its observation's stamp


def stamp(step: int) -> int:
    """Sim stamps are not exactly on the period grid (float sim time, rounded to ns)."""
    return START + step * P + (-2, 1, 0)[step % 3]


def episode(steps: int = 6, success_at: int | None = None) -> EpisodeBuffer:
    buffer = EpisodeBuffer(stamp(0), P, HIGH)
    for k in range(steps + 1):
        buffer.add_observation(stamp(k), k, np.full(3, k, np.float32))
        if k > 0:
            buffer.add_reward(stamp(k), success_at == k)
    for k in range(steps):
        buffer.add_command(CommandRecord(stamp(k), k, np.array([0.04, 0, 0, 0, 0, 0.05, -1.0]), 1))
    buffer.add_chunk(chunk(0, 0.01))
    buffer.add_chunk(chunk(4, 0.002))
    return buffer


def test_each_observation_uses_the_newest_chunk_at_its_row() -> None:
    out = episode().rebuild(6, success=False)
    assert out.problem == "" and out.length == 6 and len(out.fields) == 7
    np.testing.assert_allclose([f["features"][0] for f in out.fields], [0.01] * 4 + [0.002] * 3)
    rows = [round(f["base_action"][1] * 0.02 / 0.001) for f in out.fields]
    assert rows == [0, 1, 2, 3, 0, 1, 2]
    np.testing.assert_allclose(out.fields[0]["base_action"][0], 0.5)  # 0.01 / 0.02
    np.testing.assert_allclose(out.actions[0], [1.0, 0, 0, 0, 0, 0.5, -1.0])  # clipped to [-1, 1]
    assert out.rewards == [0.0] * 6 and not out.terminated


def test_success_is_the_reward_of_the_next_observation_and_terminates() -> None:
    out = episode(steps=3, success_at=3).rebuild(3, success=True)
    assert out.rewards == [0.0, 0.0, 1.0] and out.terminated


def test_messages_of_the_next_episode_stay_out_once_done_is_known() -> None:
    buffer = episode(steps=3)
    buffer.end_stamp_ns = stamp(3)
    buffer.add_observation(stamp(4), 0, np.zeros(3, np.float32))  # the next episode's first
    buffer.add_command(CommandRecord(stamp(4), 0, np.zeros(7), 1))
    assert buffer.observations[0][0] == stamp(0) and buffer.commands[0].stamp_ns == stamp(0)
    assert not buffer.complete()  # rewards have not moved past DONE yet
    buffer.add_reward(stamp(4), False)
    assert buffer.complete()


def test_a_missing_observation_command_or_chunk_makes_the_episode_unusable() -> None:
    buffer = episode()
    del buffer.observations[2]
    assert "observation 2" in buffer.rebuild(6, False).problem
    buffer = episode()
    del buffer.commands[5]
    assert "command 5" in buffer.rebuild(6, False).problem
    late = EpisodeBuffer(START, P, HIGH)
    late.add_observation(START, 0, np.zeros(3, np.float32))
    late.add_chunk(chunk(-2, 0.01))  # answers an observation before the episode: never used
    assert "no action chunk" in late.rebuild(0, False).problem


def test_the_collector_takes_early_messages_waits_for_every_topic_and_counts_aborts() -> None:
    from pld_residual.learning.graph_transitions import EpisodeCollector

    collector = EpisodeCollector(P, HIGH, timeout_s=5.0)
    collector.add("observation", stamp(0), 0, np.zeros(3, np.float32))  # before its RESET event
    collector.add("chunk", chunk(0, 0.01))
    collector.reset(1, stamp(0), t_base=1)
    for k in range(1, 3):
        collector.add("command", CommandRecord(stamp(k - 1), k - 1, np.zeros(7), 1))
        collector.add("observation", stamp(k), k, np.zeros(3, np.float32))
        collector.add("reward", stamp(k), k == 2)
    collector.done(1, stamp(2), step=2, success=True, aborted=False, now_s=0.0)
    assert collector.finished(1.0) == []  # nothing newer than DONE yet: messages may still come
    collector.reset(2, stamp(3), t_base=0)
    for kind, record in (
        ("observation", (stamp(3), 0, np.zeros(3, np.float32))),
        ("command", (CommandRecord(stamp(3), 0, np.zeros(7), 1),)),
        ("reward", (stamp(4), False)),
    ):
        collector.add(kind, *record)  # fmt: skip
    (first,) = collector.finished(1.1)
    assert (first.episode_id, first.t_base, first.success) == (1, 1, True)
    assert first.steps.problem == "" and first.steps.length == 2 and first.steps.terminated
    collector.done(2, stamp(3), step=0, success=False, aborted=True, now_s=2.0)
    assert collector.finished(8.0) == [] and collector.aborted == 1  # timed out, aborted: counted only
