"""`pld reward collect` in simulation: roll out drivers, label every frame with the task's success predicate.

Drivers are the scripted expert (clean, and noisy/hesitant so that it also fails), and the base VLA
(its failures look like the failures the classifier will see during RL). Episodes run past their first
success for `after_success_steps` steps, so success frames are more than one per episode, and on to the
time limit when they fail. Kept per episode: every success frame, every frame within `boundary_steps` of
a label change (the hard cases: cube almost lifted, card almost in), and every `negative_stride`-th other
frame. One shard per episode (frames.py), so a re-run resumes where an interrupted one stopped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from pld_reward.config import ClassifierConfig
from pld_reward.frames import EpisodeFrames, episode_name, shard_path, write_episode
from pld_reward.preprocess import frame_input
from pld_sim.registry import Registry


class Driver(Protocol):
    """Whatever moves the robot during collection."""

    def start(self, env: Any, obs: dict[str, Any], seed: int) -> None: ...

    def act(self, obs: dict[str, Any]) -> np.ndarray: ...


class ExpertDriver:
    """The task's scripted expert, optionally noisy and hesitant (ExpertConfig)."""

    def __init__(self, noise: float = 0.0, hesitation: float = 0.0) -> None:
        self.noise, self.hesitation = noise, hesitation
        self._expert: Any = None

    def start(self, env: Any, obs: dict[str, Any], seed: int) -> None:
        from pld_sim.experts import ExpertConfig, make_expert

        self._expert = make_expert(env, ExpertConfig(noise=self.noise, hesitation=self.hesitation), seed=seed)

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        return self._expert.act(obs)


class BaseDriver:
    """The frozen base VLA, re-planning every `execute_steps` rows of its chunk (as `pld learn` runs it)."""

    def __init__(self, checkpoint: str | None = None, execute_steps: int = 4) -> None:
        from pld_residual.learning.loop import load_base_backend

        self.backend = load_base_backend(checkpoint)
        self.execute_steps = execute_steps
        self._queue: list[np.ndarray] = []

    def start(self, env: Any, obs: dict[str, Any], seed: int) -> None:
        self._queue = []

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        from pld_vla_server.evaluation import to_vla_observation

        if not self._queue:
            chunk = self.backend.predict(to_vla_observation(obs, tuple(self.backend.input_spec.cameras)))
            self._queue = list(chunk.actions[: min(self.execute_steps, chunk.horizon)])
        return self._queue.pop(0)


# source name -> factory(base_checkpoint) -> Driver
SOURCES: Registry[Callable[[str | None], Driver]] = Registry("frame source")
SOURCES.add("expert", lambda _base: ExpertDriver())
SOURCES.add("noisy_expert", lambda _base: ExpertDriver(noise=0.4, hesitation=0.5))
SOURCES.add("base", lambda base: BaseDriver(base))


@dataclass(frozen=True)
class CollectConfig:
    """One collection run: which task, which sources with how many episodes each, which seeds."""

    task: str = "pick_cube"
    episodes: dict[str, int] = field(default_factory=lambda: {"expert": 20, "noisy_expert": 20, "base": 20})
    first_seed: int = 0  # source k's episode i uses seed first_seed + 10_000 * k + i
    after_success_steps: int = 15
    boundary_steps: int = 8
    negative_stride: int = 3
    base_checkpoint: str | None = None

    def __post_init__(self) -> None:
        for name, count in self.episodes.items():
            SOURCES.lookup(name)
            if isinstance(count, bool) or not isinstance(count, int) or count < 0:
                raise ValueError(f"episodes[{name!r}] must be a non-negative integer, got {count!r}")
        for name in ("after_success_steps", "boundary_steps", "first_seed"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.negative_stride < 1:
            raise ValueError("negative_stride must be >= 1")

    def plan(self) -> Iterator[tuple[str, int]]:
        """(source, seed) of every episode, in a fixed order."""
        for k, (name, count) in enumerate(sorted(self.episodes.items())):
            for i in range(count):
                yield name, self.first_seed + 10_000 * k + i


def keep_mask(labels: np.ndarray, boundary_steps: int, negative_stride: int) -> np.ndarray:
    """Which frames of an episode to keep: successes, frames near a label change, every n-th other one."""
    n = len(labels)
    keep = labels.astype(bool) | (np.arange(n) % negative_stride == 0)
    changes = np.flatnonzero(np.diff(labels.astype(np.int8)) != 0)
    for change in changes:
        keep[max(0, change - boundary_steps + 1) : change + boundary_steps + 1] = True
    return keep


def run_episode(
    env: Any, driver: Driver, seed: int, cfg: ClassifierConfig, after_success_steps: int
) -> tuple[list[np.ndarray], list[np.ndarray], list[int], bool]:
    """One episode: (frames at input size, proprio, predicate labels, any success)."""
    obs, info = env.reset(seed=seed)
    driver.start(env, obs, seed)
    frames, proprio, labels = [frame_input(obs["images"], cfg)], [obs["proprio"]], [0]
    first_success: int | None = None
    for t in range(env.time_limit_steps):
        obs, _, terminated, truncated, info = env.step(driver.act(obs))
        success = bool(info["success"])
        frames.append(frame_input(obs["images"], cfg))
        proprio.append(obs["proprio"])
        labels.append(int(success))
        if success and first_success is None:
            first_success = t
        if first_success is not None and t - first_success >= after_success_steps:
            break
        if terminated or truncated:
            break
    return frames, proprio, labels, first_success is not None


def collect(
    collect_cfg: CollectConfig,
    cfg: ClassifierConfig,
    out_dir: str | Path,
    env_factory: Callable[[], Any] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Collect the planned episodes into `out_dir` (skipping shards already there); returns counts."""
    from tqdm import tqdm

    import pld_sim

    stage = cfg.stage_of_task(collect_cfg.task)
    make_env = env_factory or (
        lambda: pld_sim.make(collect_cfg.task, image_size=cfg.image_size, terminate_on_success=False)
    )
    env = make_env()
    drivers: dict[str, Driver] = {}
    plan = list(collect_cfg.plan())
    report = {"written": 0, "skipped_existing": 0, "frames": 0, "positives": 0, "episode_successes": {}}
    bar = tqdm(plan, desc=f"collect {collect_cfg.task}", unit="episode", disable=not progress)
    try:
        for source, seed in bar:
            meta = {"source": source, "task": collect_cfg.task, "seed": seed}
            if shard_path(out_dir, episode_name(meta)).exists():
                report["skipped_existing"] += 1
                continue
            if source not in drivers:
                drivers[source] = SOURCES.lookup(source)(collect_cfg.base_checkpoint)
            frames, proprio, labels, success = run_episode(
                env, drivers[source], seed, cfg, collect_cfg.after_success_steps
            )
            label_arr = np.asarray(labels, np.uint8)
            keep = keep_mask(label_arr, collect_cfg.boundary_steps, collect_cfg.negative_stride)
            meta.update(
                stage=stage,
                labeller="predicate",
                cameras=list(cfg.cameras),
                input_size=cfg.input_size,
                episode_success=success,
                length=len(labels) - 1,
            )
            episode = EpisodeFrames(
                images=np.stack(frames)[keep],
                proprio=np.asarray(proprio, np.float32)[keep],
                labels=label_arr[keep],
                steps=np.arange(len(labels), dtype=np.int32)[keep],
                meta=meta,
            )
            write_episode(out_dir, episode)
            report["written"] += 1
            report["frames"] += int(keep.sum())
            report["positives"] += int(label_arr[keep].sum())
            counts = report["episode_successes"].setdefault(source, [0, 0])
            counts[0] += int(success)
            counts[1] += 1
            bar.set_postfix(frames=report["frames"], positives=report["positives"])
    finally:
        env.close()
    return report
