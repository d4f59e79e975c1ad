"""`pld demo` (what `make demo` runs) finishes and writes its summary and plots."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def test_demo_writes_summary_and_plots(tmp_path: Path) -> None:
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "pld_residual.cli", "demo", "--out", str(out), "--episodes", "2"]
    cmd += ["--seed", "3"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert [e["seed"] for e in summary["episodes"]] == [3, 4]
    assert summary["success_rate"] == 1.0 and summary["instruction"] == "pick up the blue cube"
    for png in ("frames.png", "tcp_height.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
