"""Domain randomisation: controlled, seeded visual and geometric variations for evaluation.

Off by default. Each field is a half-range around the nominal value (0 = no variation); a seeded
`np.random.Generator` draws one `Variation` per reset, so the same seed gives the same scene.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np


@dataclass(frozen=True)
class DomainRandomization:
    """Variation ranges; `enabled=False` (the default) ignores them all."""

    enabled: bool = False
    light_direction: float = 0.3  # +- on the x and y components of the light direction
    light_intensity: float = 0.3  # +- fraction of the nominal diffuse intensity
    table_color: float = 0.15  # +- on each RGB channel
    object_color: float = 0.1  # +- on each RGB channel (hue stays recognisable: "blue" stays blue)
    object_size: float = 0.15  # +- fraction of the nominal object size
    camera_position: float = 0.02  # +- metres on each axis of the side camera
    camera_angle: float = 0.03  # +- radians of extra rotation of the side camera

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if name != "enabled" and not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")

    @classmethod
    def from_dict(cls, values: dict) -> DomainRandomization:
        unknown = set(values) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown domain-randomisation keys: {sorted(unknown)}")
        return cls(**values)

    def to_dict(self) -> dict:
        return asdict(self)

    def sample(self, rng: np.random.Generator) -> Variation:
        """One draw of every variation (all neutral when disabled)."""
        if not self.enabled:
            return Variation()

        def sym(half: float, size: int | None = None) -> np.ndarray | float:
            return rng.uniform(-half, half, size=size)

        return Variation(
            light_direction_offset=tuple(sym(self.light_direction, 2)),
            light_intensity_scale=1.0 + float(sym(self.light_intensity)),
            table_color_offset=tuple(sym(self.table_color, 3)),
            object_color_offset=tuple(sym(self.object_color, 3)),
            object_size_scale=1.0 + float(sym(self.object_size)),
            camera_position_offset=tuple(sym(self.camera_position, 3)),
            camera_rotation=tuple(sym(self.camera_angle, 3)),
        )


@dataclass(frozen=True)
class Variation:
    """One drawn set of variations; the defaults are the nominal scene."""

    light_direction_offset: tuple[float, float] = (0.0, 0.0)
    light_intensity_scale: float = 1.0
    table_color_offset: tuple[float, float, float] = (0.0, 0.0, 0.0)
    object_color_offset: tuple[float, float, float] = (0.0, 0.0, 0.0)
    object_size_scale: float = 1.0
    camera_position_offset: tuple[float, float, float] = (0.0, 0.0, 0.0)
    camera_rotation: tuple[float, float, float] = field(default=(0.0, 0.0, 0.0))

    def color(self, rgba: tuple[float, ...], offset: tuple[float, float, float]) -> list[float]:
        rgb = np.clip(np.asarray(rgba[:3]) + np.asarray(offset), 0.0, 1.0)
        return [*rgb.tolist(), rgba[3] if len(rgba) > 3 else 1.0]
