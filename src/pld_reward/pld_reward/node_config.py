"""The validated configurations of the reward node and the label node (ROS-free).

`RewardNodeConfig`: each field is one ROS parameter of `pld_reward.ros.reward_node` (all read-only except
`stage`, which the GPU-insertion stage machine changes at run time). `LabelNodeConfig`: the parameters of
`pld_reward.ros.label_node`. YAML presets and in-process runs use `from_dict` / `to_dict`. Invalid values
fail at construction with a message naming the field.

`threshold` is a plain float so that it maps onto a ROS double parameter: any negative value (canonically
-1.0, `CALIBRATED`) means "the checkpoint's calibrated threshold of the current stage"; `None` is accepted
as input and means the same. A value >= 0 overrides the calibrated threshold for every stage (> 1 never
fires, 0 always does).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from pld_reward.config import ClassifierConfig

CALIBRATED = -1.0


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass(frozen=True)
class RewardNodeConfig:
    """Options of the reward node; see `pld_reward/README.md`, "Reward node"."""

    checkpoint: str = field(
        metadata=_help("classifier directory (classifier.json + params.msgpack) from `pld reward train`")
    )
    threshold: float = field(
        default=CALIBRATED,
        metadata=_help(
            "success threshold on the probability; negative (-1.0) = the calibrated one per stage"
        ),
    )
    stage: int = field(
        default=0,
        metadata=_help("stage judged: 0 for a one-task classifier, 1..n for a multi-stage one (settable)"),
    )
    debounce_k: int = field(default=1, metadata=_help("success once k of the last n frames succeed"))
    debounce_n: int = field(default=1, metadata=_help("window of the k-of-n debouncing (frames)"))

    def __post_init__(self) -> None:
        if not isinstance(self.checkpoint, str) or not self.checkpoint.strip():
            raise ValueError(
                f"RewardNodeConfig.checkpoint: required, a classifier directory from `pld reward train` "
                f"(e.g. runs/reward/pick_cube/classifier), got {self.checkpoint!r}"
            )
        threshold = CALIBRATED if self.threshold is None else self.threshold
        if (
            isinstance(threshold, bool)
            or not isinstance(threshold, int | float)
            or not math.isfinite(threshold)
        ):
            raise ValueError(f"RewardNodeConfig.threshold: must be a finite number, got {self.threshold!r}")
        object.__setattr__(self, "threshold", CALIBRATED if threshold < 0 else float(threshold))
        for name in ("stage", "debounce_k", "debounce_n"):
            value = getattr(self, name)
            minimum = 0 if name == "stage" else 1
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ValueError(f"RewardNodeConfig.{name}: must be an integer >= {minimum}, got {value!r}")
        if self.stage > 255:
            raise ValueError(f"RewardNodeConfig.stage: must fit Reward.stage (uint8), got {self.stage}")
        if self.debounce_k > self.debounce_n:
            raise ValueError(
                f"RewardNodeConfig.debounce_k: {self.debounce_k} of the last {self.debounce_n} frames can "
                f"never succeed (need debounce_k <= debounce_n)"
            )

    @property
    def fixed_threshold(self) -> float | None:
        """The threshold to pass to `SuccessClassifier.judge` (None = the calibrated one of the stage)."""
        return None if self.threshold < 0 else self.threshold

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> RewardNodeConfig:
        """From YAML / ROS parameter values; unknown keys are an error."""
        values = dict(values)
        unknown = sorted(set(values) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"RewardNodeConfig: unknown option(s) {unknown}")
        if "checkpoint" not in values:
            raise ValueError("RewardNodeConfig.checkpoint: required (a classifier directory)")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class LabelNodeConfig:
    """Options of the label node; the camera fields must match the classifier that will be trained."""

    task: str = field(default="pick_cube", metadata=_help("task being labelled (names the shards)"))
    out_dir: str = field(
        default="", metadata=_help("frame-set directory for the shards; '' = runs/reward/<task>/frames/human")
    )
    stage: int = field(default=0, metadata=_help("Reward.stage of the frames: 0 one task, 1..n a stage"))
    cameras: list[str] = field(
        default_factory=lambda: ["side", "wrist"], metadata=_help("cameras stored, in the classifier's order")
    )
    image_size: int = field(default=128, metadata=_help("camera frame size (square, rgb8)"))
    input_size: int = field(default=64, metadata=_help("stored size: image_size average-pooled to this"))
    source: str = field(default="label_tool", metadata=_help("what drove the robot (shard meta and name)"))
    keyboard: bool = field(default=False, metadata=_help("also read keys from the terminal (stdin a TTY)"))
    max_frames: int = field(default=20_000, metadata=_help("frames kept per episode at most"))

    def __post_init__(self) -> None:
        object.__setattr__(self, "cameras", [str(c) for c in self.cameras])
        for name in ("task", "source"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip() or "/" in value:
                raise ValueError(
                    f"LabelNodeConfig.{name}: must be a non-empty name without '/', got {value!r}"
                )
        if not isinstance(self.out_dir, str):
            raise ValueError(f"LabelNodeConfig.out_dir: must be a string, got {self.out_dir!r}")
        if not isinstance(self.keyboard, bool):
            raise ValueError(f"LabelNodeConfig.keyboard: must be true or false, got {self.keyboard!r}")
        for name, minimum in (("stage", 0), ("image_size", 1), ("input_size", 1), ("max_frames", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ValueError(f"LabelNodeConfig.{name}: must be an integer >= {minimum}, got {value!r}")
        try:
            self.classifier_config()
        except ValueError as exc:
            raise ValueError(f"LabelNodeConfig: {exc}") from None

    def classifier_config(self) -> ClassifierConfig:
        """The frame format (cameras, sizes) of the shards, as a classifier config of this one task."""
        return ClassifierConfig(
            tasks=(self.task,),
            cameras=tuple(self.cameras),
            image_size=self.image_size,
            input_size=self.input_size,
        )

    @property
    def frames_dir(self) -> Path:
        return (
            Path(self.out_dir) if self.out_dir else Path("runs") / "reward" / self.task / "frames" / "human"
        )

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> LabelNodeConfig:
        values = dict(values)
        unknown = sorted(set(values) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"LabelNodeConfig: unknown option(s) {unknown}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
