"""`pld demo` (what `make demo` runs) finishes and writes its summary and plots."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def test_demo_writes_summary_and_plots(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "pld_residual.cli", "demo", "--out", str(out), "--steps", "30"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 30 and summary["success"] is True
    for png in ("frames.png", "cube_height.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
