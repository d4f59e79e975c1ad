"""What goes into and comes out of a VLA backend, with validation that names the offending field.

Backends consume `VLAObservation` (camera images, proprioception, instruction) and return an
`ActionChunk` (actions `[H, 7]` in the control interface of `pld_sim.control`, an optional compact
feature vector for the residual policy and critic, timing). `InputSpec` is what a backend expects;
`validate_observation` checks an observation against it before any model runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

ACTION_DIM = 7


@dataclass(frozen=True)
class InputSpec:
    """Cameras (names, square image size), proprioception size the backend was built for."""

    cameras: tuple[str, ...] = ("side", "wrist")
    image_size: int = 128
    proprio_dim: int = 15

    def __post_init__(self) -> None:
        if not self.cameras or self.image_size < 8 or self.proprio_dim < 0:
            raise ValueError(f"invalid input spec {self}")


@dataclass
class VLAObservation:
    """One observation for the VLA: uint8 HxWx3 images by camera name, proprio vector, instruction."""

    images: dict[str, np.ndarray]
    proprio: np.ndarray
    instruction: str


@dataclass
class ActionChunk:
    """A chunk of future actions: row k applies k control periods after the observation."""

    actions: np.ndarray  # [H, 7] float32
    features: np.ndarray | None = None  # [F] float32, for the residual policy / critic
    inference_ms: float = 0.0
    model_id: str = ""
    extras: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.actions = np.asarray(self.actions, dtype=np.float32)
        if self.actions.ndim != 2 or self.actions.shape[1] != ACTION_DIM:
            raise ValueError(f"ActionChunk.actions must be [H, {ACTION_DIM}], got {self.actions.shape}")
        if not np.all(np.isfinite(self.actions)):
            raise ValueError("ActionChunk.actions contains NaN or inf")
        if self.features is not None:
            self.features = np.asarray(self.features, dtype=np.float32).reshape(-1)

    @property
    def horizon(self) -> int:
        return int(self.actions.shape[0])


def validate_observation(obs: VLAObservation, spec: InputSpec) -> None:
    """Raise a ValueError naming the field when `obs` does not fit `spec`."""
    if not isinstance(obs.instruction, str) or not obs.instruction.strip():
        raise ValueError("observation.instruction: must be a non-empty string")
    missing = [name for name in spec.cameras if name not in obs.images]
    if missing:
        raise ValueError(f"observation.images: missing camera(s) {missing} (got {sorted(obs.images)})")
    expected = (spec.image_size, spec.image_size, 3)
    for name in spec.cameras:
        image = obs.images[name]
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.shape != expected:
            got = (getattr(image, "dtype", type(image).__name__), getattr(image, "shape", None))
            raise ValueError(
                f"observation.images[{name!r}]: expected uint8 {expected}, got {got[0]} {got[1]}"
            )
    proprio = np.asarray(obs.proprio)
    if proprio.shape != (spec.proprio_dim,):
        raise ValueError(f"observation.proprio: expected shape ({spec.proprio_dim},), got {proprio.shape}")
    if not np.all(np.isfinite(proprio)):
        raise ValueError("observation.proprio: contains NaN or inf")
