"""HybridSampler: exact offline/online counts, fallbacks, stacked batches, mismatched buffers."""

from __future__ import annotations

import numpy as np
import pytest

from pld_residual.replay import HybridSampler, ReplayBuffer, offline_count

OFFLINE, ONLINE = 1, 2  # the `source` tag of each buffer's observations


def filled(spec, make_obs, source: int, episodes: int = 3, length: int = 4, **kwargs) -> ReplayBuffer:
    buffer = ReplayBuffer(spec, 64, action_dim=2, **kwargs)
    for episode in range(episodes):
        buffer.start_episode(make_obs(episode, 0, source))
        for t in range(length):
            last = t == length - 1
            buffer.add(np.array([episode, t], np.float32), 0.0, make_obs(episode, t + 1, source), last, False)
    return buffer


def sources(batch) -> np.ndarray:
    return batch["obs"]["tag"][..., 2].astype(int)


def test_batch_of_8_is_exactly_4_offline_and_4_online(tiny_spec, make_obs) -> None:
    sampler = HybridSampler(filled(tiny_spec, make_obs, OFFLINE), filled(tiny_spec, make_obs, ONLINE))
    rng = np.random.default_rng(0)
    for _ in range(500):
        batch = sampler.sample(8, rng)
        assert batch["is_offline"].dtype == bool
        assert batch["is_offline"].sum() == 4
        # the mask tells the truth: offline rows come from the offline buffer, and their next_obs too
        np.testing.assert_array_equal(sources(batch), np.where(batch["is_offline"], OFFLINE, ONLINE))
        np.testing.assert_array_equal(batch["next_obs"]["tag"][:, 2], sources(batch))
        assert batch["action"].shape == (8, 2) and batch["reward"].shape == (8,)


@pytest.mark.parametrize(
    ("batch_size", "n_offline"), [(1, 1), (2, 1), (3, 2), (5, 3), (7, 4), (9, 5), (256, 128)]
)
def test_odd_batch_sizes_round_half_up(tiny_spec, make_obs, batch_size: int, n_offline: int) -> None:
    assert offline_count(batch_size, 0.5) == n_offline
    sampler = HybridSampler(filled(tiny_spec, make_obs, OFFLINE), filled(tiny_spec, make_obs, ONLINE))
    batch = sampler.sample(batch_size, np.random.default_rng(batch_size))
    assert (sources(batch) == OFFLINE).sum() == n_offline
    assert (sources(batch) == ONLINE).sum() == batch_size - n_offline


def test_other_fractions(tiny_spec, make_obs) -> None:
    assert offline_count(10, 0.25) == 3  # 2.5 rounds up
    assert offline_count(10, 0.0) == 0 and offline_count(10, 1.0) == 10
    offline, online = filled(tiny_spec, make_obs, OFFLINE), filled(tiny_spec, make_obs, ONLINE)
    assert HybridSampler(offline, online, 0.0).sample(6, np.random.default_rng(0))["is_offline"].sum() == 0
    assert HybridSampler(offline, online, 1.0).sample(6, np.random.default_rng(0))["is_offline"].all()
    with pytest.raises(ValueError, match="offline_fraction"):
        HybridSampler(offline, online, 1.5)


def test_empty_online_buffer_samples_everything_offline(tiny_spec, make_obs) -> None:
    online = ReplayBuffer(tiny_spec, 64, action_dim=2)
    sampler = HybridSampler(filled(tiny_spec, make_obs, OFFLINE), online)
    batch = sampler.sample(8, np.random.default_rng(0))
    assert batch["is_offline"].all() and (sources(batch) == OFFLINE).all()
    # an online episode still in progress does not count: its transitions are not sampleable yet
    online.start_episode(make_obs(0, 0, ONLINE))
    online.add(np.zeros(2), 0.0, make_obs(0, 1, ONLINE), False, False)
    assert sampler.split(8) == (8, 0)
    online.add(np.zeros(2), 1.0, make_obs(0, 2, ONLINE), True, False)
    assert sampler.split(8) == (4, 4)


def test_empty_offline_buffer_is_an_error(tiny_spec, make_obs) -> None:
    empty = ReplayBuffer(tiny_spec, 64, action_dim=2)
    with pytest.raises(ValueError, match="offline buffer is empty"):
        HybridSampler(empty, filled(tiny_spec, make_obs, ONLINE)).sample(8, np.random.default_rng(0))
    with pytest.raises(ValueError, match="both buffers are empty"):
        HybridSampler(empty, ReplayBuffer(tiny_spec, 64, action_dim=2)).sample(8, np.random.default_rng(0))
    # an online-only ablation is allowed
    batch = HybridSampler(empty, filled(tiny_spec, make_obs, ONLINE), 0.0).sample(8, np.random.default_rng(0))
    assert (sources(batch) == ONLINE).all()


def test_counts_over_many_draws_cover_both_buffers_uniformly(tiny_spec, make_obs) -> None:
    offline = filled(tiny_spec, make_obs, OFFLINE, episodes=2, length=3)  # 6 transitions
    online = filled(tiny_spec, make_obs, ONLINE, episodes=3, length=4)  # 12 transitions
    batch = HybridSampler(offline, online).sample_many(200, 10, np.random.default_rng(1))
    assert batch["is_offline"].shape == (200, 10)
    assert (batch["is_offline"].sum(axis=1) == 5).all()
    tags = batch["obs"]["tag"].reshape(-1, 3)
    for source, n_transitions in ((OFFLINE, 6), (ONLINE, 12)):
        rows = tags[tags[:, 2] == source]
        assert len(rows) == 1000  # 200 batches x 5
        _, counts = np.unique(rows[:, :2], axis=0, return_counts=True)
        assert len(counts) == n_transitions
        expected = 1000 / n_transitions
        assert np.all(np.abs(counts - expected) < 5 * np.sqrt(expected))


def test_sample_many_stacks_on_a_leading_axis(tiny_spec, make_obs) -> None:
    sampler = HybridSampler(filled(tiny_spec, make_obs, OFFLINE), filled(tiny_spec, make_obs, ONLINE))
    batch = sampler.sample_many(3, 7, np.random.default_rng(0))
    assert batch["obs"]["tag"].shape == (3, 7, 3) and batch["next_obs"]["pixel"].shape == (3, 7, 2)
    assert batch["action"].shape == (3, 7, 2) and batch["mc_return"].shape == (3, 7)
    np.testing.assert_array_equal(sources(batch), np.where(batch["is_offline"], OFFLINE, ONLINE))
    assert (batch["is_offline"].sum(axis=1) == 4).all()


def test_buffers_must_agree(tiny_spec, make_obs) -> None:
    offline = filled(tiny_spec, make_obs, OFFLINE)
    with pytest.raises(ValueError, match="differ in gamma"):
        HybridSampler(offline, filled(tiny_spec, make_obs, ONLINE, gamma=0.5))
    with pytest.raises(ValueError, match="differ in n_step"):
        HybridSampler(offline, filled(tiny_spec, make_obs, ONLINE, n_step=3))
    with pytest.raises(ValueError, match="differ in action_dim"):
        HybridSampler(offline, ReplayBuffer(tiny_spec, 8, action_dim=3))
