"""`pld bench sim` prints the documented JSON keys with plausible numbers."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from pld_sim.bench import SimBenchConfig, run_sim_bench

KEYS = {
    "control_steps_per_s_no_render",
    "control_steps_per_s_render",
    "render_fps",
    "raw_control_steps_per_s",
    "ik_solve_ms_p99",
}


def test_bench_reports_every_key() -> None:
    result = run_sim_bench(SimBenchConfig(steps=20, render_steps=10))
    assert set(result) >= KEYS
    assert all(result[k] > 0 for k in KEYS)
    # raw MuJoCo does strictly less work per control step than the env
    assert result["raw_control_steps_per_s"] > result["control_steps_per_s_no_render"]
    assert result["control_steps_per_s_no_render"] > result["control_steps_per_s_render"]


def test_cli_prints_json() -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pld_residual.cli",
            "bench",
            "sim",
            "--json",
            "--steps",
            "20",
            "--render-steps",
            "10",
            "--image-size",
            "32",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["task"] == "pick_cube" and result["image_size"] == 32
    assert set(result) >= KEYS


def test_config_rejects_tiny_runs() -> None:
    with pytest.raises(ValueError):
        SimBenchConfig(steps=1)
