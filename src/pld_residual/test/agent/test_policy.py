"""ResidualPolicy: act shapes and speed, save/load and bytes round trips, clear errors on bad input."""

from __future__ import annotations

import time
from pathlib import Path

import flax.serialization
import jax
import numpy as np
import pytest

from pld_residual.agent import learner
from pld_residual.agent.config import ResidualSACConfig
from pld_residual.agent.policy import PARAMS_FORMAT, ResidualPolicy

CFG = ResidualSACConfig(hidden=32)


def _trained_like(seed: int = 1) -> ResidualPolicy:
    """A policy with non-zero residual (perturbed parameters), so round trips are not trivially zero."""
    policy = ResidualPolicy.create(CFG, obs_dim=9, seed=seed)
    rng = np.random.default_rng(seed)
    policy.set_params(
        jax.tree.map(lambda x: x + 0.1 * rng.standard_normal(x.shape).astype(np.float32), policy.params)
    )
    return policy


def test_act_shapes_range_and_dtype() -> None:
    policy = _trained_like()
    rng = np.random.default_rng(0)
    one = policy.act(rng.standard_normal(9), np.zeros(7))
    many = policy.act(rng.standard_normal((4, 9)), np.zeros((4, 7)), deterministic=False)
    assert one.shape == (7,) and many.shape == (4, 7)
    assert one.dtype == np.float32 and many.dtype == np.float32
    assert np.all(np.abs(many) <= 1.0) and np.any(one != 0.0)
    assert (policy.obs_dim, policy.action_dim) == (9, 7)


def test_stochastic_act_seeded_is_reproducible_and_unseeded_varies() -> None:
    policy = _trained_like()
    obs, base = np.ones(9, np.float32), np.zeros(7, np.float32)
    np.testing.assert_array_equal(
        policy.act(obs, base, deterministic=False, seed=5), policy.act(obs, base, deterministic=False, seed=5)
    )
    assert not np.array_equal(
        policy.act(obs, base, deterministic=False), policy.act(obs, base, deterministic=False)
    )


def test_act_rejects_wrong_shapes() -> None:
    policy = _trained_like()
    with pytest.raises(ValueError, match="obs"):
        policy.act(np.zeros(8), np.zeros(7))
    with pytest.raises(ValueError, match="base_action"):
        policy.act(np.zeros((2, 9)), np.zeros(7))


def test_act_is_fast_after_warm_up() -> None:
    policy = ResidualPolicy.create(ResidualSACConfig(), obs_dim=143)  # paper sizes, small-VLA features
    obs, base = np.zeros(143, np.float32), np.zeros(7, np.float32)
    policy.act(obs, base)
    times = []
    for _ in range(200):
        start = time.perf_counter()
        policy.act(obs, base)
        times.append(time.perf_counter() - start)
    # well under 1 ms on an idle CPU; the bound leaves room for a loaded CI machine
    assert float(np.median(times)) < 2e-3


def test_save_load_gives_identical_actions(tmp_path: Path) -> None:
    policy = _trained_like()
    policy.save(tmp_path / "policy")
    loaded = ResidualPolicy.load(tmp_path / "policy")
    assert loaded.config == policy.config and loaded.obs_dim == 9
    obs = np.random.default_rng(1).standard_normal((6, 9)).astype(np.float32)
    base = np.random.default_rng(2).uniform(-1, 1, (6, 7)).astype(np.float32)
    np.testing.assert_array_equal(loaded.act(obs, base), policy.act(obs, base))
    np.testing.assert_array_equal(
        loaded.act(obs, base, deterministic=False, seed=3), policy.act(obs, base, deterministic=False, seed=3)
    )
    assert sorted(p.name for p in (tmp_path / "policy").iterdir()) == ["config.json", "params.msgpack"]


def test_bytes_round_trip() -> None:
    source, target = _trained_like(seed=1), ResidualPolicy.create(CFG, obs_dim=9, seed=2)
    blob = source.params_to_bytes()
    assert PARAMS_FORMAT == "flax-msgpack" and isinstance(blob, bytes)
    target.load_bytes(blob)
    obs, base = np.ones((3, 9), np.float32), np.full((3, 7), 0.1, np.float32)
    np.testing.assert_array_equal(target.act(obs, base), source.act(obs, base))


@pytest.mark.parametrize("blob", [b"", b"not msgpack at all \x00\xff\xfe", b"\x92\x01\x02"])
def test_load_bytes_rejects_garbage(blob: bytes) -> None:
    with pytest.raises(ValueError, match=r"flax-msgpack|tree mismatch"):
        ResidualPolicy.create(CFG, obs_dim=9).load_bytes(blob)


def test_load_bytes_rejects_wrong_shapes_naming_the_parameter() -> None:
    other_obs = ResidualPolicy.create(CFG, obs_dim=10).params_to_bytes()
    with pytest.raises(ValueError, match=r"Dense_0/kernel: expected shape \(16, 32\), got \(17, 32\)"):
        ResidualPolicy.create(CFG, obs_dim=9).load_bytes(other_obs)
    fewer_layers = ResidualPolicy.create(CFG.replace(actor_layers=2), obs_dim=9).params_to_bytes()
    with pytest.raises(ValueError, match=r"missing.*Dense_2"):
        ResidualPolicy.create(CFG, obs_dim=9).load_bytes(fewer_layers)
    not_params = flax.serialization.msgpack_serialize({"hello": np.zeros(3)})
    with pytest.raises(ValueError, match="tree mismatch"):
        ResidualPolicy.create(CFG, obs_dim=9).load_bytes(not_params)


def test_from_learner_shares_the_actor(tiny_config: ResidualSACConfig, obs_dim: int) -> None:
    state = learner.create(tiny_config, obs_dim)
    policy = ResidualPolicy.from_learner(state, tiny_config)
    assert policy.params is state.actor.params and policy.obs_dim == obs_dim
    with pytest.raises(ValueError, match="config"):
        ResidualPolicy.from_learner(state, tiny_config.replace(hidden=8))


def test_load_of_a_non_policy_directory_is_a_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"config\.json"):
        ResidualPolicy.load(tmp_path)
