"""design.md §3: every package's algorithm core imports with rclpy and message packages unimportable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHECK = Path(__file__).with_name("core_import_check.py")
# every ament_python package (test_workspace_layout pins the exact list)
PYTHON_PACKAGES = sorted(p.name for p in (ROOT / "src").iterdir() if (p / "setup.py").is_file())


def run_check(src: Path, *packages: str) -> subprocess.CompletedProcess:
    # the checker puts src/ first, so the source tree (not the install space) is what is checked
    return subprocess.run(
        [sys.executable, str(CHECK), str(src), *packages], capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize("package", PYTHON_PACKAGES)
def test_core_modules_import_without_ros(package: str) -> None:
    result = run_check(ROOT / "src", package)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"ok {package}\n" in result.stdout


def test_check_catches_a_core_module_that_imports_rclpy(tmp_path: Path) -> None:
    pkg = tmp_path / "bad_pkg" / "bad_pkg"
    (pkg / "ros").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "ros" / "__init__.py").write_text("import rclpy\n")  # allowed: the ROS layer
    (pkg / "core.py").write_text("import numpy\nfrom std_msgs.msg import String\n")  # not allowed
    result = run_check(tmp_path, "bad_pkg")
    assert result.returncode == 1
    assert "FAIL bad_pkg.core" in result.stdout
    assert "bad_pkg.ros" not in result.stdout
