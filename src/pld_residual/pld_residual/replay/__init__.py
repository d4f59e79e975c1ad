"""Replay for the residual RL learner: an observation-once ring buffer, 50/50 hybrid sampling, and PLD's
probing schedule with the recorder that routes each step to the SFT trajectory and/or the replay buffer.

Numpy only; batches are nested dicts of numpy arrays (observations by field), and `to_learner_batch`
flattens them into the JAX learner's flat-vector layout.
"""

from pld_residual.replay.buffer import Batch, ReplayBuffer
from pld_residual.replay.hybrid import HybridSampler, offline_count
from pld_residual.replay.layout import MemoryReport, bytes_per_slot, memory_report, naive_bytes_per_transition
from pld_residual.replay.learner_batch import LEARNER_KEYS, to_learner_batch
from pld_residual.replay.probing import (
    BASE,
    RESIDUAL,
    EpisodePlan,
    ProbingConfig,
    max_base_steps,
    sample_base_steps,
)
from pld_residual.replay.recorder import EpisodeRecorder, Trajectory, TrajectoryStep
from pld_residual.replay.returns import monte_carlo_returns
from pld_residual.replay.spec import FieldSpec, ObsSpec, pld_obs_spec

__all__ = [
    "BASE",
    "LEARNER_KEYS",
    "RESIDUAL",
    "Batch",
    "EpisodePlan",
    "EpisodeRecorder",
    "FieldSpec",
    "HybridSampler",
    "MemoryReport",
    "ObsSpec",
    "ProbingConfig",
    "ReplayBuffer",
    "Trajectory",
    "TrajectoryStep",
    "bytes_per_slot",
    "max_base_steps",
    "memory_report",
    "monte_carlo_returns",
    "naive_bytes_per_transition",
    "offline_count",
    "pld_obs_spec",
    "sample_base_steps",
    "to_learner_batch",
]
