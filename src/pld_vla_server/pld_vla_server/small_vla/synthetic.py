"""Synthetic observations and episodes of the right shapes, for benchmarks and smoke tests.

Images and proprioception are random; actions are smooth, within the action limits, with a gripper
switch half way, so a model has something learnable (and memorisable) to fit.
"""

from __future__ import annotations

import numpy as np

from pld_vla_server.backends.base import VLABackend
from pld_vla_server.dataset import Episode
from pld_vla_server.small_vla.config import SmallVLAConfig
from pld_vla_server.types import VLAObservation


def synthetic_observation(
    backend: VLABackend, seed: int = 0, instruction: str = "pick up the cube"
) -> VLAObservation:
    spec = backend.input_spec
    rng = np.random.default_rng(seed)
    shape = (spec.image_size, spec.image_size, 3)
    images = {cam: rng.integers(0, 256, shape, dtype=np.uint8) for cam in spec.cameras}
    proprio = rng.normal(size=spec.proprio_dim).astype(np.float32)
    return VLAObservation(images=images, proprio=proprio, instruction=instruction)


def synthetic_episodes(
    config: SmallVLAConfig, count: int = 2, length: int = 16, seed: int = 0
) -> list[Episode]:
    """`count` episodes with distinct instructions ("synthetic task k")."""
    rng = np.random.default_rng(seed)
    high = config.action_high
    phase = np.linspace(0.0, 2.0 * np.pi, length)[:, None]
    episodes = []
    for k in range(count):
        shape = (length, config.image_size, config.image_size, 3)
        images = {cam: rng.integers(0, 256, shape, dtype=np.uint8) for cam in config.cameras}
        motion = 0.8 * np.sin(phase + k + np.arange(6)[None, :])
        gripper = np.where(phase > np.pi, 1.0, -1.0)
        actions = (np.concatenate([motion, gripper], axis=1) * high).astype(np.float32)
        proprio = rng.normal(size=(length, config.proprio_dim)).astype(np.float32)
        episodes.append(Episode(images, proprio, actions, f"synthetic task {k}", "synthetic", seed=seed + k))
    return episodes
