"""Labelled frames on disk: one compressed `.npz` shard per episode, written atomically.

A shard holds an episode's (kept) frames at the classifier's input size with their labels and where
they came from: task, stage, episode seed, step, the source that drove the robot (`expert`, `base`,
`label_tool`, ...) and who labelled them (`predicate` in sim, `human` on a robot, `mined` for false
positives added back as negatives). Shards are never rewritten: an interrupted collection loses at most
the episode in progress, and a re-run skips the shards already there.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pld_residual.agent.io import atomic_write

SHARD_SUFFIX = ".npz"


@dataclass
class EpisodeFrames:
    """The kept frames of one episode (arrays share the leading frame axis)."""

    images: np.ndarray  # [N, cameras, S, S, 3] uint8, at the classifier's input size
    proprio: np.ndarray  # [N, P] float32
    labels: np.ndarray  # [N] uint8, 1 = success
    steps: np.ndarray  # [N] int32, control step within the episode
    meta: dict[str, Any]  # task, stage, seed, source, labeller, cameras, input_size, episode_success

    def __post_init__(self) -> None:
        n = len(self.labels)
        for name in ("images", "proprio", "steps"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name} has {len(getattr(self, name))} frames, labels {n}")
        for key in ("task", "stage", "seed", "source", "labeller", "cameras", "input_size"):
            if key not in self.meta:
                raise ValueError(f"episode meta lacks {key!r}")

    @property
    def name(self) -> str:
        return episode_name(self.meta)


def episode_name(meta: dict[str, Any]) -> str:
    """Shard file stem: unique per (source, task, seed) within a frame set."""
    return f"{meta['source']}-{meta['task']}-{int(meta['seed']):07d}"


def shard_path(directory: str | os.PathLike[str], name: str) -> Path:
    return Path(directory) / f"{name}{SHARD_SUFFIX}"


def write_episode(directory: str | os.PathLike[str], episode: EpisodeFrames) -> Path:
    """Write one new shard atomically (temp file + rename) and return its path."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    path = shard_path(out, episode.name)
    if path.exists():
        raise FileExistsError(f"frame shard {path} exists; shards are never rewritten")
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer,
        images=np.asarray(episode.images, np.uint8),
        proprio=np.asarray(episode.proprio, np.float32),
        labels=np.asarray(episode.labels, np.uint8),
        steps=np.asarray(episode.steps, np.int32),
        meta=np.frombuffer(json.dumps(episode.meta, sort_keys=True).encode(), np.uint8),
    )
    atomic_write(path, buffer.getvalue())
    return path


def read_episode(path: str | os.PathLike[str]) -> EpisodeFrames:
    """Read one shard; a truncated or corrupted file raises ValueError naming it."""
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(bytes(data["meta"]).decode())
            return EpisodeFrames(data["images"], data["proprio"], data["labels"], data["steps"], meta)
    except Exception as exc:  # truncated zip (BadZipFile), bad deflate stream (zlib.error), missing keys, ...
        raise ValueError(f"frame shard {path} is unreadable ({type(exc).__name__}: {exc})") from exc


@dataclass
class FrameSet:
    """Every frame of some shards, concatenated; `episode` numbers the shard each frame came from."""

    images: np.ndarray
    proprio: np.ndarray
    labels: np.ndarray
    stages: np.ndarray  # [N] Reward.stage id of each frame
    steps: np.ndarray  # [N] control step within its episode
    episode: np.ndarray  # [N] index into `metas`
    metas: list[dict[str, Any]]

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def positives(self) -> int:
        return int(self.labels.sum())

    def select(self, mask: np.ndarray) -> FrameSet:
        """The frames where `mask` is true (metas kept whole, so `episode` stays valid)."""
        return FrameSet(
            self.images[mask], self.proprio[mask], self.labels[mask], self.stages[mask], self.steps[mask],
            self.episode[mask], self.metas,
        )  # fmt: skip

    def ambiguous(self, steps: int) -> np.ndarray:
        """[N] True for frames within `steps` control steps of a frame of the same episode with the other
        label (the frames either side of each label change); all False when `steps` is 0."""
        out = np.zeros(len(self), bool)
        if steps == 0:
            return out
        for episode in np.unique(self.episode):
            index = np.flatnonzero(self.episode == episode)
            labels, times = self.labels[index], self.steps[index]
            for label in (0, 1):
                other = times[labels != label]
                if len(other) == 0:
                    continue
                mine = labels == label
                gaps = np.abs(times[mine][:, None] - other[None, :]).min(axis=1)
                out[index[mine]] = gaps <= steps
        return out

    def summary(self) -> dict[str, Any]:
        """Counts per task and source: frames, successes, episodes."""
        out: dict[str, Any] = {"frames": len(self), "positives": self.positives, "episodes": len(self.metas)}
        per: dict[str, dict[str, int]] = {}
        for index, meta in enumerate(self.metas):
            key = f"{meta['task']}/{meta['source']}"
            row = per.setdefault(key, {"episodes": 0, "frames": 0, "positives": 0})
            mine = self.episode == index
            row["episodes"] += 1
            row["frames"] += int(mine.sum())
            row["positives"] += int(self.labels[mine].sum())
        out["by_task_source"] = per
        return out


def list_shards(directories: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Every shard under the given frame-set directories, sorted (a missing directory is an error)."""
    paths: list[Path] = []
    for directory in directories:
        folder = Path(directory)
        if not folder.is_dir():
            raise FileNotFoundError(f"no frame set at {folder}; collect one with `pld reward collect`")
        paths.extend(sorted(folder.glob(f"*{SHARD_SUFFIX}")))
    return paths


def load_frames(
    directories: Iterable[str | os.PathLike[str]], on_bad_shard: str = "skip"
) -> tuple[FrameSet, list[str]]:
    """All shards of the directories as one FrameSet, and the problems met (unreadable shards are skipped
    with a message when `on_bad_shard` is "skip", raised when "raise")."""
    parts: list[EpisodeFrames] = []
    problems: list[str] = []
    for path in list_shards(directories):
        try:
            parts.append(read_episode(path))
        except ValueError as exc:
            if on_bad_shard == "raise":
                raise
            problems.append(str(exc))
    return concat(parts), problems


def concat(parts: list[EpisodeFrames]) -> FrameSet:
    """Episodes -> one FrameSet (shapes must agree: same cameras and input size)."""
    if not parts:
        raise ValueError("no frames: the frame set is empty")
    shapes = {p.images.shape[1:] for p in parts}
    if len(shapes) > 1:
        raise ValueError(f"frame shards disagree on image shape (cameras, size): {sorted(shapes)}")
    return FrameSet(
        images=np.concatenate([p.images for p in parts]),
        proprio=np.concatenate([p.proprio for p in parts]),
        labels=np.concatenate([p.labels for p in parts]),
        stages=np.concatenate([np.full(len(p.labels), int(p.meta["stage"]), np.int32) for p in parts]),
        steps=np.concatenate([np.asarray(p.steps, np.int32) for p in parts]),
        episode=np.concatenate([np.full(len(p.labels), i, np.int32) for i, p in enumerate(parts)]),
        metas=[p.meta for p in parts],
    )
