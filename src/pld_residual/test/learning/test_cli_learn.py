"""`pld learn` end to end on pick_cube with a tiny random-init small VLA as the base, and its options."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pld_residual.cli.learn import BUDGETS, add_arguments, config_from_args, parse_overrides
from pld_residual.cli.main import SUBCOMMANDS, build_parser, main


def test_learn_is_a_registered_subcommand_with_its_options() -> None:
    assert SUBCOMMANDS["learn"][0] == "pld_residual.cli.learn"
    args = build_parser().parse_args(
        ["learn", "--method", "rlpd", "--steps", "123", "--seed", "3", "--eval-every", "50",
         "--eval-episodes", "4", "--config", "probing_alpha=0.3", "--config", "agent.hidden=32"]
    )  # fmt: skip
    cfg = config_from_args(args)
    assert (cfg.method, cfg.total_env_steps, cfg.seed, cfg.eval_every_steps, cfg.eval_episodes) == (
        "rlpd",
        123,
        3,
        50,
        4,
    )
    assert cfg.probing_alpha == 0.3 and cfg.agent == {"hidden": 32}


def test_smoke_budget_and_overrides_merge() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    cfg = config_from_args(parser.parse_args(["--budget", "smoke", "--config", "agent.batch_size=16"]))
    assert cfg.total_env_steps == BUDGETS["smoke"]["total_env_steps"] and cfg.eval_episodes == 2
    assert cfg.agent == {**BUDGETS["smoke"]["agent"], "batch_size": 16}
    assert parse_overrides(["task=peg_insertion", "eval_at_start=false"]) == {
        "task": "peg_insertion", "eval_at_start": False
    }  # fmt: skip
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_overrides(["oops"])


def test_config_file_sits_between_budget_and_overrides(tmp_path: Path) -> None:
    import argparse

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    path = tmp_path / "learn.yaml"
    path.write_text("probing_alpha: 0.05\neval_episodes: 7\nagent:\n  xi_final: 0.1\n  batch_size: 64\n")
    args = ["--budget", "smoke", "--config-file", str(path), "--config", "agent.batch_size=16"]
    cfg = config_from_args(parser.parse_args(args))
    assert cfg.probing_alpha == 0.05 and cfg.eval_episodes == 7  # the file over the budget
    assert cfg.agent == {**BUDGETS["smoke"]["agent"], "xi_final": 0.1, "batch_size": 16}  # --config last
    for text, match in (("- 1\n", "mapping"), ("agent: 3\n", "mapping"), ("a: [\n", "not valid YAML")):
        path.write_text(text)
        with pytest.raises(ValueError, match=match):
            config_from_args(parser.parse_args(["--config-file", str(path)]))
    with pytest.raises(ValueError, match="cannot read"):
        config_from_args(parser.parse_args(["--config-file", str(tmp_path / "missing.yaml")]))


def test_the_shipped_pick_cube_file_is_a_valid_config() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    shipped = Path(__file__).resolve().parents[2] / "config" / "learn_pick_cube.yaml"
    cfg = config_from_args(parser.parse_args(["--config-file", str(shipped)]))
    agent = cfg.agent_config()
    assert cfg.task == "pick_cube" and agent.xi_final <= 0.5
    assert agent.residual_axes == (0, 1, 5) and hash(agent)  # YAML list -> hashable tuple for jit


def test_sigterm_and_an_inherited_ignored_sigint_both_interrupt() -> None:
    import os
    import signal

    from pld_residual.cli.interrupts import interrupt_on_sigterm

    saved = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # as in a process started with `nohup ... &`
        interrupt_on_sigterm()
        for signum in (signal.SIGTERM, signal.SIGINT):
            with pytest.raises(KeyboardInterrupt):
                os.kill(os.getpid(), signum)
                signal.sigtimedwait([], 0.5)  # let the handler run here, inside the `raises` block
    finally:
        signal.signal(signal.SIGTERM, saved[0])
        signal.signal(signal.SIGINT, saved[1])


def test_missing_base_checkpoint_says_to_run_pretrain(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit, match="pld pretrain"):
        main(["learn", "--base", str(tmp_path / "nothing"), "--out", str(tmp_path / "run")])
    with pytest.raises(SystemExit, match="unknown LearnConfig field"):
        main(["learn", "--config", "nonsense=1"])


@pytest.mark.slow  # 35-75 s on 2 busy cores (jit compiles for the VLA feature size, rendering, evals)
def test_pld_learn_smoke_budget_on_pick_cube_end_to_end(tmp_path: Path, tiny_vla: dict) -> None:
    import torch

    from pld_vla_server.small_vla import SmallVLABackend, SmallVLAConfig

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        SmallVLABackend(SmallVLAConfig(**tiny_vla)).save(tmp_path / "base")
        out = tmp_path / "run"
        code = main(
            ["learn", "--task", "pick_cube", "--budget", "smoke", "--base", str(tmp_path / "base"),
             "--out", str(out), "--quiet"]
        )  # fmt: skip
    finally:
        torch.set_num_threads(previous)
    assert code == 0
    for name in ("curve.json", "curve.png", "summary.json", "policy/params.msgpack", "checkpoint/loop.json"):
        assert (out / name).is_file(), name
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] and summary["env_steps"] == 300 and summary["updates"] > 0
    points = json.loads((out / "curve.json").read_text())["points"]
    assert points[0]["env_steps"] == 0 and points[-1]["env_steps"] == 300
