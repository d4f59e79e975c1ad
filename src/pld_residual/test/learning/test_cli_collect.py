"""`pld collect` on pick_cube from a `pld learn`-style run (tiny random VLA base): bags that verify."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pld_residual.cli.main import main
from pld_residual.dataset.index import load_index
from pld_residual.dataset.reader import read_episode


def _learn_run(tmp_path: Path, tiny_vla: dict) -> Path:
    """What `pld learn` leaves behind (summary.json with its config, policy/), for a tiny base."""
    from pld_residual.agent.config import ResidualSACConfig
    from pld_residual.agent.policy import ResidualPolicy
    from pld_residual.learning.base_env import BaseGuidedEnv
    from pld_residual.learning.config import LearnConfig
    from pld_residual.learning.loop import default_env_factory, load_base_backend
    from pld_vla_server.small_vla import SmallVLABackend, SmallVLAConfig

    SmallVLABackend(SmallVLAConfig(**tiny_vla)).save(tmp_path / "base")
    cfg = LearnConfig(
        task="pick_cube", base_checkpoint=str(tmp_path / "base"), time_limit_s=1.0, probing_alpha=0.5
    )
    backend = load_base_backend(cfg.base_checkpoint)
    obs, _ = BaseGuidedEnv(default_env_factory(cfg, backend)(), backend).reset(seed=0)
    run = tmp_path / "learn"
    for name in ("policy", "best_policy"):
        ResidualPolicy.create(ResidualSACConfig(hidden=16), obs.vector.size).save(run / name)
    best = {"policy": "best_policy", "env_steps": 100, "success_rate": 0.5, "ci95": [0, 1], "xi": 0.1}
    summary = {"config": cfg.to_dict(), "xi": 0.1, "method_spec": {"guided": True}, "best": best}
    (run / "summary.json").write_text(json.dumps(summary))
    return run


@pytest.fixture
def one_torch_thread():
    """Two busy cores: a second torch thread per worker only adds contention."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.mark.slow
@pytest.mark.usefixtures("one_torch_thread")
def test_collect_from_a_learn_run_writes_bags_that_verify(
    tmp_path: Path, capsys: pytest.CaptureFixture, tiny_vla: dict
) -> None:
    run = _learn_run(tmp_path, tiny_vla)
    out = tmp_path / "dataset"
    args = ["collect", "--specialist", str(run), "--episodes", "1", "--max-attempts", "2", "--keep-failures",
            "--out", str(out), "--quiet"]  # fmt: skip
    assert main(args) == 1  # a random base does not pick the cube in 1 s: incomplete, but both attempts kept
    records = load_index(out)
    assert len(records) == 2 and all(r["task"] == "pick_cube" and r["source"] == "pld" for r in records)
    assert all(r["length"] == 20 and 0 <= r["t_base"] <= 10 for r in records)
    episode = read_episode(out / records[0]["bag"])
    assert set(episode.images) == {"side", "wrist"} and episode.proprio_names[0] == "tcp_x"
    assert (out / "collect_summary.json").is_file()
    assert records[0]["extra"]["specialist"].endswith("best_policy")  # the best-evaluated actor by default
    assert main(["dataset", "verify", str(out)]) == 0
    assert main(args) == 1  # re-running resumes: the attempts are used up, nothing is added
    assert len(load_index(out)) == 2
    capsys.readouterr()
    with pytest.raises(SystemExit, match="needs --specialist"):
        main(["collect", "--source", "rl_expert", "--out", str(tmp_path / "x")])
    with pytest.raises(SystemExit, match="not a finished `pld learn` run"):
        main(["collect", "--specialist", str(tmp_path), "--out", str(tmp_path / "x")])


@pytest.mark.slow
@pytest.mark.usefixtures("one_torch_thread")
def test_scripted_expert_source_needs_no_specialist_and_marks_its_commands_human(
    tmp_path: Path, tiny_vla: dict
) -> None:
    from pld_vla_server.small_vla import SmallVLABackend, SmallVLAConfig

    SmallVLABackend(SmallVLAConfig(**tiny_vla, image_size=64)).save(tmp_path / "base")
    out = tmp_path / "expert"
    args = ["collect", "--source", "scripted_expert", "--task", "pick_cube", "--base", str(tmp_path / "base"),
            "--episodes", "2", "--out", str(out), "--quiet"]  # fmt: skip
    assert main(args) == 0
    records = load_index(out)
    assert len(records) == 2 and all(r["success"] and r["source"] == "scripted_expert" for r in records)
    assert all(r["provenance"] == {"human": r["length"]} and r["t_base"] == 0 for r in records)
    episode = read_episode(out / records[0]["bag"])
    assert episode.images["side"].shape[1:] == (64, 64, 3) and not episode.residual.any()
