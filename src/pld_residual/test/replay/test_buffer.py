"""ReplayBuffer: next obs by index, Monte-Carlo returns, discounts, wrap-around, errors, save/load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pld_residual.replay import FieldSpec, ObsSpec, ReplayBuffer, monte_carlo_returns


def tiny_buffer(spec: ObsSpec, capacity: int = 32, **kwargs) -> ReplayBuffer:
    return ReplayBuffer(spec, capacity, action_dim=2, **kwargs)


def add_episode(buffer, make_obs, episode: int, length: int, terminated: bool = True, rewards=None) -> None:
    """Append an episode whose observations and actions encode (episode, step)."""
    rewards = [0.0] * length if rewards is None else rewards
    buffer.start_episode(make_obs(episode, 0))
    for t in range(length):
        last = t == length - 1
        action = np.array([episode, t], np.float32)
        buffer.add(action, rewards[t], make_obs(episode, t + 1), last and terminated, last and not terminated)


def all_transitions(
    buffer: ReplayBuffer, rng_seed: int = 0, draws: int = 4000
) -> dict[tuple[int, int], dict]:
    """Sample a lot and index the sampled transitions by (episode, step)."""
    batch = buffer.sample(draws, np.random.default_rng(rng_seed))
    seen = {}
    for i in range(draws):
        episode, step = (int(v) for v in batch["obs"]["tag"][i, :2])
        seen[(episode, step)] = {key: _row(value, i) for key, value in batch.items()}
    return seen


def _row(value, i):
    return {k: v[i] for k, v in value.items()} if isinstance(value, dict) else value[i]


# ---------------------------------------------------------------------- next obs, returns, discounts


def test_next_obs_is_the_following_slot_of_the_same_episode(tiny_spec, make_obs) -> None:
    buffer = tiny_buffer(tiny_spec)
    add_episode(buffer, make_obs, episode=0, length=3)
    add_episode(buffer, make_obs, episode=1, length=2, terminated=False)
    # 3 + 2 transitions in 4 + 3 slots; the final observations (0, 3) and (1, 2) never start a transition
    assert len(buffer) == 5
    seen = all_transitions(buffer)
    assert sorted(seen) == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1)]
    for (episode, step), row in seen.items():
        np.testing.assert_array_equal(row["next_obs"]["tag"], [episode, step + 1, 0])
        np.testing.assert_array_equal(row["next_obs"]["pixel"], [episode, step + 1])
        np.testing.assert_array_equal(row["action"], [episode, step])


def test_batch_keys_shapes_and_dtypes(make_obs) -> None:
    spec = ObsSpec((("tag", FieldSpec((3,), "float32")), ("images", FieldSpec((2, 4, 4, 3), "uint8"))))
    buffer = ReplayBuffer(spec, 16, action_dim=2)
    buffer.start_episode({"tag": np.zeros(3, np.float32), "images": np.full((2, 4, 4, 3), 7, np.uint8)})
    buffer.add(
        np.zeros(2),
        1.0,
        {"tag": np.ones(3, np.float32), "images": np.full((2, 4, 4, 3), 9, np.uint8)},
        True,
        False,
    )
    batch = buffer.sample(5, np.random.default_rng(0))
    assert set(batch) == {"obs", "next_obs", "action", "reward", "discount", "mc_return"}
    assert batch["obs"]["images"].dtype == np.uint8 and batch["obs"]["images"].shape == (5, 2, 4, 4, 3)
    assert (batch["obs"]["images"] == 7).all() and (batch["next_obs"]["images"] == 9).all()
    assert batch["action"].shape == (5, 2) and batch["action"].dtype == np.float32
    for key in ("reward", "discount", "mc_return"):
        assert batch[key].shape == (5,) and batch[key].dtype == np.float32

    many = buffer.sample_many(3, 5, np.random.default_rng(0))
    assert many["obs"]["images"].shape == (3, 5, 2, 4, 4, 3)
    assert many["next_obs"]["tag"].shape == (3, 5, 3)
    assert many["reward"].shape == (3, 5) and many["action"].shape == (3, 5, 2)


def test_monte_carlo_returns_hand_computed() -> None:
    np.testing.assert_allclose(monte_carlo_returns(np.array([0.0, 0.0, 1.0]), 0.5), [0.25, 0.5, 1.0])
    # with bias b = -1: G2 = 0, G1 = -1 + 0.5 * 0 = -1, G0 = -1 + 0.5 * -1 = -1.5
    np.testing.assert_allclose(monte_carlo_returns(np.array([0.0, 0.0, 1.0]), 0.5, -1.0), [-1.5, -1.0, 0.0])


def test_buffer_mc_returns_include_the_bias_rewards_stay_raw(tiny_spec, make_obs) -> None:
    buffer = tiny_buffer(tiny_spec, gamma=0.5)
    add_episode(buffer, make_obs, 0, 3, rewards=[0.0, 0.0, 1.0])
    seen = all_transitions(buffer)
    assert [float(seen[(0, t)]["mc_return"]) for t in range(3)] == [0.25, 0.5, 1.0]

    biased = tiny_buffer(tiny_spec, gamma=0.5, reward_bias=-1.0)
    add_episode(biased, make_obs, 0, 3, rewards=[0.0, 0.0, 1.0])
    seen = all_transitions(biased)
    assert [float(seen[(0, t)]["mc_return"]) for t in range(3)] == [-1.5, -1.0, 0.0]
    # sampled rewards stay raw: the learner adds reward_bias in its TD target (agent/learner.py)
    assert [float(seen[(0, t)]["reward"]) for t in range(3)] == [0.0, 0.0, 1.0]


def test_terminal_gives_discount_zero_truncation_keeps_one(tiny_spec, make_obs) -> None:
    buffer = tiny_buffer(tiny_spec)
    add_episode(buffer, make_obs, 0, 2, terminated=True)
    add_episode(buffer, make_obs, 1, 2, terminated=False)  # time limit
    seen = all_transitions(buffer)
    assert float(seen[(0, 0)]["discount"]) == 1.0
    assert float(seen[(0, 1)]["discount"]) == 0.0
    assert float(seen[(1, 0)]["discount"]) == 1.0
    assert float(seen[(1, 1)]["discount"]) == 1.0  # truncated: still bootstrap from the final observation
    np.testing.assert_array_equal(seen[(1, 1)]["next_obs"]["tag"], [1, 2, 0])


def test_open_episode_is_not_sampled_until_it_ends(tiny_spec, make_obs) -> None:
    buffer = tiny_buffer(tiny_spec)
    buffer.start_episode(make_obs(0, 0))
    buffer.add(np.zeros(2), 0.0, make_obs(0, 1), False, False)
    assert len(buffer) == 0 and buffer.episode_open
    with pytest.raises(ValueError, match="no complete episode"):
        buffer.sample(1, np.random.default_rng(0))
    buffer.add(np.zeros(2), 1.0, make_obs(0, 2), True, False)
    assert len(buffer) == 2 and not buffer.episode_open and buffer.num_episodes == 1


def test_abort_drops_the_open_episode(tiny_spec, make_obs) -> None:
    buffer = tiny_buffer(tiny_spec)
    add_episode(buffer, make_obs, 0, 2)
    buffer.start_episode(make_obs(1, 0))
    buffer.add(np.zeros(2), 0.0, make_obs(1, 1), False, False)
    assert buffer.abort_episode() == 1
    add_episode(buffer, make_obs, 2, 2)
    assert sorted(all_transitions(buffer)) == [(0, 0), (0, 1), (2, 0), (2, 1)]


def test_add_episode_matches_step_by_step(tiny_spec, make_obs) -> None:
    step_by_step = tiny_buffer(tiny_spec, gamma=0.9)
    add_episode(step_by_step, make_obs, 0, 4, terminated=False, rewards=[0, 1, 0, 1])
    whole = tiny_buffer(tiny_spec, gamma=0.9)
    observations = [make_obs(0, t) for t in range(5)]
    actions = [np.array([0, t], np.float32) for t in range(4)]
    whole.add_episode(observations, actions, [0, 1, 0, 1], terminated=False)
    a, b = (buf.sample(64, np.random.default_rng(3)) for buf in (step_by_step, whole))
    for key in ("action", "reward", "discount", "mc_return"):
        np.testing.assert_array_equal(a[key], b[key])


def test_n_step_sums_rewards_inside_the_episode_hand_computed(tiny_spec, make_obs) -> None:
    # gamma 0.5, bias 0.25, n 3: reward = r_0 + sum_{j=1}^{k-1} 0.5^j (r_j + 0.25), discount = 0.5^(k-1)
    buffer = tiny_buffer(tiny_spec, gamma=0.5, reward_bias=0.25, n_step=3)
    add_episode(buffer, make_obs, 0, 4, terminated=True, rewards=[1.0, 0.0, 2.0, 4.0])
    add_episode(buffer, make_obs, 1, 2, terminated=False, rewards=[1.0, 1.0])  # time limit
    seen = all_transitions(buffer)
    expected = {  # (episode, step): (reward, discount, next step)
        (0, 0): (1 + 0.5 * 0.25 + 0.25 * 2.25, 0.25, 3),
        (0, 1): (0 + 0.5 * 2.25 + 0.25 * 4.25, 0.0, 4),  # its third step terminates
        (0, 2): (2 + 0.5 * 4.25, 0.0, 4),
        (0, 3): (4.0, 0.0, 4),
        (1, 0): (1 + 0.5 * 1.25, 0.5, 2),  # truncated after two steps: bootstrap with gamma^2
        (1, 1): (1.0, 1.0, 2),
    }
    assert sorted(seen) == sorted(expected)
    for (episode, step), (reward, discount, next_step) in expected.items():
        row = seen[(episode, step)]
        assert float(row["reward"]) == pytest.approx(reward), (episode, step)
        assert float(row["discount"]) == discount, (episode, step)
        np.testing.assert_array_equal(row["next_obs"]["tag"][:2], [episode, next_step])
        np.testing.assert_array_equal(row["obs"]["tag"][:2], [episode, step])  # the rest stays one-step


def _n_step_expectation(rewards: list[float], terminated: bool, step: int, n: int, gamma: float):
    """Ground truth for one transition: (reward, discount, next step) straight from the definition."""
    k = min(n, len(rewards) - step)
    reward = sum(gamma**j * rewards[step + j] for j in range(k))
    ends_terminal = terminated and step + k == len(rewards)
    return reward, 0.0 if ends_terminal else gamma ** (k - 1), step + k


# ---------------------------------------------------------------------- wrap-around


@pytest.mark.parametrize("n_step", [1, 3])
def test_wrap_around_never_pairs_with_another_episode_or_an_overwritten_slot(
    tiny_spec, make_obs, n_step
) -> None:
    """Tiny ring, many episodes: every sampled pair is checked against a ground-truth model of the slots."""
    capacity, gamma = 11, 0.9
    buffer = tiny_buffer(tiny_spec, capacity, gamma=gamma, n_step=n_step)
    rng = np.random.default_rng(7)
    owner: list[tuple[int, int] | None] = [
        None
    ] * capacity  # which (episode, step) observation each slot holds
    episodes: dict[int, dict] = {}  # committed episodes: rewards and whether they terminated
    cursor = 0

    def write(tag: tuple[int, int]) -> None:
        nonlocal cursor
        owner[cursor] = tag
        cursor = (cursor + 1) % capacity

    for episode in range(60):
        length = int(rng.integers(1, 7))
        rewards = rng.integers(0, 2, length).astype(float).tolist()
        terminated = bool(rng.integers(0, 2))
        abort_at = int(rng.integers(0, length)) if rng.random() < 0.15 else None
        start = cursor
        buffer.start_episode(make_obs(episode, 0))
        write((episode, 0))
        for t in range(length):
            if t == abort_at:
                buffer.abort_episode()
                cursor = start
                break
            last = t == length - 1
            action = np.array([episode, t], np.float32)
            buffer.add(
                action, rewards[t], make_obs(episode, t + 1), last and terminated, last and not terminated
            )
            write((episode, t + 1))
        else:
            episodes[episode] = {"rewards": rewards, "terminated": terminated}

        # ground truth: a committed transition is live iff its slot and the next still hold its observations
        live = set()
        for slot in range(capacity):
            here, there = owner[slot], owner[(slot + 1) % capacity]
            if here is not None and here[0] in episodes and there == (here[0], here[1] + 1):
                live.add(here)
        assert len(buffer) == len(live), f"after episode {episode}"
        if not live:
            continue
        batch = buffer.sample(256, np.random.default_rng(episode))
        sampled = set()
        for i in range(256):
            ep, step = (int(v) for v in batch["obs"]["tag"][i, :2])
            assert (ep, step) in live, f"sampled a dead transition {(ep, step)} after episode {episode}"
            sampled.add((ep, step))
            info = episodes[ep]
            reward, discount, next_step = _n_step_expectation(
                info["rewards"], info["terminated"], step, n_step, gamma
            )
            np.testing.assert_array_equal(batch["next_obs"]["tag"][i, :2], [ep, next_step])
            np.testing.assert_array_equal(batch["action"][i], [ep, step])
            expected_return = monte_carlo_returns(np.array(info["rewards"]), gamma)[step]
            assert batch["mc_return"][i] == pytest.approx(expected_return, rel=1e-6)
            assert batch["reward"][i] == pytest.approx(reward, rel=1e-6)
            assert batch["discount"][i] == pytest.approx(discount, rel=1e-6)
        assert sampled == live  # uniform sampling over a handful of live transitions reaches them all


def test_episode_longer_than_capacity_is_an_error(tiny_spec, make_obs) -> None:
    buffer = tiny_buffer(tiny_spec, capacity=4)
    buffer.start_episode(make_obs(0, 0))
    for t in range(3):
        buffer.add(np.zeros(2), 0.0, make_obs(0, t + 1), False, False)
    with pytest.raises(ValueError, match="capacity 4"):
        buffer.add(np.zeros(2), 0.0, make_obs(0, 4), False, False)


# ---------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda o: o.update(tag=np.zeros(4, np.float32)), r"'tag': shape \(4,\), expected \(3,\)"),
        (lambda o: o.update(tag=np.zeros(3, np.float64)), r"'tag': dtype float64, expected float32"),
        (lambda o: o.update(pixel=np.zeros(2, np.float32)), r"'pixel': dtype float32, expected uint8"),
        (lambda o: o["tag"].__setitem__(1, np.nan), r"'tag': contains NaN"),
        (lambda o: o.pop("pixel"), r"missing field\(s\) \['pixel'\]"),
        (lambda o: o.update(extra=np.zeros(1)), r"unexpected field\(s\) \['extra'\]"),
        (lambda o: o.update(tag=[0.0, 0.0, 0.0]), r"'tag': expected a numpy array"),
    ],
)
def test_bad_observations_are_rejected_naming_the_field(tiny_spec, make_obs, mutate, message) -> None:
    buffer = tiny_buffer(tiny_spec)
    bad = make_obs(0, 0)
    mutate(bad)
    with pytest.raises((ValueError, TypeError), match=message):
        buffer.start_episode(bad)
    buffer.start_episode(make_obs(0, 0))
    with pytest.raises((ValueError, TypeError), match=message):
        buffer.add(np.zeros(2), 0.0, bad, False, False)
    # the rejected step left nothing behind: the episode continues normally
    buffer.add(np.zeros(2), 0.0, make_obs(0, 1), True, False)
    assert len(buffer) == 1


def test_bad_actions_rewards_and_call_order(tiny_spec, make_obs) -> None:
    buffer = tiny_buffer(tiny_spec)
    with pytest.raises(RuntimeError, match="start_episode"):
        buffer.add(np.zeros(2), 0.0, make_obs(0, 1), False, False)
    buffer.start_episode(make_obs(0, 0))
    with pytest.raises(RuntimeError, match="still open"):
        buffer.start_episode(make_obs(1, 0))
    with pytest.raises(ValueError, match=r"action: shape \(3,\)"):
        buffer.add(np.zeros(3), 0.0, make_obs(0, 1), False, False)
    with pytest.raises(ValueError, match="action: contains NaN"):
        buffer.add(np.array([0.0, np.nan]), 0.0, make_obs(0, 1), False, False)
    with pytest.raises(ValueError, match="reward: not finite"):
        buffer.add(np.zeros(2), float("nan"), make_obs(0, 1), False, False)
    with pytest.raises(ValueError, match="reward: expected a scalar"):
        buffer.add(np.zeros(2), np.zeros(1), make_obs(0, 1), False, False)
    with pytest.raises(ValueError, match="declares no extras"):
        buffer.add(np.zeros(2), 0.0, make_obs(0, 1), False, False, weight=np.ones(()))


def test_extras_are_stored_per_transition(tiny_spec, make_obs) -> None:
    extras = ObsSpec((("intervened", FieldSpec((), "bool")),))
    buffer = ReplayBuffer(tiny_spec, 8, action_dim=2, extras=extras)
    buffer.start_episode(make_obs(0, 0))
    with pytest.raises(ValueError, match=r"missing field\(s\) \['intervened'\]"):
        buffer.add(np.zeros(2), 0.0, make_obs(0, 1), False, False)
    buffer.add(np.zeros(2), 0.0, make_obs(0, 1), False, False, intervened=np.bool_(True))
    buffer.add(np.zeros(2), 0.0, make_obs(0, 2), True, False, intervened=np.array(False))
    batch = buffer.sample(50, np.random.default_rng(0))
    np.testing.assert_array_equal(batch["intervened"], batch["obs"]["tag"][:, 1] == 0)
    with pytest.raises(ValueError, match="reserved"):
        ReplayBuffer(tiny_spec, 8, extras=ObsSpec((("reward", FieldSpec((), "float32")),)))


def test_bad_construction_arguments(tiny_spec) -> None:
    with pytest.raises(ValueError, match="capacity"):
        ReplayBuffer(tiny_spec, 1)
    with pytest.raises(ValueError, match="gamma"):
        ReplayBuffer(tiny_spec, 8, gamma=1.5)
    for bad in (0, 2.5, True):
        with pytest.raises(ValueError, match="n_step"):
            ReplayBuffer(tiny_spec, 8, n_step=bad)
    with pytest.raises(TypeError, match="ObsSpec"):
        ReplayBuffer({"tag": ((3,), "float32")}, 8)  # type: ignore[arg-type]


# ---------------------------------------------------------------------- persistence


def test_save_load_round_trip_gives_identical_samples(tiny_spec, make_obs, tmp_path: Path) -> None:
    buffer = tiny_buffer(tiny_spec, capacity=13, gamma=0.8, reward_bias=-0.5, n_step=2)
    for episode in range(9):  # wraps the 13-slot ring several times
        add_episode(buffer, make_obs, episode, 1 + episode % 4, terminated=episode % 2 == 0, rewards=None)
    buffer.start_episode(make_obs(99, 0))  # an open episode is not saved
    buffer.add(np.zeros(2), 0.0, make_obs(99, 1), False, False)

    path = buffer.save(tmp_path / "online.npz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["online.npz"]  # no temporary file left behind
    restored = ReplayBuffer.load(path)
    assert len(restored) == len(buffer) and restored.num_episodes == buffer.num_episodes
    assert not restored.episode_open
    assert (restored.gamma, restored.reward_bias, restored.capacity, restored.n_step) == (0.8, -0.5, 13, 2)

    a = buffer.sample_many(4, 32, np.random.default_rng(123))
    b = restored.sample_many(4, 32, np.random.default_rng(123))
    for key in ("action", "reward", "discount", "mc_return"):
        np.testing.assert_array_equal(a[key], b[key])
    for name in tiny_spec.names:
        np.testing.assert_array_equal(a["obs"][name], b["obs"][name])
        np.testing.assert_array_equal(a["next_obs"][name], b["next_obs"][name])

    # saving again over the same path replaces it atomically, and the restored buffer keeps working
    add_episode(restored, make_obs, 100, 3)
    restored.save(path)
    assert ReplayBuffer.load(path).num_episodes == buffer.num_episodes + 1
