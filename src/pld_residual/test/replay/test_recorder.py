"""EpisodeRecorder: probing steps are in the trajectory but not in replay; replay opens at step T_base."""

from __future__ import annotations

import numpy as np
import pytest

from pld_residual.replay import EpisodePlan, EpisodeRecorder, ReplayBuffer


def run(recorder: EpisodeRecorder, make_obs, length: int, terminated: bool = True, episode: int = 0) -> None:
    """Feed `length` steps whose provenance follows the plan; the last one ends the episode."""
    for t in range(length):
        last = t == length - 1
        recorder.step(
            make_obs(episode, t),
            np.array([episode, t], np.float32),
            1.0 if last and terminated else 0.0,
            make_obs(episode, t + 1),
            last and terminated,
            last and not terminated,
            recorder.plan.controller(t),
        )


def replay_steps(buffer: ReplayBuffer) -> list[int]:
    batch = buffer.sample(500, np.random.default_rng(0))
    return sorted({int(s) for s in batch["obs"]["tag"][:, 1]})


def test_probing_steps_are_in_the_trajectory_but_not_in_replay(tiny_spec, make_obs) -> None:
    buffer = ReplayBuffer(tiny_spec, 64, action_dim=2, gamma=0.5)
    recorder = EpisodeRecorder(EpisodePlan(base_steps=3, time_limit_steps=10), buffer)
    run(recorder, make_obs, length=6)

    trajectory = recorder.trajectory
    assert recorder.done and len(trajectory) == 6 and trajectory.terminated
    assert trajectory.provenance == ["base"] * 3 + ["residual"] * 3
    np.testing.assert_array_equal(trajectory.actions[:, 1], np.arange(6))
    np.testing.assert_array_equal(trajectory.final_obs["tag"], [0, 6, 0])

    # replay: the residual part only, opened at the observation of step 3
    assert len(buffer) == 3 and buffer.num_episodes == 1
    assert replay_steps(buffer) == [3, 4, 5]
    batch = buffer.sample(100, np.random.default_rng(1))
    np.testing.assert_array_equal(batch["next_obs"]["tag"][:, 1], batch["obs"]["tag"][:, 1] + 1)
    returns = dict(zip(batch["obs"]["tag"][:, 1].astype(int), batch["mc_return"], strict=True))
    assert returns == {3: 0.25, 4: 0.5, 5: 1.0}  # the MC return counts from the first residual step


def test_warmup_episode_goes_to_replay_from_step_0(tiny_spec, make_obs) -> None:
    buffer = ReplayBuffer(tiny_spec, 64, action_dim=2)
    recorder = EpisodeRecorder(EpisodePlan.warmup_episode(time_limit_steps=4), buffer)
    run(recorder, make_obs, length=4, terminated=False)
    assert recorder.trajectory.provenance == ["base"] * 4 and recorder.trajectory.truncated
    assert replay_steps(buffer) == [0, 1, 2, 3]


def test_episode_ending_during_probing_leaves_replay_untouched(tiny_spec, make_obs) -> None:
    buffer = ReplayBuffer(tiny_spec, 64, action_dim=2)
    recorder = EpisodeRecorder(EpisodePlan(base_steps=5, time_limit_steps=10), buffer)
    run(recorder, make_obs, length=3)  # the base succeeded before handing over
    assert len(recorder.trajectory) == 3 and len(buffer) == 0 and not buffer.episode_open


def test_replay_action_and_projection(tiny_spec, make_obs) -> None:
    """The stream may carry more than replay stores (instruction, raw images) and the executed action."""
    buffer = ReplayBuffer(tiny_spec, 64, action_dim=2)
    recorder = EpisodeRecorder(
        EpisodePlan(base_steps=1, time_limit_steps=5),
        buffer,
        to_replay_obs=lambda obs: {"tag": obs["tag"], "pixel": obs["pixel"]},
    )

    def full(t: int) -> dict:
        return {**make_obs(0, t), "instruction": "pick up the cube"}

    for t in range(3):
        last = t == 2
        recorder.step(
            full(t),
            np.full(2, 9.0, np.float32),  # executed a_base + xi * a_delta
            0.0,
            full(t + 1),
            last,
            False,
            recorder.plan.controller(t),
            replay_action=np.array([0.0, t], np.float32),  # the residual a_delta
        )
    assert recorder.trajectory.steps[0].obs["instruction"] == "pick up the cube"
    assert (recorder.trajectory.actions == 9.0).all()
    batch = buffer.sample(50, np.random.default_rng(0))
    np.testing.assert_array_equal(batch["action"][:, 1], batch["obs"]["tag"][:, 1])


def test_stream_errors(tiny_spec, make_obs) -> None:
    buffer = ReplayBuffer(tiny_spec, 64, action_dim=2)
    recorder = EpisodeRecorder(EpisodePlan(base_steps=1, time_limit_steps=3), buffer)
    action = np.zeros(2, np.float32)
    with pytest.raises(ValueError, match="plan says 'base'"):
        recorder.step(make_obs(0, 0), action, 0.0, make_obs(0, 1), False, False, "residual")
    recorder.step(make_obs(0, 0), action, 0.0, make_obs(0, 1), False, False, "base")
    with pytest.raises(ValueError, match="does not chain"):
        recorder.step(make_obs(0, 5), action, 0.0, make_obs(0, 6), False, False, "residual")
    # a rejected replay step can be repeated once fixed
    with pytest.raises(ValueError, match="'tag': contains NaN"):
        bad = make_obs(0, 2)
        bad["tag"][0] = np.nan
        recorder.step(make_obs(0, 1), action, 0.0, bad, False, False, "residual")
    recorder.step(make_obs(0, 1), action, 0.0, make_obs(0, 2), False, False, "residual")
    recorder.step(make_obs(0, 2), action, 0.0, make_obs(0, 3), False, True, "residual")
    with pytest.raises(RuntimeError, match="already ended"):
        recorder.step(make_obs(0, 3), action, 0.0, make_obs(0, 4), False, False, "residual")
    assert replay_steps(buffer) == [1, 2]


def test_time_limit_without_truncation_and_abort(tiny_spec, make_obs) -> None:
    buffer = ReplayBuffer(tiny_spec, 64, action_dim=2)
    recorder = EpisodeRecorder(EpisodePlan(base_steps=0, time_limit_steps=2), buffer)
    action = np.zeros(2, np.float32)
    recorder.step(make_obs(0, 0), action, 0.0, make_obs(0, 1), False, False, "residual")
    recorder.step(make_obs(0, 1), action, 0.0, make_obs(0, 2), False, False, "residual")
    with pytest.raises(ValueError, match="past the time limit"):
        recorder.step(make_obs(0, 2), action, 0.0, make_obs(0, 3), False, False, "residual")
    recorder.abort()
    assert recorder.done and not buffer.episode_open and len(buffer) == 0
    assert len(recorder.trajectory) == 2  # the partial trajectory stays for inspection
    # the buffer is ready for the next episode
    run(EpisodeRecorder(EpisodePlan(base_steps=0, time_limit_steps=5), buffer), make_obs, 2, episode=1)
    assert len(buffer) == 2
