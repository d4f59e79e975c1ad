"""env.sh gives any new shell the whole environment: venv, install space, LOCALHOST discovery."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
IMPORT = "from pld_interfaces.msg import Observation, ActionChunk, ActionCommand, Reward; print('imported')"


@pytest.mark.parametrize("shell", ["bash", "sh"])
def test_sourcing_env_script_in_a_clean_shell(shell: str) -> None:
    script = (
        f'. "{ROOT}/env.sh" && echo "range=$ROS_AUTOMATIC_DISCOVERY_RANGE" && '
        f'command -v pld && python -c "{IMPORT}"'
    )
    result = subprocess.run(
        ["env", "-i", "HOME=/tmp", "PATH=/usr/bin:/bin", shell, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        cwd="/",
    )
    assert result.returncode == 0, result.stderr
    assert "range=LOCALHOST" in result.stdout
    assert f"{ROOT}/.venv/bin/pld" in result.stdout
    assert "imported" in result.stdout


def test_sourcing_twice_does_not_grow_the_paths() -> None:
    source = f'. "{ROOT}/env.sh"'
    script = f'{source}; a="$AMENT_PREFIX_PATH"; {source}; [ "$a" = "$AMENT_PREFIX_PATH" ] && echo same'
    result = subprocess.run(
        ["env", "-i", "HOME=/tmp", "PATH=/usr/bin:/bin", "bash", "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.stdout.strip().endswith("same"), result.stdout + result.stderr
