"""`pld eval` with a tiny random VLA: per-model/task success with CIs, resumption, plots of paths."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pld_residual.cli.main import main
from pld_residual.dataset.writer import DatasetWriter
from pld_residual.vla_eval import dataset_paths, evaluate_model, model_paths

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def vla(tmp_path: Path, tiny_vla: dict):
    import torch

    from pld_vla_server.small_vla import SmallVLABackend, SmallVLAConfig

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    SmallVLABackend(SmallVLAConfig(**tiny_vla, image_size=32)).save(tmp_path / "vla")
    yield tmp_path / "vla"
    torch.set_num_threads(previous)


@pytest.mark.slow
def test_an_interrupted_evaluation_resumes_to_the_same_result(tmp_path: Path, vla: Path) -> None:
    from pld_vla_server.small_vla import SmallVLABackend

    backend = SmallVLABackend.load(vla)
    whole = evaluate_model(backend, "tiny", "pick_cube", 2, tmp_path / "whole", 4, progress=False)
    cut = tmp_path / "cut"
    evaluate_model(backend, "tiny", "pick_cube", 1, cut, 4, progress=False)
    log = cut / "episodes" / "tiny-pick_cube.jsonl"
    log.write_text(log.read_text() + '{"seed": 10001, "succ')  # an episode cut off while being written
    resumed = evaluate_model(backend, "tiny", "pick_cube", 2, cut, 4, progress=False)
    assert resumed == whole and resumed["seeds"] == [10_000, 10_001] and resumed["episodes"] == 2
    low, high = resumed["ci95"]
    assert 0 <= low <= resumed["success_rate"] <= high <= 1
    paths = model_paths(cut, "tiny", "pick_cube")
    lengths = [json.loads(line)["length"] for line in log.read_text().splitlines()]
    assert [p.shape for p in paths] == [(length + 1, 3) for length in lengths]  # start + one per step


@pytest.mark.slow
def test_cli_writes_results_and_plots_for_each_task(tmp_path: Path, vla: Path, capsys) -> None:
    with DatasetWriter(tmp_path / "data") as dataset:
        for seed, source in ((0, "pld"), (1, "rl_expert")):
            with dataset.episode(task="pick_cube", instruction="go", seed=seed, source=source) as episode:
                for step in range(4):
                    tcp = np.array([0.4 + 0.01 * step, 0.02 * seed, 0.3], np.float32)
                    episode.add_observation(step, step, {}, tcp, ["tcp_x", "tcp_y", "tcp_z"])
                    if step < 3:
                        episode.add_command(step, step, np.zeros(7), None, None, 1)
                episode.finish(success=True)
    groups = dataset_paths(tmp_path / "data", "pick_cube")
    assert sorted(groups) == ["pld", "rl_expert"] and groups["pld"][0].shape == (4, 3)

    out = tmp_path / "eval"
    args = ["eval", "--vla", str(vla), "--tasks", "pick_cube", "pick_cube_cluttered", "--episodes", "1",
            "--trajectories", str(tmp_path / "data"), "--out", str(out), "--quiet"]  # fmt: skip
    assert main(args) == 0
    results = json.loads((out / "eval.json").read_text())["results"]
    assert [(r["model"], r["task"], r["episodes"]) for r in results] == [
        ("vla", "pick_cube", 1), ("vla", "pick_cube_cluttered", 1)
    ]  # fmt: skip
    for name in ("success.png", "trajectories.png"):
        assert (out / name).read_bytes()[:8] == PNG
    assert "vla pick_cube: " in capsys.readouterr().out
    with pytest.raises(SystemExit, match="unknown task"):
        main(["eval", "--vla", str(vla), "--tasks", "pick_sphere"])
    with pytest.raises(SystemExit, match="no VLA checkpoint"):
        main(["eval", "--vla", str(tmp_path)])
