"""A writer killed mid-episode loses that episode only: reopening cleans up and continues the numbering."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

from pld_residual.dataset.index import load_index, save_index
from pld_residual.dataset.reader import read_episode
from pld_residual.dataset.verify import verify_dataset
from pld_residual.dataset.writer import DatasetWriter

# Writes two finished episodes, then keeps writing a third until killed.
WRITER = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from pathlib import Path
    from pld_residual.dataset.writer import DatasetWriter

    with DatasetWriter(Path(sys.argv[1])) as dataset:
        for seed in range(3):
            with dataset.episode(task="pick_cube", instruction="go", seed=seed, source="pld") as episode:
                for step in range(400):
                    image = {"side": np.zeros((8, 8, 3), np.uint8)}
                    episode.add_observation(step, step, image, np.zeros(1), ["x"])
                    episode.add_command(step, step, np.zeros(7), None, None, 0)
                    if seed == 2 and step == 10:
                        print("third episode started", flush=True)
                    if seed == 2 and step > 10:
                        time.sleep(0.01)
                episode.finish(success=True)
    """
)


def test_killed_writer_keeps_finished_episodes_and_drops_the_partial_one(tmp_path: Path) -> None:
    root = tmp_path / "dataset"
    child = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(root)], stdout=subprocess.PIPE, text=True, env=os.environ.copy()
    )
    try:
        assert child.stdout.readline().strip() == "third episode started"
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    assert [r["seed"] for r in load_index(root)] == [0, 1]
    assert any((root / ".partial").iterdir())  # the episode being written when the process died

    with DatasetWriter(root) as dataset:
        assert dataset.discarded == ["episode_000002"]
        assert dataset.next_episode_id() == 2
    assert not (root / ".partial").exists()
    report = verify_dataset(root)
    assert report["ok"] == 2 and report["broken"] == [] and report["unindexed"] == []
    assert len(read_episode(root / "episode_000001")) == 400


def test_a_bag_the_index_missed_is_added_back_on_open(dataset_root: Path, write_episode: Callable) -> None:
    with DatasetWriter(dataset_root) as dataset:
        write_episode(dataset, seed=0)
        write_episode(dataset, seed=1)
    save_index(
        dataset_root, load_index(dataset_root)[:1]
    )  # as if killed between the rename and the index write
    time.sleep(0.01)
    with DatasetWriter(dataset_root) as dataset:
        assert dataset.recovered == ["episode_000001"]
        assert write_episode(dataset, seed=2)["episode_id"] == 2
    assert [r["seed"] for r in load_index(dataset_root)] == [0, 1, 2]
