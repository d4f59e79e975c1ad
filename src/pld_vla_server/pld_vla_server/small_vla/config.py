"""`SmallVLAConfig`: every size and switch of the small default VLA, validated in one place.

The defaults are sized for CPU: two 128 px cameras downsampled to 64 px inside the model, a ~1 M
parameter trunk and a chunk of 10 actions (0.5 s at 20 Hz).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

HEADS = ("flow", "ar")
AR_DECODINGS = ("greedy", "mean", "median")  # small_vla/heads.py TokenHead.generate
LANGUAGE_DIM = 384  # all-MiniLM-L6-v2


@dataclass(frozen=True)
class SmallVLAConfig:
    """Architecture, action limits and seeds of one small VLA (saved next to its weights)."""

    head: str = "flow"  # "flow" (flow matching over the chunk) or "ar" (discrete action tokens)
    horizon: int = 10  # actions per chunk
    cameras: tuple[str, ...] = ("side", "wrist")
    image_size: int = 128  # input images, square
    vision_size: int = 64  # images are box-downsampled to this inside the model
    # fixed square crops (camera, top, left, size) taken from the input image before downsampling: a crop
    # of the workspace keeps more of the objects' pixels at the same network cost (size must be a multiple
    # of vision_size). Cameras without a crop are downsampled whole.
    crops: tuple[tuple[str, int, int, int], ...] = ()
    proprio_dim: int = 15
    # which proprio entries the network sees (None: all). A policy that sees the TCP position can copy the
    # expert's motion as a function of where the hand is instead of where the object is (package README).
    proprio_indices: tuple[int, ...] | None = None
    vision_channels: tuple[int, ...] = (8, 16, 32, 64)  # one stride-2 conv per entry
    vision_dim: int = 128  # per camera
    proprio_hidden: int = 64
    language_proj: int = 64
    trunk_hidden: int = 256
    feature_dim: int = 128  # the compact feature vector given to the residual policy
    # flow-matching head
    flow_hidden: int = 256
    flow_layers: int = 3
    flow_steps: int = 10  # Euler steps at inference
    time_embed_dim: int = 32
    # where integration starts at inference: "zero" (the centre of the learned distribution) or "seeded"
    # (one fixed noise sample). A fixed sample sits at the same quantile for every observation: where the
    # policy is unsure (the peg's distance) it was always on the short side, 2-5 cm short of the peg
    # (package README, Tuning: peg_insertion 2 % seeded vs 24 % zero on the same checkpoint).
    flow_noise: str = "zero"
    # autoregressive token head
    ar_bins: int = 256
    ar_hidden: int = 128
    ar_embed: int = 64
    # training labels: a Gaussian over the bins with this standard deviation in bins (0: one-hot, as
    # OpenVLA). 2 bins made the default base worse (pick_cube 30 % -> 6 % with the auxiliary state loss on;
    # package README, Tuning), so it is off by default.
    ar_label_sigma: float = 0.0
    # "median" (the bin where the cumulative probability reaches 1/2), "greedy" (most likely bin) or "mean"
    # (expected bin centre). Greedy keeps the action limit while most mass sits there and overshoots; on the
    # default base median decoding gave pick_cube 74 % / peg_insertion 22 % against greedy's 32 % / 0 %.
    ar_decoding: str = "median"
    # action limits (pld_sim.control.ActionLimits): targets are divided by these to lie in [-1, 1]
    max_translation_m: float = 0.02
    max_rotation_rad: float = 0.1
    seed: int = 0  # weight init, and the fixed integration noise of the flow head at inference
    # torch threads during predict/features (restored after); one thread is fastest for one observation
    # on a shared CPU (2 threads under load: ~10x worse p99). 0 = leave torch's setting alone.
    inference_threads: int = 1

    def __post_init__(self) -> None:
        if self.head not in HEADS:
            raise ValueError(f"SmallVLAConfig.head: must be one of {HEADS}, got {self.head!r}")
        if not self.cameras or len(set(self.cameras)) != len(self.cameras):
            raise ValueError(f"SmallVLAConfig.cameras: need distinct camera names, got {self.cameras}")
        if self.vision_size < 16 or self.image_size % self.vision_size:
            raise ValueError(
                f"SmallVLAConfig.vision_size: must be >= 16 and divide image_size "
                f"({self.image_size}), got {self.vision_size}"
            )
        if self.vision_size >> len(self.vision_channels) < 1:
            raise ValueError("SmallVLAConfig.vision_channels: too many stride-2 layers for vision_size")
        positive = (
            "horizon", "vision_dim", "proprio_hidden", "language_proj", "trunk_hidden", "feature_dim",
            "flow_hidden", "flow_layers", "flow_steps", "time_embed_dim", "ar_hidden", "ar_embed",
        )  # fmt: skip
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"SmallVLAConfig.{name}: must be >= 1, got {getattr(self, name)}")
        for crop in self.crops:
            camera, top, left, size = crop
            if (
                camera not in self.cameras
                or size < self.vision_size
                or size % self.vision_size
                or min(top, left) < 0
                or max(top, left) + size > self.image_size
            ):
                raise ValueError(
                    f"SmallVLAConfig.crops: {crop} must name a camera and lie inside the "
                    f"{self.image_size} px image, with a size that is a multiple of {self.vision_size}"
                )
        if len({c[0] for c in self.crops}) != len(self.crops):
            raise ValueError("SmallVLAConfig.crops: at most one crop per camera")
        if self.proprio_indices is not None and (
            not self.proprio_indices or any(not 0 <= i < self.proprio_dim for i in self.proprio_indices)
        ):
            raise ValueError(
                f"SmallVLAConfig.proprio_indices: need indices in [0, {self.proprio_dim}), "
                f"got {self.proprio_indices}"
            )
        if self.flow_noise not in ("zero", "seeded") or self.ar_decoding not in AR_DECODINGS:
            raise ValueError(
                "SmallVLAConfig: flow_noise must be 'zero' or 'seeded' and ar_decoding one of "
                f"{AR_DECODINGS}, got {self.flow_noise!r} and {self.ar_decoding!r}"
            )
        if self.inference_threads < 0:
            raise ValueError("SmallVLAConfig.inference_threads: must be >= 0")
        if self.proprio_dim < 0 or any(c < 1 for c in self.vision_channels):
            raise ValueError("SmallVLAConfig: proprio_dim >= 0 and vision_channels >= 1 required")
        if not 0 <= self.ar_label_sigma <= self.ar_bins:
            raise ValueError(
                f"SmallVLAConfig.ar_label_sigma: must be in [0, ar_bins], got {self.ar_label_sigma}"
            )
        if not 2 <= self.ar_bins <= 4096:
            raise ValueError(f"SmallVLAConfig.ar_bins: must be in [2, 4096], got {self.ar_bins}")
        if self.time_embed_dim % 2:
            raise ValueError("SmallVLAConfig.time_embed_dim: must be even")
        if self.max_translation_m <= 0 or self.max_rotation_rad <= 0:
            raise ValueError("SmallVLAConfig: action limits must be positive")

    def camera_window(self, camera: str) -> tuple[int, int, int]:
        """(top, left, size) of the part of `camera`'s image the network sees."""
        for name, top, left, size in self.crops:
            if name == camera:
                return top, left, size
        return 0, 0, self.image_size

    @property
    def proprio_inputs(self) -> int:
        """How many proprio entries reach the network."""
        return self.proprio_dim if self.proprio_indices is None else len(self.proprio_indices)

    @property
    def action_high(self) -> np.ndarray:
        """Per-dimension action limit (the gripper command is already in [-1, 1])."""
        t, r = self.max_translation_m, self.max_rotation_rad
        return np.array([t, t, t, r, r, r, 1.0], dtype=np.float32)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> SmallVLAConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"SmallVLAConfig: unknown field(s) {unknown}; known: {sorted(known)}")
        values = dict(values)
        for name in ("cameras", "vision_channels", "proprio_indices"):
            if values.get(name) is not None:
                values[name] = tuple(values[name])
        if "crops" in values:
            values["crops"] = tuple((str(c), int(t), int(le), int(s)) for c, t, le, s in values["crops"])
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["cameras"] = list(self.cameras)
        values["vision_channels"] = list(self.vision_channels)
        values["crops"] = [list(crop) for crop in self.crops]
        if self.proprio_indices is not None:
            values["proprio_indices"] = list(self.proprio_indices)
        return values

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, sort_keys=True)
