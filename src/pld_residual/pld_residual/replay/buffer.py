"""An episode-aware ring buffer that stores every observation once.

Layout. The buffer is a ring of `capacity` *slots*. Slot `i` holds one observation and, if a transition
starts there, that transition's `action`, `reward`, `terminated` flag and Monte-Carlo return. The next
observation of the transition in slot `i` is the observation in slot `(i + 1) % capacity`, so nothing is
stored twice. An episode of L transitions occupies L + 1 consecutive slots: the last one holds the final
observation and is never a transition start. A `valid` flag per slot marks sampleable transition starts.

Why: with a 2x64x64x3 uint8 image per observation, storing `(obs, next_obs)` as float32 per transition
costs about 8x the memory (see `layout.memory_report`); 250k transitions would not fit in RAM.

Lifetime of a transition. `start_episode(obs_0)` writes the first observation; each `add(...)` writes the
next observation and the transition fields. The transitions of an episode become sampleable together when
the episode ends (`terminated` or `truncated`), because only then is their Monte-Carlo return known; a
batch never holds a placeholder. Writing a slot invalidates the old transition starting there and the old
transition whose next observation was there, so after wrap-around no sampled transition can pair an
observation with another episode's or an overwritten next observation.

N-step returns. With `n_step` > 1 a sampled transition sums the rewards of up to n steps of its own episode
and bootstraps from the observation after them (fewer steps when the episode ends first). The slots of an
episode are consecutive and its final-observation slot is never valid, so "the next slot is valid" is
exactly "the episode goes on": no extra per-slot field is needed.

The buffer is not thread-safe: a node that adds and samples from different threads must hold a lock.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pld_residual.replay.layout import (
    MemoryReport,
    memory_report,
    naive_bytes_per_transition,
    ours_bytes_per_transition,
    transition_spec,
)
from pld_residual.replay.returns import monte_carlo_returns
from pld_residual.replay.spec import ObsSpec

__all__ = ["Batch", "ReplayBuffer", "naive_bytes_per_transition"]

Batch = dict[str, Any]
"""A sampled batch; see `ReplayBuffer.sample` for its keys."""

DEFAULT_CAPACITY = 250_000
BATCH_KEYS = ("obs", "next_obs", "action", "reward", "discount", "mc_return")
RESERVED_NAMES = frozenset((*BATCH_KEYS, "is_offline", "terminated", "valid"))
FORMAT_VERSION = 1
# Below this fraction of sampleable slots, sample from the explicit list of valid slots instead of by
# rejection (both are deterministic functions of the buffer's state and the rng).
_REJECTION_MIN_ACCEPTANCE = 0.5


class ReplayBuffer:
    """Ring buffer of episodes; see the module docstring for the slot layout.

    `capacity` counts slots (observations): it holds `capacity` minus one slot per stored episode
    transitions (0.5 % overhead for 200-step episodes). `gamma` and `reward_bias` define the Monte-Carlo
    returns, which include the bias as Cal-QL's reference values must; sampled `reward` stays raw because
    the learner (`agent.learner`) adds the same `reward_bias` in its TD target. `extras` declares optional
    per-transition fields passed to `add` as keyword arguments and returned at the top level of a batch.
    """

    def __init__(
        self,
        spec: ObsSpec,
        capacity: int = DEFAULT_CAPACITY,
        *,
        action_dim: int = 7,
        gamma: float = 0.99,
        reward_bias: float = 0.0,
        extras: ObsSpec | None = None,
        n_step: int = 1,
    ) -> None:
        if not isinstance(spec, ObsSpec):
            raise TypeError(f"spec must be an ObsSpec, got {type(spec).__name__}")
        if int(capacity) != capacity or capacity < 2:
            raise ValueError(
                f"capacity must be an integer >= 2 (one transition needs two slots), got {capacity}"
            )
        if int(action_dim) != action_dim or action_dim < 1:
            raise ValueError(f"action_dim must be a positive integer, got {action_dim}")
        if not 0.0 <= gamma <= 1.0:
            raise ValueError(f"gamma must be in [0, 1], got {gamma}")
        if isinstance(n_step, bool) or int(n_step) != n_step or n_step < 1:
            raise ValueError(f"n_step must be a positive integer, got {n_step!r}")
        if not np.isfinite(reward_bias):
            raise ValueError(f"reward_bias must be finite, got {reward_bias}")
        if extras is not None:
            clash = sorted(set(extras.names) & RESERVED_NAMES)
            if clash:
                raise ValueError(f"extras field name(s) {clash} are reserved for batch keys")
        self.spec = spec
        self.extras_spec = extras
        self.capacity = int(capacity)
        self.action_dim = int(action_dim)
        self.gamma = float(gamma)
        self.reward_bias = float(reward_bias)
        self.n_step = int(n_step)

        def allocate(fields: ObsSpec) -> dict[str, np.ndarray]:
            return {name: np.zeros((self.capacity, *f.shape), f.dtype) for name, f in fields}

        self._obs = allocate(spec)
        self._tr = allocate(transition_spec(self.action_dim))
        self._extras = allocate(extras) if extras is not None else {}
        self._valid = np.zeros(self.capacity, bool)
        self._cursor = 0  # next slot to write
        self._size = 0  # slots written at least once (sampling draws from [0, size))
        self._num_valid = 0
        self._num_episodes = 0  # committed episodes, ever
        self._open_start: int | None = None  # slot of the open episode's first observation
        self._open_length = 0  # transitions added to the open episode

    # ------------------------------------------------------------------ state

    def __len__(self) -> int:
        """Number of sampleable transitions."""
        return self._num_valid

    @property
    def num_transitions(self) -> int:
        """Number of sampleable transitions (same as `len`)."""
        return self._num_valid

    @property
    def num_episodes(self) -> int:
        """Episodes committed since the buffer was created (including ones since overwritten)."""
        return self._num_episodes

    @property
    def episode_open(self) -> bool:
        """True between `start_episode` and the `add` that ends the episode."""
        return self._open_start is not None

    @property
    def nbytes(self) -> int:
        """Bytes held by the buffer's arrays (allocated up front for the full capacity)."""
        arrays = [*self._obs.values(), *self._tr.values(), *self._extras.values(), self._valid]
        return sum(a.nbytes for a in arrays)

    def bytes_per_transition(self, episode_length: float | None = None) -> float:
        """Bytes per slot; with `episode_length`, per transition including each episode's final slot."""
        return ours_bytes_per_transition(self.spec, self.action_dim, episode_length, self.extras_spec)

    def memory_report(self, episode_length: float | None = 200) -> MemoryReport:
        """Our bytes per transition against the naive `(obs, next_obs)` float32 layout."""
        return memory_report(self.spec, self.action_dim, episode_length, self.extras_spec)

    # ------------------------------------------------------------------ writing

    def start_episode(self, first_obs: Mapping[str, np.ndarray]) -> None:
        """Open an episode at its first observation (after probing: the first residual-step observation)."""
        if self._open_start is not None:
            raise RuntimeError(
                "start_episode: the previous episode is still open; end it with terminated/truncated "
                "or drop it with abort_episode()"
            )
        self.spec.validate(first_obs, "start_episode observation")
        self._open_start = self._cursor
        self._open_length = 0
        self._write_obs(first_obs)

    def add(
        self,
        action: np.ndarray,
        reward: float,
        next_obs: Mapping[str, np.ndarray],
        terminated: bool,
        truncated: bool,
        **extras: np.ndarray,
    ) -> None:
        """Append one step of the open episode; ends (and commits) it when `terminated` or `truncated`.

        `terminated` (a true terminal state, discount 0) and `truncated` (time limit, discount stays 1: the
        learner still bootstraps from the final observation) both end the episode.
        """
        if self._open_start is None:
            raise RuntimeError("add: no open episode; call start_episode(first_obs) first")
        action_f32 = self._checked_action(action)
        reward_f32 = self._checked_reward(reward)
        self.spec.validate(next_obs, "next_obs")
        if self.extras_spec is not None:
            self.extras_spec.validate(extras, "extras")
        elif extras:
            raise ValueError(f"extras: unexpected field(s) {sorted(extras)}; this buffer declares no extras")
        if self._open_length + 2 > self.capacity:
            raise ValueError(
                f"add: an episode of {self._open_length + 1} transitions needs {self._open_length + 2} "
                f"slots, more than the capacity {self.capacity}"
            )
        slot = (self._open_start + self._open_length) % self.capacity
        self._tr["action"][slot] = action_f32
        self._tr["reward"][slot] = reward_f32
        self._tr["terminated"][slot] = bool(terminated)
        for name, value in extras.items():
            self._extras[name][slot] = value
        self._write_obs(next_obs)
        self._open_length += 1
        if terminated or truncated:
            self._commit()

    def add_episode(
        self,
        observations: Sequence[Mapping[str, np.ndarray]],
        actions: Sequence[np.ndarray] | np.ndarray,
        rewards: Sequence[float] | np.ndarray,
        terminated: bool,
        **extras: Sequence[np.ndarray] | np.ndarray,
    ) -> None:
        """Add a whole finished episode (e.g. an offline base success): L + 1 observations, L actions/rewards.

        The last step is `terminated` or else truncated by the time limit.
        """
        length = len(actions)
        if length < 1 or len(observations) != length + 1 or len(rewards) != length:
            raise ValueError(
                f"add_episode: need L + 1 observations and L >= 1 actions and rewards, got "
                f"{len(observations)}, {length}, {len(rewards)}"
            )
        self.start_episode(observations[0])
        for t in range(length):
            last = t == length - 1
            step_extras = {name: np.asarray(values[t]) for name, values in extras.items()}
            self.add(
                actions[t],
                rewards[t],
                observations[t + 1],
                last and terminated,
                last and not terminated,
                **step_extras,
            )

    def abort_episode(self) -> int:
        """Drop the open episode (e.g. the robot was stopped mid-episode); returns the transitions dropped.

        Its transitions were never sampleable. Old transitions its slots overwrote stay invalid.
        """
        if self._open_start is None:
            return 0
        dropped = self._open_length
        self._cursor = self._open_start
        self._open_start = None
        self._open_length = 0
        return dropped

    def _checked_action(self, action: np.ndarray) -> np.ndarray:
        array = np.asarray(action)
        if array.dtype.kind not in "fiu":
            raise ValueError(f"action: expected a numeric array, got dtype {array.dtype}")
        if array.shape != (self.action_dim,):
            raise ValueError(f"action: shape {array.shape}, expected ({self.action_dim},)")
        array = array.astype(np.float32)
        if not np.all(np.isfinite(array)):
            raise ValueError("action: contains NaN or inf")
        return array

    @staticmethod
    def _checked_reward(reward: float) -> np.float32:
        if np.ndim(reward) != 0:
            raise ValueError(f"reward: expected a scalar, got shape {np.shape(reward)}")
        value = np.float32(reward)
        if not np.isfinite(value):
            raise ValueError(f"reward: not finite ({reward})")
        return value

    def _invalidate(self, slot: int) -> None:
        if self._valid[slot]:
            self._valid[slot] = False
            self._num_valid -= 1

    def _write_obs(self, obs: Mapping[str, np.ndarray]) -> None:
        slot = self._cursor
        # The old transition starting here is gone, and so is the one whose next observation was here. With
        # sequential writes the latter started in the slot written just before (already invalidated); the
        # check keeps the invariant local instead of resting on that.
        self._invalidate(slot)
        self._invalidate((slot - 1) % self.capacity)
        for name, array in self._obs.items():
            array[slot] = obs[name]
        self._cursor = (slot + 1) % self.capacity
        self._size = max(self._size, slot + 1)

    def _commit(self) -> None:
        assert self._open_start is not None
        slots = (self._open_start + np.arange(self._open_length)) % self.capacity
        rewards = self._tr["reward"][slots]
        self._tr["mc_return"][slots] = monte_carlo_returns(rewards, self.gamma, self.reward_bias)
        self._valid[slots] = True
        self._num_valid += self._open_length
        self._num_episodes += 1
        self._open_start = None
        self._open_length = 0

    # ------------------------------------------------------------------ sampling

    def sample(self, batch_size: int, rng: np.random.Generator) -> Batch:
        """Uniformly sample `batch_size` transitions (with replacement) of committed episodes.

        Returns `obs` and `next_obs` as dicts `{field: [B, *shape]}` in the declared dtypes (images stay
        uint8; normalising is the learner's job), `action` float32 [B, A], `reward` float32 [B] (raw: the
        learner adds `reward_bias`), `discount` float32 [B] (0.0 after a terminal, else 1.0: a mask, not
        multiplied by gamma; `_n_step_targets` says what both hold when n_step > 1), `mc_return` float32
        [B] (bias included), and each declared extra [B, *shape].
        `to_learner_batch` flattens this into the learner's layout.
        """
        return self._gather(self._sample_slots(batch_size, rng))

    def sample_many(self, n: int, batch_size: int, rng: np.random.Generator) -> Batch:
        """`n` independent batches stacked on a leading axis ([n, B, ...]), for a learner scanning updates."""
        if int(n) != n or n < 1:
            raise ValueError(f"n must be a positive integer, got {n}")
        slots = self._sample_slots(n * batch_size, rng).reshape(n, batch_size)
        return self._gather(slots)

    def _sample_slots(self, count: int, rng: np.random.Generator) -> np.ndarray:
        if int(count) != count or count < 1:
            raise ValueError(f"batch size must be a positive integer, got {count}")
        if self._num_valid == 0:
            raise ValueError("sample: the buffer holds no complete episode yet")
        if self._num_valid >= _REJECTION_MIN_ACCEPTANCE * self._size:
            slots = rng.integers(0, self._size, count)
            rejected = ~self._valid[slots]
            while rejected.any():
                slots[rejected] = rng.integers(0, self._size, int(rejected.sum()))
                rejected = ~self._valid[slots]
            return slots
        candidates = np.flatnonzero(self._valid[: self._size])
        return candidates[rng.integers(0, len(candidates), count)]

    def _gather(self, slots: np.ndarray) -> Batch:
        reward, discount, next_slots = self._n_step_targets(slots)
        batch: Batch = {
            "obs": {name: array[slots] for name, array in self._obs.items()},
            "next_obs": {name: array[next_slots] for name, array in self._obs.items()},
            "action": self._tr["action"][slots],
            "reward": reward,
            "discount": discount,
            "mc_return": self._tr["mc_return"][slots],
        }
        for name, array in self._extras.items():
            batch[name] = array[slots]
        return batch

    def _n_step_targets(self, slots: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(reward, discount, next slot) of transitions summing k = min(n_step, steps to episode end) steps.

        The learner's target is `reward + reward_bias + gamma * discount * V(next_obs)`, so for k steps:
        `reward = r_0 + sum_{j=1}^{k-1} gamma^j (r_j + reward_bias)` (the learner adds step 0's bias) and
        `discount = gamma^(k-1)` (0 if step k-1 terminated). With n_step 1 these are the raw reward and the
        terminal mask.
        """
        terminated = self._tr["terminated"]
        rewards = self._tr["reward"]
        reward = rewards[slots].astype(np.float64)
        steps = np.ones(slots.shape, np.int64)
        going_on = np.ones(slots.shape, bool)
        for j in range(1, self.n_step):
            slot_j = (slots + j) % self.capacity
            going_on &= self._valid[slot_j]
            reward += going_on * self.gamma**j * (rewards[slot_j] + self.reward_bias)
            steps += going_on
        last = (slots + steps - 1) % self.capacity
        discount = np.where(terminated[last], 0.0, self.gamma ** (steps - 1))
        return reward.astype(np.float32), discount.astype(np.float32), (slots + steps) % self.capacity

    # ------------------------------------------------------------------ persistence

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the buffer to `path` (an .npz file, written exactly there) atomically: tmp file, then rename.

        An open episode is not saved (its transitions were not sampleable yet); after `load` the next
        `start_episode` reuses its slots. Only the slots written so far are stored.
        """
        path = Path(path)
        size = self._size
        cursor = self._open_start if self._open_start is not None else self._cursor
        meta = {
            "format_version": FORMAT_VERSION,
            "spec": self.spec.to_dict(),
            "extras": self.extras_spec.to_dict() if self.extras_spec is not None else None,
            "capacity": self.capacity,
            "action_dim": self.action_dim,
            "gamma": self.gamma,
            "reward_bias": self.reward_bias,
            "n_step": self.n_step,
            "cursor": cursor,
            "size": size,
            "num_valid": self._num_valid,
            "num_episodes": self._num_episodes,
        }
        arrays = {"meta": np.array(json.dumps(meta)), "valid": self._valid[:size]}
        arrays.update({f"obs.{name}": a[:size] for name, a in self._obs.items()})
        arrays.update({f"tr.{name}": a[:size] for name, a in self._tr.items()})
        arrays.update({f"extra.{name}": a[:size] for name, a in self._extras.items()})
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        try:
            with open(tmp, "wb") as file:
                np.savez(file, **arrays)
                file.flush()
                os.fsync(file.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ReplayBuffer:
        """Restore a buffer written by `save`; sampling with the same rng then gives the same batches."""
        with np.load(Path(path), allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            if meta.get("format_version") != FORMAT_VERSION:
                raise ValueError(f"{path}: unsupported replay format version {meta.get('format_version')}")
            extras = ObsSpec.from_dict(meta["extras"]) if meta["extras"] is not None else None
            buffer = cls(
                ObsSpec.from_dict(meta["spec"]),
                meta["capacity"],
                action_dim=meta["action_dim"],
                gamma=meta["gamma"],
                reward_bias=meta["reward_bias"],
                extras=extras,
                n_step=meta.get("n_step", 1),  # buffers saved before n-step returns existed
            )
            size = int(meta["size"])
            for prefix, store in (("obs", buffer._obs), ("tr", buffer._tr), ("extra", buffer._extras)):
                for name, array in store.items():
                    array[:size] = data[f"{prefix}.{name}"]
            buffer._valid[:size] = data["valid"]
        buffer._size = size
        buffer._cursor = int(meta["cursor"])
        buffer._num_valid = int(buffer._valid.sum())
        buffer._num_episodes = int(meta["num_episodes"])
        if buffer._num_valid != meta["num_valid"]:
            raise ValueError(
                f"{path}: corrupt buffer ({buffer._num_valid} valid slots, meta says {meta['num_valid']})"
            )
        return buffer
