"""`ResidualPolicy`: the residual actor at run time (learning loop, 20 Hz ROS node), with a stable API.

It returns the raw residual a_delta in [-1, 1]; the caller combines it with the base action via
`combine(base, delta, xi, low, high)`, so xi stays a run-time decision of the loop or node.
Parameters travel as bytes (`params_to_bytes` / `load_bytes`, format `PARAMS_FORMAT`), e.g. from the
learner node to the actor node, and are saved as a directory with `config.json` + `params.msgpack`.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np

from pld_residual.agent.config import ResidualSACConfig, check_obs_dim
from pld_residual.agent.io import atomic_write, check_tree
from pld_residual.agent.networks import axes_mask, deterministic_residual, make_actor, sample_residual

PARAMS_FORMAT = "flax-msgpack"
CONFIG_FILE = "config.json"
PARAMS_FILE = "params.msgpack"
_FORMAT_VERSION = 1


class _ActFunctions(NamedTuple):
    deterministic: Callable[..., jax.Array]
    stochastic: Callable[..., tuple[jax.Array, jax.Array]]


@functools.cache
def _act_functions(config: ResidualSACConfig) -> _ActFunctions:
    """Jitted act functions per config: every policy of a config (reloads, swaps) shares one compilation."""
    actor = make_actor(config)
    mask = axes_mask(config)

    @jax.jit
    def deterministic(params: Any, obs: jax.Array, base: jax.Array) -> jax.Array:
        mean, _ = actor.apply(params, obs, base)
        return deterministic_residual(mean, mask)

    @jax.jit
    def stochastic(
        params: Any, obs: jax.Array, base: jax.Array, key: jax.Array
    ) -> tuple[jax.Array, jax.Array]:
        key, sample_key = jax.random.split(key)
        mean, log_std = actor.apply(params, obs, base)
        delta, _ = sample_residual(mean, log_std, sample_key, mask=mask)
        return delta, key

    return _ActFunctions(deterministic, stochastic)


class ResidualPolicy:
    """Jitted residual actor; `act` takes one observation [obs_dim] or a batch [B, obs_dim]."""

    def __init__(self, config: ResidualSACConfig, obs_dim: int, params: Any, seed: int = 0) -> None:
        self._config = config
        self._obs_dim = check_obs_dim(obs_dim)
        self._params = params
        self._key = jax.random.PRNGKey(seed)
        self._deterministic, self._stochastic = _act_functions(config)

    @classmethod
    def create(cls, config: ResidualSACConfig, obs_dim: int, seed: int = 0) -> ResidualPolicy:
        """A fresh actor (zero residual), initialised exactly as `learner.create` does for this seed."""
        from pld_residual.agent.learner import init_actor_params  # the learner owns the initialisation

        return cls(config, obs_dim, init_actor_params(config, obs_dim, seed), seed=seed)

    @classmethod
    def from_learner(
        cls, state: Any, config: ResidualSACConfig | None = None, seed: int = 0
    ) -> ResidualPolicy:
        """The deployed actor of a `ResidualSACState` (`learner.policy_params`: shared, not copied)."""
        from pld_residual.agent.learner import policy_params  # the learner owns its state's layout

        config = state.config if config is None else config
        if config != state.config:
            raise ValueError("from_learner: config differs from the learner state's config")
        return cls(config, state.obs_dim, policy_params(state), seed=seed)

    @property
    def config(self) -> ResidualSACConfig:
        return self._config

    @property
    def obs_dim(self) -> int:
        return self._obs_dim

    @property
    def action_dim(self) -> int:
        return self._config.action_dim

    @property
    def params(self) -> Any:
        return self._params

    def act(
        self,
        obs: np.ndarray,
        base_action: np.ndarray,
        deterministic: bool = True,
        seed: int | None = None,
    ) -> np.ndarray:
        """Raw residual a_delta in [-1, 1] (float32), shaped [A] for one observation or [B, A] for a batch.

        Stochastic calls without `seed` advance an internal key; with `seed` they are reproducible.
        """
        obs_arr = np.asarray(obs, dtype=np.float32)
        base_arr = np.asarray(base_action, dtype=np.float32)
        single = obs_arr.ndim == 1
        if obs_arr.ndim not in (1, 2) or obs_arr.shape[-1] != self._obs_dim:
            raise ValueError(f"obs must be [{self._obs_dim}] or [B, {self._obs_dim}], got {obs_arr.shape}")
        expected = (self.action_dim,) if single else (obs_arr.shape[0], self.action_dim)
        if base_arr.shape != expected:
            raise ValueError(
                f"base_action must have shape {expected} to match obs {obs_arr.shape}, got {base_arr.shape}"
            )
        if single:
            obs_arr, base_arr = obs_arr[None], base_arr[None]
        if deterministic:
            delta = self._deterministic(self._params, obs_arr, base_arr)
        else:
            key = jax.random.PRNGKey(seed) if seed is not None else self._key
            delta, next_key = self._stochastic(self._params, obs_arr, base_arr, key)
            if seed is None:
                self._key = next_key
        out = np.asarray(delta, dtype=np.float32)
        return out[0] if single else out

    def set_params(self, params: Any) -> None:
        """Swap in new parameters of the same structure (e.g. the learner's latest actor)."""
        check_tree(self._params, params)
        self._params = params

    def params_to_bytes(self) -> bytes:
        """The actor parameters as flax msgpack bytes (`PARAMS_FORMAT`)."""
        return flax.serialization.to_bytes(self._params)

    def load_bytes(self, blob: bytes) -> None:
        """Replace the parameters from `params_to_bytes` output; ValueError if the blob does not fit."""
        if not isinstance(blob, bytes | bytearray | memoryview):
            raise ValueError(f"load_bytes expects bytes, got {type(blob).__name__}")
        try:
            restored = flax.serialization.msgpack_restore(bytes(blob))
        except Exception as exc:  # msgpack raises several unrelated types on garbage
            raise ValueError(f"load_bytes: not a {PARAMS_FORMAT} parameter blob ({exc})") from exc
        if not isinstance(restored, dict):
            raise ValueError(
                f"load_bytes: not a {PARAMS_FORMAT} parameter blob (decoded {type(restored).__name__})"
            )
        template = flax.serialization.to_state_dict(self._params)
        check_tree(template, restored)
        params = flax.serialization.from_state_dict(self._params, restored)
        self._params = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), params)

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write `config.json` and `params.msgpack` into `directory`, each atomically (tmp file + rename)."""
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        meta = {
            "format": PARAMS_FORMAT,
            "format_version": _FORMAT_VERSION,
            "obs_dim": self._obs_dim,
            "config": self._config.to_dict(),
        }
        atomic_write(path / PARAMS_FILE, self.params_to_bytes())
        atomic_write(path / CONFIG_FILE, (json.dumps(meta, indent=2) + "\n").encode())
        return path

    @classmethod
    def load(cls, directory: str | os.PathLike[str], seed: int = 0) -> ResidualPolicy:
        """Inverse of `save`: same config, same parameters, same actions."""
        path = Path(directory)
        try:
            meta = json.loads((path / CONFIG_FILE).read_text())
        except FileNotFoundError as exc:
            raise ValueError(f"{path} is not a saved ResidualPolicy (no {CONFIG_FILE})") from exc
        if meta.get("format") != PARAMS_FORMAT:
            raise ValueError(
                f"{path / CONFIG_FILE}: format {meta.get('format')!r}, expected {PARAMS_FORMAT!r}"
            )
        policy = cls.create(ResidualSACConfig.from_dict(meta["config"]), int(meta["obs_dim"]), seed=seed)
        policy.load_bytes((path / PARAMS_FILE).read_bytes())
        return policy
