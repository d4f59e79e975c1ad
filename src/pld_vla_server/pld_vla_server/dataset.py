"""Trajectory datasets for pretraining and SFT: episodes of images, proprioception, actions, instruction.

On disk: one compressed `.npz` per episode plus `manifest.json` (task, instruction, seed, length, success,
source per episode), so a dataset can be inspected, filtered and merged without loading the images.
`chunk_targets` turns per-step actions into the `[H, 7]` chunks a VLA learns to predict.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

MANIFEST = "manifest.json"


@dataclass
class Episode:
    """One trajectory: `images[cam]` is [T, S, S, 3] uint8, `proprio` [T, P], `actions` [T, 7].

    `privileged` [T, D] is the simulator's task state (object poses), when the episode comes from
    simulation: pretraining can use it as an auxiliary target. Real-robot episodes leave it None."""

    images: dict[str, np.ndarray]
    proprio: np.ndarray
    actions: np.ndarray
    instruction: str
    task: str
    seed: int = -1
    success: bool = True
    source: str = "scripted_expert"
    meta: dict = field(default_factory=dict)
    privileged: np.ndarray | None = None

    def __post_init__(self) -> None:
        length = len(self.actions)
        if self.actions.ndim != 2 or self.actions.shape[1] != 7:
            raise ValueError(f"Episode.actions must be [T, 7], got {self.actions.shape}")
        if len(self.proprio) != length or any(len(v) != length for v in self.images.values()):
            raise ValueError("Episode: images, proprio and actions must have the same length")
        if self.privileged is not None and (self.privileged.ndim != 2 or len(self.privileged) != length):
            shape = self.privileged.shape
            raise ValueError(f"Episode.privileged must be [T, D] with T={length}, got {shape}")
        if not self.instruction:
            raise ValueError("Episode.instruction must not be empty")

    def __len__(self) -> int:
        return len(self.actions)

    def record(self, file: str) -> dict:
        return {
            "file": file,
            "task": self.task,
            "instruction": self.instruction,
            "seed": self.seed,
            "length": len(self),
            "success": self.success,
            "source": self.source,
            "meta": self.meta,
        }


def save_episodes(episodes: list[Episode], directory: Path) -> Path:
    """Write (or extend) a dataset directory; returns the manifest path."""
    directory.mkdir(parents=True, exist_ok=True)
    manifest_path = directory / MANIFEST
    records = json.loads(manifest_path.read_text())["episodes"] if manifest_path.exists() else []
    for episode in episodes:
        name = f"episode_{len(records):06d}.npz"
        arrays = {f"image_{cam}": frames for cam, frames in episode.images.items()}
        if episode.privileged is not None:
            arrays["privileged"] = episode.privileged
        np.savez_compressed(directory / name, proprio=episode.proprio, actions=episode.actions, **arrays)
        records.append(episode.record(name))
    tmp = manifest_path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"episodes": records}, indent=1))
    tmp.replace(manifest_path)  # never a half-written manifest
    return manifest_path


def load_episodes(directory: Path, only_successful: bool = True) -> list[Episode]:
    records = json.loads((directory / MANIFEST).read_text())["episodes"]
    episodes = []
    for record in records:
        if only_successful and not record["success"]:
            continue
        with np.load(directory / record["file"]) as arrays:
            images = {key[len("image_") :]: arrays[key] for key in arrays.files if key.startswith("image_")}
            episodes.append(
                Episode(
                    images=images,
                    proprio=arrays["proprio"],
                    actions=arrays["actions"],
                    instruction=record["instruction"],
                    task=record["task"],
                    seed=record["seed"],
                    success=record["success"],
                    source=record["source"],
                    meta=record["meta"],
                    privileged=arrays["privileged"] if "privileged" in arrays.files else None,
                )
            )
    return episodes


def chunk_targets(actions: np.ndarray, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """For every step t: actions[t : t + H] ([T, H, 7]) and a validity mask [T, H] (False past the end).

    Past the end the last action is repeated, so a chunk never asks the robot to do something new after
    the demonstration stopped; the mask lets losses ignore those rows.
    """
    length = len(actions)
    index = np.arange(length)[:, None] + np.arange(horizon)[None, :]
    mask = index < length
    return actions[np.minimum(index, length - 1)], mask


def dataset_summary(episodes: list[Episode]) -> dict:
    by_task: dict[str, int] = {}
    for episode in episodes:
        by_task[episode.task] = by_task.get(episode.task, 0) + 1
    return {"episodes": len(episodes), "steps": int(sum(len(e) for e in episodes)), "by_task": by_task}


def manifest_records(directory: Path) -> list[dict]:
    return json.loads((directory / MANIFEST).read_text())["episodes"]


__all__ = [
    "Episode",
    "chunk_targets",
    "dataset_summary",
    "load_episodes",
    "manifest_records",
    "save_episodes",
]
