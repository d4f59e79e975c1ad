"""The one validated configuration of the residual SAC agent, with the PLD paper's defaults.

Defaults follow design.md §1 (PLD Table 5): batch 256, gamma 0.99, grad-clip 1.0, AdamW, reward bias 0,
critic:actor ratio 2, OTF ratio 1, initial temperature 1.0, xi = 0.5 reached by a schedule from a small
value, 2 LayerNorm Q functions, tau 0.005, 3x256 tanh MLPs and a Cal-QL critic warm start.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

WARMSTARTS = ("none", "calql", "cql", "iql")
ACTIVATIONS = ("tanh", "relu", "gelu", "silu")
CRITIC_ACTIONS = ("combined", "residual")


@dataclass(frozen=True)
class ResidualSACConfig:
    """Hyper-parameters of one residual SAC learner; frozen and hashable so jit can treat it as static."""

    action_dim: int = 7
    # combined actions live in this box (the env's normalised action space)
    action_low: float = -1.0
    action_high: float = 1.0

    # networks: `*_layers` hidden layers of `hidden` units, each Dense -> LayerNorm -> activation
    hidden: int = 256
    actor_layers: int = 3
    critic_layers: int = 3
    activation: str = "tanh"
    num_qs: int = 2
    # Q heads whose min forms the TD target, a fresh random subset per gradient step (None: all of them,
    # clipped double-Q at num_qs 2). REDQ/RLPD: num_qs 10, target_qs 2, a less noisy critic per update
    target_qs: int | None = None
    log_std_min: float = -20.0
    log_std_max: float = 2.0

    # optimisation
    gamma: float = 0.99
    # rewards summed per TD target before bootstrapping (1: the paper's one-step backup). The replay buffer
    # builds the n-step targets (replay/buffer.py); sparse success rewards arrive 40-80 steps after the
    # approach that decides them, and n steps carry them back n times faster per update
    n_step: int = 1
    tau: float = 0.005
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    temp_lr: float = 3e-4
    weight_decay: float = 1e-4  # AdamW, on kernels only (not LayerNorm, biases or log-alpha)
    grad_clip: float = 1.0  # global-norm clip per network
    init_temperature: float = 1.0
    # None: -action_dim / 2 (RLPD's choice). The residual reaches the robot scaled by xi <= 0.5, so the
    # classic -action_dim would squeeze exploration twice; half of it keeps useful noise on sparse rewards.
    target_entropy: float | None = None
    # No entropy bonus in the critic's TD target. Episodes end on success (discount 0), so with the bonus
    # every non-terminal step pays alpha * H and "never succeed" is worth alpha * H / (1 - gamma) (5.4 at
    # alpha 0.017, H 3.1; 15 at alpha 0.05), far above the success reward 1: the critic then rates states
    # about to succeed lowest and the actor learns to avoid success. SERL also
    # backs up without entropy on sparse manipulation rewards. The actor keeps its entropy term.
    backup_entropy: bool = False
    # the critic reads the base action next to the observation: Q(s, a_base, a). Without it the critic
    # cannot tell a residual's effect from the base's own choice: most data actions are the base's
    critic_sees_base: bool = False
    # how the critic reads the executed action a = clip(a_base + xi * a_delta). "combined" (the paper): a
    # itself. "residual": (a - a_base) / xi next to the base action, the same information rescaled. At xi
    # 0.1 the residual moves a by ~0.04 while a_base moves by ~1 between states: read as a, the residual's
    # effect is lost in the first layer and the actor follows the critic's random slopes.
    critic_action: str = "combined"
    # weight of mean(tanh(mean)^2) in the actor loss (0 = plain SAC); see losses.residual_penalty
    residual_penalty: float = 0.0
    # weight of self-imitation in the actor loss (0 = off; losses.self_imitation): copy the residuals of
    # transitions whose Monte-Carlo return beat Q. Needs `mc_return` in the batch (the replay buffer has it)
    self_imitation: float = 0.0
    # Polyak decay of an averaged actor used for evaluation and deployment (None = the actor itself): an
    # average over the last ~1/(1 - decay) actor updates, against update noise in the deployed policy. On
    # pick_cube 0.995 did not damp the evaluation swings (README, "Tuning history")
    actor_ema: float | None = None
    # action dimensions the residual may change (None: all, as the paper). pld_sim's order is x, y, z,
    # roll, pitch, yaw, gripper: (0, 1) corrects the hand's position over the table only. Every other
    # dimension executes the base action unchanged and does not count in the policy's entropy
    residual_axes: tuple[int, ...] | None = None

    # update schedule
    critic_actor_ratio: int = 2  # critic every gradient step, actor + temperature every 2nd
    utd_ratio: int = 1  # gradient steps per environment step (read by the learning loop)
    updates_per_call: int = 1  # gradient steps per `update` call (lax.scan, one dispatch)
    batch_size: int = 256
    reward_bias: float = 0.0

    # on-the-fly (OTF) backup: max over K residual samples at s' with the base action fixed; 1 = plain SAC
    otf_samples: int = 1

    # residual scale xi, linear from xi_initial to xi_final over xi_warmup_steps gradient steps
    xi_initial: float = 0.1
    xi_final: float = 0.5
    xi_warmup_steps: int = 10_000

    # critic warm start on offline base successes
    warmstart: str = "calql"
    cql_alpha: float = 5.0
    cql_num_samples: int = 10
    cql_importance_sample: bool = True
    iql_expectile: float = 0.7

    def __post_init__(self) -> None:
        if self.residual_axes is not None:  # YAML and JSON give lists; jit needs a hashable config
            object.__setattr__(self, "residual_axes", _axes(self.residual_axes, self.action_dim))
        positive_ints = (
            "action_dim",
            "hidden",
            "actor_layers",
            "critic_layers",
            "num_qs",
            "critic_actor_ratio",
            "utd_ratio",
            "updates_per_call",
            "batch_size",
            "otf_samples",
            "cql_num_samples",
            "n_step",
        )
        for name in positive_ints:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if isinstance(self.xi_warmup_steps, bool) or not isinstance(self.xi_warmup_steps, int):
            raise ValueError(f"xi_warmup_steps must be an integer, got {self.xi_warmup_steps!r}")
        if self.xi_warmup_steps < 0:
            raise ValueError(f"xi_warmup_steps must be >= 0, got {self.xi_warmup_steps}")
        for name in ("actor_lr", "critic_lr", "temp_lr", "grad_clip", "init_temperature"):
            value = getattr(self, name)
            if not _is_real(value) or not value > 0:
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        for name in ("weight_decay", "cql_alpha", "residual_penalty", "self_imitation"):
            value = getattr(self, name)
            if not _is_real(value) or value < 0:
                raise ValueError(f"{name} must be a non-negative number, got {value!r}")
        for name in ("reward_bias", "action_low", "action_high", "log_std_min", "log_std_max"):
            if not _is_real(getattr(self, name)):
                raise ValueError(f"{name} must be a finite number, got {getattr(self, name)!r}")
        if not self.action_low < self.action_high:
            raise ValueError(
                f"action_low must be below action_high, got {self.action_low} >= {self.action_high}"
            )
        if not self.log_std_min < self.log_std_max:
            raise ValueError(f"log_std_min must be below log_std_max, got {self.log_std_min}")
        if not _is_real(self.gamma) or not 0 <= self.gamma < 1:
            raise ValueError(f"gamma must be in [0, 1), got {self.gamma!r}")
        if not _is_real(self.tau) or not 0 < self.tau <= 1:
            raise ValueError(f"tau must be in (0, 1], got {self.tau!r}")
        for name in ("xi_initial", "xi_final"):
            value = getattr(self, name)
            if not _is_real(value) or not 0 <= value <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {value!r}")
        if not _is_real(self.iql_expectile) or not 0 < self.iql_expectile < 1:
            raise ValueError(f"iql_expectile must be in (0, 1), got {self.iql_expectile!r}")
        if self.actor_ema is not None and (not _is_real(self.actor_ema) or not 0 <= self.actor_ema < 1):
            raise ValueError(f"actor_ema must be None or in [0, 1), got {self.actor_ema!r}")
        if self.target_qs is not None and (
            isinstance(self.target_qs, bool)
            or not isinstance(self.target_qs, int)
            or not 1 <= self.target_qs <= self.num_qs
        ):
            raise ValueError(
                f"target_qs must be None or in 1..num_qs ({self.num_qs}), got {self.target_qs!r}"
            )
        if self.target_entropy is not None and not _is_real(self.target_entropy):
            raise ValueError(f"target_entropy must be a number or None, got {self.target_entropy!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {list(ACTIVATIONS)}, got {self.activation!r}")
        if self.critic_action not in CRITIC_ACTIONS:
            raise ValueError(
                f"critic_action must be one of {list(CRITIC_ACTIONS)}, got {self.critic_action!r}"
            )
        if self.warmstart not in WARMSTARTS:
            raise ValueError(f"warmstart must be one of {list(WARMSTARTS)}, got {self.warmstart!r}")
        for name in ("backup_entropy", "cql_importance_sample", "critic_sees_base"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be a bool, got {getattr(self, name)!r}")

    @property
    def residual_dims(self) -> int:
        """How many action dimensions the residual changes."""
        return self.action_dim if self.residual_axes is None else len(self.residual_axes)

    @property
    def resolved_target_entropy(self) -> float:
        """The target entropy actually used (None in the config means -residual_dims / 2)."""
        return -self.residual_dims / 2 if self.target_entropy is None else float(self.target_entropy)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ResidualSACConfig:
        """Build from a plain dict (JSON, YAML, ROS parameters); unknown keys are an error, not ignored."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown ResidualSACConfig field(s) {unknown}; known: {sorted(known)}")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict; `from_dict(to_dict())` gives an equal config."""
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> ResidualSACConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)


def check_obs_dim(obs_dim: Any) -> int:
    """The observation width as an int; ValueError naming `obs_dim` otherwise."""
    if isinstance(obs_dim, bool) or not hasattr(obs_dim, "__index__") or obs_dim.__index__() < 1:
        raise ValueError(f"obs_dim must be a positive integer, got {obs_dim!r}")
    return obs_dim.__index__()


def _axes(axes: Any, action_dim: Any) -> tuple[int, ...]:
    """`residual_axes` as a sorted tuple of distinct indices below `action_dim`; ValueError otherwise."""
    try:
        items = list(axes)
    except TypeError:
        raise ValueError(f"residual_axes must be a list of action indices, got {axes!r}") from None
    if not items or any(isinstance(i, bool) or not isinstance(i, int) for i in items):
        raise ValueError(f"residual_axes must be a non-empty list of integers, got {axes!r}")
    if len(set(items)) != len(items) or not all(0 <= i < int(action_dim) for i in items):
        raise ValueError(f"residual_axes must be distinct indices in [0, {action_dim}), got {axes!r}")
    return tuple(sorted(items))


def _is_real(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
