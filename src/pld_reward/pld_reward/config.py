"""`ClassifierConfig`: one success classifier's inputs, network, augmentation and training, validated here.

A classifier covers one task, or the stages of a multi-stage task (`tasks` lists one task per stage, in
stage order: stage ids are 1..len(tasks) then, as in `pld_interfaces/Reward.stage`; a single task is
stage 0). Frames arrive at the camera's `image_size` and are average-pooled to `input_size` before the
encoder, the same way at collection, training and inference time.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

STAGE_MODES = ("input", "heads")


@dataclass(frozen=True)
class ClassifierConfig:
    """Hyper-parameters of one classifier; frozen and hashable so jit can treat it as static."""

    tasks: tuple[str, ...] = ("pick_cube",)
    cameras: tuple[str, ...] = ("side", "wrist")
    image_size: int = 128  # the camera frames' size (square), as the sim and the VLA use them
    input_size: int = 64  # what the encoder sees: image_size average-pooled by an integer factor
    use_proprio: bool = False  # images alone by default: proprio helped neither task (README, "Measured")
    proprio_dim: int = 15  # the first proprio_dim values of the observation's proprio
    # Per-value normalisation of the proprio ((x - mean) / scale): fitted on the training frames by `train`
    # when empty. Fixed numbers, not a LayerNorm across the vector: a 1 cm change of the TCP height or of
    # the gripper width is the signal, and must not drown in joint angles of a radian.
    proprio_mean: tuple[float, ...] = ()
    proprio_scale: tuple[float, ...] = ()
    stage_mode: str = "input"  # multi-stage: one-hot stage as an input, or one output head per stage
    encoder_widths: tuple[int, ...] = (8, 16, 32, 64)  # 2.9 ms per 2-camera frame here
    head_hidden: int = 256

    # training
    batch_size: int = 64
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    train_steps: int = 1500
    seed: int = 0
    # augmentation: random shift by up to `shift_px` (pad and crop, DrQ) and colour jitter
    shift_px: int = 4
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2

    # calibration
    target_precision: float = 0.99
    # mining also goes on while recall is below this (a threshold that calls nothing is precise and useless)
    target_recall: float = 0.95
    # Frames within this many control steps of a change of the label in their episode are ambiguous: the
    # predicate flips between two frames that look the same (a cube at 4.6 cm is a failure, at 5.1 cm a
    # success; a finger loses contact while the cube is still up). They stay out of training, of the
    # threshold choice and of the headline metrics, which are also reported with them ("strict").
    ambiguity_steps: int = 1

    def __post_init__(self) -> None:
        for name in ("tasks", "cameras"):  # tuple("side") would split a lone name into letters
            if isinstance(getattr(self, name), str):
                raise ValueError(f'{name} must be a list of names, e.g. ["side", "wrist"], not a string')
        object.__setattr__(self, "tasks", tuple(self.tasks))
        object.__setattr__(self, "cameras", tuple(self.cameras))
        object.__setattr__(self, "encoder_widths", tuple(int(w) for w in self.encoder_widths))
        object.__setattr__(self, "proprio_mean", tuple(float(v) for v in self.proprio_mean))
        object.__setattr__(self, "proprio_scale", tuple(float(v) for v in self.proprio_scale))
        if not self.tasks or not all(isinstance(t, str) and t for t in self.tasks):
            raise ValueError(f"tasks must be a non-empty list of task names, got {self.tasks!r}")
        if len(set(self.tasks)) != len(self.tasks):
            raise ValueError(f"tasks must not repeat, got {self.tasks!r}")
        if not self.cameras or len(set(self.cameras)) != len(self.cameras):
            raise ValueError(f"cameras must be a non-empty list of distinct names, got {self.cameras!r}")
        for name in ("image_size", "input_size", "head_hidden", "batch_size", "train_steps"):
            _check_int(name, getattr(self, name), 1)
        _check_int("proprio_dim", self.proprio_dim, 0)
        stats = (len(self.proprio_mean), len(self.proprio_scale))
        if stats not in ((0, 0), (self.proprio_dim, self.proprio_dim)):
            raise ValueError(
                f"proprio_mean and proprio_scale must both be empty or hold proprio_dim ({self.proprio_dim}) "
                f"values, got {stats[0]} and {stats[1]}"
            )
        if not all(math.isfinite(v) for v in self.proprio_mean) or not all(
            math.isfinite(v) and v > 0 for v in self.proprio_scale
        ):
            raise ValueError("proprio_mean must be finite and proprio_scale finite and positive")
        _check_int("shift_px", self.shift_px, 0)
        _check_int("ambiguity_steps", self.ambiguity_steps, 0)
        _check_int("seed", self.seed, 0)
        if self.image_size % self.input_size:
            raise ValueError(
                f"image_size ({self.image_size}) must be a multiple of input_size ({self.input_size})"
            )
        if self.input_size < 16:
            raise ValueError(f"input_size must be at least 16, got {self.input_size}")
        if len(self.encoder_widths) != 4 or min(self.encoder_widths) < 1:
            raise ValueError(f"encoder_widths must be 4 positive widths, got {self.encoder_widths!r}")
        if self.stage_mode not in STAGE_MODES:
            raise ValueError(f"stage_mode must be one of {list(STAGE_MODES)}, got {self.stage_mode!r}")
        for name in ("learning_rate", "weight_decay", "brightness", "contrast", "saturation"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(f"{name} must be a non-negative number, got {value!r}")
        if not 0.0 <= self.target_recall <= 1.0:
            raise ValueError(f"target_recall must be in [0, 1], got {self.target_recall!r}")
        if not 0.5 <= self.target_precision < 1.0:
            raise ValueError(f"target_precision must be in [0.5, 1), got {self.target_precision!r}")

    @property
    def num_stages(self) -> int:
        return len(self.tasks)

    @property
    def pool(self) -> int:
        """Average-pooling factor from the camera frames to the encoder's input."""
        return self.image_size // self.input_size

    def stage_index(self, stage: int) -> int:
        """`Reward.stage` (0 for one task, 1..n for n stages) -> the network's 0-based stage index."""
        if self.num_stages == 1:
            if stage != 0:
                raise ValueError(
                    f"this classifier judges one task ({self.tasks[0]}): stage must be 0, got {stage}"
                )
            return 0
        if not 1 <= stage <= self.num_stages:
            raise ValueError(f"stage must be in 1..{self.num_stages} ({', '.join(self.tasks)}), got {stage}")
        return stage - 1

    def stage_of_task(self, task: str) -> int:
        """The `Reward.stage` id of one of `tasks`."""
        if task not in self.tasks:
            raise ValueError(f"task {task!r} is not judged by this classifier (tasks: {list(self.tasks)})")
        return 0 if self.num_stages == 1 else self.tasks.index(task) + 1

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClassifierConfig:
        """From a plain dict (JSON, YAML, CLI overrides); unknown keys are an error."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown ClassifierConfig field(s) {unknown}; known: {sorted(known)}")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        for key in ("tasks", "cameras", "encoder_widths", "proprio_mean", "proprio_scale"):
            out[key] = list(out[key])
        return out

    def replace(self, **changes: Any) -> ClassifierConfig:
        return dataclasses.replace(self, **changes)


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
