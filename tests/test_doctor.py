"""`pld doctor` end to end: green in the workspace environment, and says what to run outside it."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PLD = ROOT / ".venv" / "bin" / "pld"


def unsourced_env() -> dict[str, str]:
    """What a fresh login shell has: none of env.sh's variables."""
    keep = ("HOME", "LANG", "TERM", "ROS_DOMAIN_ID", "ROS_HOME", "ROS_LOG_DIR")
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", **{k: os.environ[k] for k in keep if k in os.environ}}


@pytest.mark.ros
def test_doctor_passes_in_the_sourced_environment() -> None:
    result = subprocess.run([str(PLD), "doctor", "--json"], capture_output=True, text=True, timeout=300)
    report = json.loads(result.stdout)
    failed = [c for c in report["checks"] if not c["ok"]]
    assert result.returncode == 0 and report["ok"], failed
    names = {c["name"] for c in report["checks"]}
    assert {
        "import rclpy",
        "custom interfaces",
        "DDS 20 msgs, 2 processes",
        "MuJoCo offscreen render",
        "JAX on CPU",
        "torch on CPU",
        "discovery range",
    } <= names
    dds = next(c for c in report["checks"] if c["name"].startswith("DDS"))
    assert "received 20/20" in dds["detail"]


def test_doctor_without_env_script_fails_and_says_what_to_run() -> None:
    result = subprocess.run(
        [str(PLD), "doctor"], capture_output=True, text=True, timeout=300, env=unsourced_env()
    )
    assert result.returncode == 1
    assert f"fix: . {ROOT}/env.sh" in result.stdout
    assert "export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST" in result.stdout
    assert "DDS discovery would leave this machine" in result.stdout  # and it did not try


def test_doctor_with_discovery_variable_unset_fails() -> None:
    env = {k: v for k, v in os.environ.items() if k != "ROS_AUTOMATIC_DISCOVERY_RANGE"}
    result = subprocess.run(
        [str(PLD), "doctor", "--json"], capture_output=True, text=True, timeout=300, env=env
    )
    assert result.returncode == 1
    report = json.loads(result.stdout)
    failed = {c["name"]: c for c in report["checks"] if not c["ok"]}
    assert set(failed) == {"discovery range", "DDS 20 msgs, 2 processes"}
    assert "export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST" in failed["discovery range"]["fix"]
