"""`hold`: a backend that always answers "stay still" (zero deltas, gripper unchanged at open).

For bringing up a node graph without a model, and as the safe fallback a server can report while a
real backend loads.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np

from pld_vla_server.backends.base import VLABackend, register_backend
from pld_vla_server.types import ActionChunk, InputSpec, VLAObservation, validate_observation


@dataclass(frozen=True)
class HoldConfig:
    horizon: int = 10
    image_size: int = 128
    proprio_dim: int = 15
    gripper: float = -1.0

    def __post_init__(self) -> None:
        if self.horizon < 1:
            raise ValueError("horizon must be at least 1")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> HoldConfig:
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@register_backend
class HoldBackend(VLABackend):
    name: ClassVar[str] = "hold"
    config_type: ClassVar[type] = HoldConfig

    @property
    def input_spec(self) -> InputSpec:
        return InputSpec(image_size=self.config.image_size, proprio_dim=self.config.proprio_dim)

    def predict(self, obs: VLAObservation) -> ActionChunk:
        start = time.perf_counter()
        validate_observation(obs, self.input_spec)
        actions = np.zeros((self.config.horizon, 7), dtype=np.float32)
        actions[:, 6] = self.config.gripper
        return ActionChunk(actions, None, (time.perf_counter() - start) * 1e3, self.model_id)
