"""The backend interface every VLA plugs into, and the registry of backends by name.

A backend turns a `VLAObservation` into an `ActionChunk`. The small VLA trained here, the openpi
websocket client and transformers checkpoints are backends; nodes and the PLD pipeline only see this
interface. Each backend has one config dataclass (`config_type`) with `from_dict`/`to_dict`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from pld_sim.registry import Registry
from pld_vla_server.types import ActionChunk, InputSpec, VLAObservation

FINETUNE_MODES = ("full", "head", "lora")


class VLABackend(ABC):
    """Base of every backend. Subclasses set `name` and `config_type` and implement the abstract methods."""

    name: ClassVar[str]
    config_type: ClassVar[type]

    def __init__(self, config: Any) -> None:
        self.config = config

    @property
    @abstractmethod
    def input_spec(self) -> InputSpec:
        """What observations this backend accepts (checked by `validate_observation` before predicting)."""

    @property
    def model_id(self) -> str:
        return self.name

    @abstractmethod
    def predict(self, obs: VLAObservation) -> ActionChunk:
        """Actions `[H, 7]` for the observation (and features when the backend has them)."""

    def features(self, obs: VLAObservation) -> np.ndarray | None:
        """Compact feature vector for the residual policy and critic; None when the backend has none."""
        return self.predict(obs).features

    def save(self, path: Path) -> None:
        raise NotImplementedError(f"backend {self.name!r} has no weights to save")

    @classmethod
    def load(cls, path: Path) -> VLABackend:
        raise NotImplementedError(f"backend {cls.name!r} does not load checkpoints")

    def finetune(self, dataset: Any, mode: str, **options: Any) -> dict[str, Any]:
        """Supervised fine-tuning (PLD stage 3); returns a report (losses, steps, time)."""
        raise NotImplementedError(f"backend {self.name!r} cannot be fine-tuned here")

    def close(self) -> None:  # noqa: B027  (optional hook: most backends hold nothing to release)
        """Release connections or threads (remote backends)."""


# small_vla imports torch (seconds): it registers on first use, so `hold` and `openpi` start instantly.
BACKENDS: Registry[type[VLABackend]] = Registry(
    "VLA backend", lazy={"small_vla": "pld_vla_server.small_vla.backend"}
)


def register_backend(cls: type[VLABackend]) -> type[VLABackend]:
    return BACKENDS.add(cls.name, cls)


def make_backend(name: str, config: dict[str, Any] | None = None) -> VLABackend:
    """A backend by registry name, configured from a plain dict (ROS parameters, YAML)."""
    cls = BACKENDS.lookup(name)
    return cls(cls.config_type.from_dict(config or {}))
