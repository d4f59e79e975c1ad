"""Labelling success live on a robot (ROS-free core of `label_node` and of the terminal helper).

A person watches the robot and says when the task has succeeded (and when it no longer has): every frame
that arrives is stored, at the classifier's input size (`frame_input`), with the label that is current
when it arrives. An episode starts with the label "failure"; `mark(True)` makes the following frames
successes, `mark(False)` failures again. `end_episode()` writes the frames as one shard (frames.py,
labeller "human", source "label_tool" by default) that `pld reward train` reads like simulated ones;
`discard_episode()` drops them. The next frame starts the next episode.

Shards are never rewritten: `end_episode()` numbers the shard after the ones already in `out_dir` (or
takes the given id and refuses one that exists), so labelling sessions can add to the same frame set.

`keyboard_loop` maps keys read from a text stream (a terminal, or io.StringIO in tests) to these calls:
`s` success, `f` failure, `e` end episode (save), `d` discard, `q` quit, `h` help. Thread-safe: the keyboard
thread and the node's callbacks share one labeller.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from pld_reward.config import ClassifierConfig
from pld_reward.frames import SHARD_SUFFIX, EpisodeFrames, shard_path, write_episode
from pld_reward.preprocess import frame_input

LABELLER = "human"
KEYS = {
    "s": "success from now on",
    "f": "failure from now on",
    "e": "end the episode and save it",
    "d": "discard the episode",
    "q": "quit (the episode in progress is discarded)",
    "h": "this help",
}


class LiveLabeller:
    """Frames of the episode in progress with the current human label; see the module docstring."""

    def __init__(
        self,
        cfg: ClassifierConfig,
        out_dir: str | os.PathLike[str],
        task: str,
        source: str = "label_tool",
        stage: int | None = None,
        max_frames: int = 20_000,
    ) -> None:
        for name, value in (("task", task), ("source", source)):
            if not isinstance(value, str) or not value or "/" in value:
                raise ValueError(f"{name} must be a non-empty name (it names the shards), got {value!r}")
        if stage is None:
            stage = cfg.stage_of_task(task)
        if isinstance(stage, bool) or not isinstance(stage, int) or stage < 0:
            raise ValueError(f"stage must be an integer >= 0, got {stage!r}")
        if isinstance(max_frames, bool) or not isinstance(max_frames, int) or max_frames < 1:
            raise ValueError(f"max_frames must be a positive integer, got {max_frames!r}")
        self.cfg, self.out_dir, self.task, self.source, self.stage = cfg, Path(out_dir), task, source, stage
        self.max_frames = max_frames
        self._lock = threading.Lock()
        self.label = False
        self.dropped = 0  # frames beyond max_frames in this episode (a forgotten `e`)
        self.saved: list[Path] = []
        self.discarded = 0
        self._images: list[np.ndarray] = []
        self._proprio: list[np.ndarray] = []
        self._labels: list[int] = []
        self._steps: list[int] = []

    # ------------------------------------------------------------------ episode

    @property
    def frames(self) -> int:
        """Frames stored in the episode in progress."""
        return len(self._labels)

    @property
    def positives(self) -> int:
        return sum(self._labels)

    def add_frame(self, images: Mapping[str, Any], proprio: Any = None, step: int | None = None) -> bool:
        """Store one frame with the current label (FrameError for a frame the classifier cannot take).

        Returns False when the episode already holds `max_frames` frames (the frame is dropped, counted).
        """
        frame = frame_input(images, self.cfg)  # checks cameras and sizes before anything is stored
        values = np.zeros(0, np.float32) if proprio is None else np.asarray(proprio, np.float32).reshape(-1)
        with self._lock:
            if self._proprio and values.shape != self._proprio[0].shape:
                raise ValueError(
                    f"proprio has {values.size} values; this episode's frames have {self._proprio[0].size}"
                )
            if len(self._labels) >= self.max_frames:
                self.dropped += 1
                return False
            self._images.append(frame)
            self._proprio.append(values)
            self._labels.append(int(self.label))
            self._steps.append(len(self._steps) if step is None else int(step))
            return True

    def mark(self, success: bool) -> None:
        """The label of the frames that arrive from now on."""
        with self._lock:
            self.label = bool(success)

    def end_episode(self, episode_id: int | None = None, **extra_meta: Any) -> Path:
        """Write the episode as one shard and start afresh; returns the shard's path.

        `episode_id` (the shard's `seed`): default the next number free in `out_dir`. ValueError for an
        empty episode; FileExistsError for an id whose shard exists (shards are never rewritten).
        """
        with self._lock:
            if not self._labels:
                raise ValueError("no frames in this episode: nothing to save")
            if episode_id is None:
                episode_id = self._next_id()
            elif isinstance(episode_id, bool) or not isinstance(episode_id, int) or episode_id < 0:
                raise ValueError(f"episode id must be an integer >= 0, got {episode_id!r}")
            labels = np.asarray(self._labels, np.uint8)
            meta = {
                **extra_meta,
                "task": self.task,
                "stage": self.stage,
                "seed": episode_id,
                "source": self.source,
                "labeller": LABELLER,
                "cameras": list(self.cfg.cameras),
                "input_size": self.cfg.input_size,
                "episode_success": bool(labels[-1]),  # the human's verdict when the episode ended
                "length": len(labels),
                "dropped_frames": self.dropped,
            }
            episode = EpisodeFrames(
                images=np.stack(self._images),
                proprio=np.stack(self._proprio),
                labels=labels,
                steps=np.asarray(self._steps, np.int32),
                meta=meta,
            )
            path = shard_path(self.out_dir, episode.name)
            if path.exists():
                raise FileExistsError(f"shard {path} exists; shards are never rewritten (choose another id)")
            path = write_episode(self.out_dir, episode)
            self.saved.append(path)
            self._clear()
            return path

    def discard_episode(self) -> int:
        """Drop the episode in progress; returns how many frames were dropped."""
        with self._lock:
            count = len(self._labels)
            self.discarded += 1
            self._clear()
            return count

    def _clear(self) -> None:
        self._images, self._proprio, self._labels, self._steps = [], [], [], []
        self.label = False
        self.dropped = 0

    def _next_id(self) -> int:
        pattern = re.compile(
            rf"^{re.escape(self.source)}-{re.escape(self.task)}-(\d+){re.escape(SHARD_SUFFIX)}$"
        )
        ids = [int(m.group(1)) for p in self.out_dir.glob(f"*{SHARD_SUFFIX}") if (m := pattern.match(p.name))]
        return max(ids, default=-1) + 1

    def summary(self) -> str:
        state = "SUCCESS" if self.label else "failure"
        frames = f"{self.frames} frame(s) ({self.positives} success)"
        return f"label {state}, {frames}, {len(self.saved)} episode(s) saved"


# ---------------------------------------------------------------------- keyboard


def help_text() -> str:
    return "keys (then Enter): " + ", ".join(f"{key} = {text}" for key, text in KEYS.items())


def handle_key(labeller: LiveLabeller, key: str) -> tuple[bool, str]:
    """Apply one key; returns (keep going, what happened)."""
    key = key.lower()
    try:
        if key == "s":
            labeller.mark(True)
            return True, "success from now on"
        if key == "f":
            labeller.mark(False)
            return True, "failure from now on"
        if key == "e":
            frames, positives = labeller.frames, labeller.positives
            path = labeller.end_episode()
            return True, f"saved {frames} frame(s) ({positives} success) to {path}"
        if key == "d":
            return True, f"discarded {labeller.discard_episode()} frame(s)"
        if key == "q":
            frames = labeller.discard_episode() if labeller.frames else 0
            return False, f"quit ({frames} unsaved frame(s) discarded)" if frames else "quit"
        if key in ("h", "?"):
            return True, help_text()
    except (ValueError, OSError) as exc:
        return True, f"error: {exc}"
    return True, f"unknown key {key!r}; {help_text()}"


def keyboard_loop(
    labeller: LiveLabeller,
    stream: TextIO,
    out: TextIO | None = None,
    stop: Callable[[], bool] | None = None,
) -> None:
    """Read lines from `stream` and apply each non-blank character as a key until `q`, end of input or
    `stop()`. Messages go to `out` (none when None)."""

    def say(text: str) -> None:
        if out is not None:
            print(text, file=out, flush=True)

    say(help_text())
    for line in stream:
        for key in line.strip():
            if key.isspace():
                continue
            going, message = handle_key(labeller, key)
            say(f"{message} | {labeller.summary()}" if going else message)
            if not going:
                return
        if stop is not None and stop():
            return
