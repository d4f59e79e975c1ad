"""A synthetic episode with known numbers, written through the dataset writer (no simulator needed)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from pld_residual.dataset.writer import DatasetWriter

CAMERAS = ("side", "wrist")
PROPRIO_NAMES = ["tcp_x", "tcp_y", "gripper_width"]
JOINT_NAMES = ["joint1", "joint2"]
STEP_NS = 50_000_000  # 20 Hz
START_NS = 1_700_000_000_000_000_000


def expected_arrays(steps: int, seed: int) -> dict[str, np.ndarray]:
    """What `write_episode(steps, seed)` writes, so tests can compare the read-back to it."""
    rng = np.random.default_rng(seed)
    return {
        "images": {cam: rng.integers(0, 256, (steps + 1, 8, 6, 3), dtype=np.uint8) for cam in CAMERAS},
        "proprio": rng.standard_normal((steps + 1, len(PROPRIO_NAMES))).astype(np.float32),
        "joints": rng.standard_normal((steps + 1, len(JOINT_NAMES))),
        "base": rng.uniform(-1, 1, (steps, 7)).astype(np.float32),
        "residual": rng.uniform(-1, 1, (steps, 7)).astype(np.float32),
        "probability": rng.uniform(0, 1, steps).astype(np.float32),
    }


@pytest.fixture
def write_episode() -> Callable[..., dict]:
    """Write one episode: `t_base` base steps, then residual steps (command = base + 0.1 residual)."""

    def write(
        dataset: DatasetWriter,
        steps: int = 5,
        t_base: int = 2,
        seed: int = 0,
        success: bool = True,
        task="pick_cube",
    ) -> dict:
        arrays = expected_arrays(steps, seed)
        with dataset.episode(
            task=task, instruction="pick up the red cube", seed=seed, source="pld", t_base=t_base
        ) as episode:
            episode.add_instruction(START_NS)
            episode.add_phase(START_NS, phase=1, step=0)
            for step in range(steps + 1):
                stamp = START_NS + step * STEP_NS
                images = {cam: arrays["images"][cam][step] for cam in CAMERAS}
                episode.add_observation(
                    step,
                    stamp,
                    images,
                    arrays["proprio"][step],
                    PROPRIO_NAMES,
                    JOINT_NAMES,
                    arrays["joints"][step],
                )
                if step > 0:
                    episode.add_reward(stamp, arrays["probability"][step - 1], success and step == steps)
                if step == steps:
                    break
                if step == t_base:
                    episode.add_phase(stamp, phase=2, step=step)
                residual_acts = step >= t_base
                residual = arrays["residual"][step] if residual_acts else None
                command = arrays["base"][step] + (0.1 * residual if residual_acts else 0.0)
                episode.add_command(step, stamp, command, arrays["base"][step], residual, int(residual_acts))
            episode.add_phase(START_NS + steps * STEP_NS, phase=3, step=steps, success=success, end_reason=1)
            return episode.finish(success=success)

    return write


@pytest.fixture
def expected() -> Callable[[int, int], dict[str, np.ndarray]]:
    """`expected(steps, seed)`: the arrays `write_episode` writes for those arguments."""
    return expected_arrays


@pytest.fixture
def names() -> dict[str, list[str]]:
    return {"cameras": list(CAMERAS), "proprio": PROPRIO_NAMES, "joints": JOINT_NAMES}


@pytest.fixture
def dataset_root(tmp_path: Path) -> Path:
    return tmp_path / "dataset"
