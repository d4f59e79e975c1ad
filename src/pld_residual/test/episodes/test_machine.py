"""The episode state machine without ROS: phases and their stamps, the probing schedule of `pld learn`,
time limit, success, abort on a stalled graph, reset retries, batches and their seeds."""

from __future__ import annotations

import pytest

from pld_residual.episodes.config import EpisodeManagerConfig
from pld_residual.episodes.machine import (
    END_ABORT,
    END_SUCCESS,
    END_TIME_LIMIT,
    PHASE_DONE,
    PHASE_PROBING,
    PHASE_RESET,
    PHASE_RESIDUAL,
    BatchResult,
    EpisodeMachine,
    Event,
    ResetRequest,
    State,
)
from pld_residual.replay.probing import ProbingConfig

PERIOD = 50_000_000


def machine(**options) -> EpisodeMachine:
    defaults = dict(task="pick_cube", time_limit_steps=10, warmup_episodes=0, probing_alpha=0.5)
    return EpisodeMachine(EpisodeManagerConfig(**{**defaults, **options}))


def events(effects) -> list[Event]:
    return [e for e in effects if isinstance(e, Event)]


def run_episode(m: EpisodeMachine, start_ns: int, now: float, succeed_at: int | None = None):
    """Reset answered, then observations (and a success reward) until the episode ends."""
    effects = m.on_reset(True, 7, "pick up the cube", start_ns, now)
    for step in range(1, 100):
        stamp = start_ns + step * PERIOD
        m.on_command(0, now)
        effects += m.on_observation(step, stamp, now)
        if step == succeed_at:
            effects += m.on_reward(True, stamp, now)
        if any(isinstance(e, Event) and e.phase == PHASE_DONE for e in effects):
            return effects
    raise AssertionError("the episode never ended")


def test_a_probing_episode_goes_reset_probing_residual_done_with_the_stamps_of_its_observations() -> None:
    m = machine()
    (reset,) = m.start_batch(1, now_s=0.0)
    assert isinstance(reset, ResetRequest) and (reset.task, reset.seed) == ("pick_cube", 0)
    assert m.state is State.RESETTING
    effects = run_episode(m, 1_000, 0.0)
    phases = [e.phase for e in events(effects)]
    t_base = events(effects)[0].t_base
    assert 0 <= t_base <= 5  # floor(0.5 * 10)
    expected = (
        [PHASE_RESET] + ([PHASE_PROBING, PHASE_RESIDUAL] if t_base else [PHASE_RESIDUAL]) + [PHASE_DONE]
    )
    assert phases == expected
    assert events(effects)[0].stamp_ns == 1_000
    if t_base:
        assert events(effects)[2].stamp_ns == 1_000 + t_base * PERIOD and events(effects)[2].step == t_base
    done = events(effects)[-1]
    assert (done.end_reason, done.success, done.step) == (END_TIME_LIMIT, False, 10)
    assert done.stamp_ns == 1_000 + 10 * PERIOD and done.seed == 7
    assert isinstance(effects[-1], BatchResult) and effects[-1].episodes_run == 1
    assert m.state is State.IDLE and m.batch is None


def test_t_base_follows_the_probing_schedule_of_pld_learn() -> None:
    import numpy as np

    m = machine(probing_seed=3, warmup_episodes=2, mode="train")
    m.start_batch(6, now_s=0.0)
    drawn = []
    for k in range(6):
        effects = run_episode(m, 10**9 * (k + 1), 0.0)
        drawn.append(events(effects)[0].t_base)
    rng = np.random.default_rng(3)
    probing = ProbingConfig(0.5, 10, 2)
    assert drawn == [probing.plan(rng, k).base_steps for k in range(6)]
    assert drawn[:2] == [10, 10]  # warm-up: the base drives the whole episode


def test_warmup_episodes_never_hand_over_and_eval_hands_over_at_step_zero() -> None:
    m = machine(warmup_episodes=1, mode="train")
    m.start_batch(1, now_s=0.0)
    assert PHASE_RESIDUAL not in [e.phase for e in events(run_episode(m, 5, 0.0))]
    m = machine(mode="eval")
    m.start_batch(1, now_s=0.0)
    first = events(run_episode(m, 5, 0.0))
    assert [e.phase for e in first[:2]] == [PHASE_RESET, PHASE_RESIDUAL] and first[0].t_base == 0


def test_success_ends_the_episode_and_the_batch_counts_it_and_seeds_advance() -> None:
    m = machine()
    m.start_batch(2, seed=100, now_s=0.0)
    effects = run_episode(m, 1_000, 0.0, succeed_at=3)
    done = events(effects)[-1]
    assert (done.success, done.end_reason, done.step) == (True, END_SUCCESS, 3)
    assert isinstance(effects[-1], ResetRequest) and effects[-1].seed == 101
    effects = run_episode(m, 10**9, 0.0)
    result = effects[-1]
    assert isinstance(result, BatchResult) and (result.episodes_run, result.successes) == (2, 1)
    assert result.success_rate == 0.5


def test_a_stalled_graph_aborts_the_episode_which_does_not_count_and_the_next_reset_follows() -> None:
    m = machine(abort_after_hold_s=1.0)
    m.start_batch(1, now_s=0.0)
    m.on_reset(True, 1, "x", 1_000, now_s=10.0)
    m.on_observation(1, 1_000 + PERIOD, 10.2)
    m.on_command(3, 10.5)  # holds do not count as driving
    assert m.poll(10.9) == []
    effects = m.poll(11.1)
    done = events(effects)[0]
    assert (done.phase, done.end_reason, done.success, done.stamp_ns) == (
        PHASE_DONE,
        END_ABORT,
        False,
        1_000 + PERIOD,
    )
    assert isinstance(effects[1], ResetRequest) and effects[1].seed == 1  # the next attempt, new seed
    assert m.batch is not None and m.batch.done == 0 and m.counters.aborts == 1
    # the inputs are back: the batch finishes with one counted episode
    effects = run_episode(m, 10**9, 20.0)
    assert isinstance(effects[-1], BatchResult) and effects[-1].episodes_run == 1


def test_an_unanswered_reset_is_retried_with_the_same_seed() -> None:
    m = machine(reset_timeout_s=2.0)
    (first,) = m.start_batch(1, seed=5, now_s=0.0)
    assert m.poll(1.0) == []
    (again,) = m.poll(2.5)
    assert isinstance(again, ResetRequest) and again.seed == first.seed == 5
    assert m.counters.reset_timeouts == 1


def test_stale_messages_from_before_the_reset_are_ignored() -> None:
    m = machine()
    m.start_batch(1, now_s=0.0)
    m.on_reset(True, 1, "x", 10**9, 0.0)
    assert m.on_reward(True, 10**9 - PERIOD, 0.0) == []
    assert m.on_observation(10, 10**9 - PERIOD, 0.0) == []
    assert m.counters.stale_messages == 2 and m.state is State.RUNNING


def test_cancel_aborts_the_running_episode_and_ends_the_batch() -> None:
    m = machine()
    m.start_batch(3, now_s=0.0)
    m.on_reset(True, 1, "x", 1_000, 0.0)
    effects = m.cancel(0.0)
    assert events(effects)[0].end_reason == END_ABORT
    assert isinstance(effects[-1], BatchResult) and m.batch is None


def test_bad_requests_are_refused_with_a_reason() -> None:
    m = machine()
    with pytest.raises(ValueError, match="num_episodes"):
        m.start_batch(0, now_s=0.0)
    with pytest.raises(ValueError, match="mode"):
        m.start_batch(1, mode="dance", now_s=0.0)
    m.start_batch(1, now_s=0.0)
    with pytest.raises(ValueError, match="already running"):
        m.start_batch(1, now_s=0.0)
    with pytest.raises(ValueError, match="unknown task"):
        EpisodeMachine(EpisodeManagerConfig(task="no_such_task")).start_batch(1, now_s=0.0)
    with pytest.raises(ValueError, match="probing_alpha"):
        EpisodeManagerConfig(probing_alpha=1.5)
    with pytest.raises(ValueError, match="unknown option"):
        EpisodeManagerConfig.from_dict({"tsak": "pick_cube"})


def test_the_time_limit_defaults_to_the_tasks_own() -> None:
    assert EpisodeManagerConfig(task="pick_cube").resolved_time_limit() == 200  # 10 s at 20 Hz
    assert EpisodeManagerConfig(task="peg_insertion", control_hz=10).resolved_time_limit() == 150


def test_resets_wait_while_the_inputs_are_not_ready_and_follow_when_they_are() -> None:
    m = machine(abort_after_hold_s=1.0)
    m.set_inputs_ready(False)
    assert m.start_batch(1, now_s=0.0) == [] and m.state is State.WAITING
    assert m.poll(5.0) == []
    m.set_inputs_ready(True)
    (reset,) = m.poll(5.1)
    assert isinstance(reset, ResetRequest) and reset.seed == 0
    m.on_reset(True, 0, "x", 1_000, 5.2)
    m.set_inputs_ready(False)  # the VLA server went away mid-episode: the episode aborts, then waits
    effects = m.poll(6.5)
    assert events(effects)[0].end_reason == END_ABORT and not [
        e for e in effects if isinstance(e, ResetRequest)
    ]
    assert m.state is State.WAITING
