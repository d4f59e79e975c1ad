"""`pld demo --budget smoke` (`make demo` in CI form): every stage's files, and resumption after Ctrl-C."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

PNG = b"\x89PNG\r\n\x1a\n"


def _demo(out: Path) -> list[str]:
    command = [sys.executable, "-m", "pld_residual.cli", "demo", "--budget", "smoke", "--compare"]
    return [*command, "--out", str(out), "--quiet"]


def test_smoke_demo_interrupted_in_the_learn_stage_resumes_and_finishes(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    child = subprocess.Popen(_demo(out), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    checkpoint = out / "learn" / "checkpoint" / "loop.json"
    deadline = time.monotonic() + 240
    while not checkpoint.exists() and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    child.send_signal(signal.SIGINT)  # Ctrl-C in the middle of stage 2
    output, _ = child.communicate(timeout=120)
    assert child.returncode == 130, output
    stages = json.loads((out / "stages.json").read_text())["stages"]
    assert stages["base"]["status"] == "done" and stages["learn"]["status"] == "interrupted"

    result = subprocess.run(_demo(out), capture_output=True, text=True, timeout=400)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[1/11] base: done" in result.stdout  # not redone
    summary = json.loads((out / "summary.json").read_text())
    assert all(stage["status"] == "done" for stage in summary["stages"].values())
    learn = json.loads((out / "learn" / "summary.json").read_text())
    assert learn["complete"] and learn["env_steps"] == 300  # resumed to the full smoke budget
    models = ["base", "pld", "scripted_expert_data", "rl_expert_data", "base_data"]
    assert [(r["model"], r["task"], r["episodes"]) for r in summary["eval"]] == [
        (m, "pick_cube", 2) for m in models
    ]
    expert = json.loads((out / "compare" / "scripted_expert" / "data" / "index.json").read_text())["episodes"]
    assert [r["source"] for r in expert] == ["scripted_expert"] and expert[0]["success"]
    assert summary["headline"]["collect_attempts"] == 2 and summary["distill"]["episodes"] == 2
    index = json.loads((out / "collect" / "index.json").read_text())["episodes"]
    assert [r["source"] for r in index] == ["pld", "pld"] and all(r["length"] > 0 for r in index)
    for png in ("eval/success.png", "eval/trajectories.png", "learn/curve.png"):
        assert (out / png).read_bytes()[:8] == PNG, png
    report = (out / "report.md").read_text()
    assert "claim nothing" in report and "eval/success.png" in report
    verify = subprocess.run(
        [sys.executable, "-m", "pld_residual.cli", "dataset", "verify", str(out / "collect")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert verify.returncode == 0, verify.stdout + verify.stderr

    again = subprocess.run(_demo(out), capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and again.stdout.count(": done") == 11  # everything finished: nothing reruns
