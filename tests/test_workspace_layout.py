"""The colcon workspace follows design.md §3 and the ament skeletons of §7.11."""

from __future__ import annotations

import ast
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
PYTHON_PACKAGES = [
    "pld_sim",
    "pld_vla_server",
    "pld_residual",
    "pld_reward",
    "pld_franka_bringup",
    "pld_yam_driver",
]
INTERFACES = SRC / "pld_interfaces"


def test_top_level_layout() -> None:
    for path in ("config", "launch", "tests", "colcon.meta", "requirements.txt", "Makefile", ".ci/run"):
        assert (ROOT / path).exists(), path
    json.loads((ROOT / "colcon.meta").read_text())
    assert sorted(p.name for p in SRC.iterdir() if p.is_dir()) == sorted([*PYTHON_PACKAGES, "pld_interfaces"])


@pytest.mark.parametrize("name", PYTHON_PACKAGES)
def test_ament_python_skeleton(name: str) -> None:
    pkg = SRC / name
    manifest = ET.parse(pkg / "package.xml").getroot()
    assert manifest.get("format") == "3"
    assert manifest.findtext("name") == name
    assert manifest.find("export/build_type").text == "ament_python"
    deps = {d.text for d in manifest.iter("exec_depend")}
    assert {"rclpy", "pld_interfaces"} <= deps
    assert (pkg / "resource" / name).is_file()
    assert f"script_dir=$base/lib/{name}" in (pkg / "setup.cfg").read_text()
    assert (pkg / "README.md").read_text().startswith(f"# {name}\n")
    assert (pkg / name / "__init__.py").is_file() and (pkg / name / "ros" / "__init__.py").is_file()
    assert list((pkg / "test").glob("test_*.py")) or name not in ("pld_residual", "pld_sim")
    setup = ast.parse((pkg / "setup.py").read_text())
    strings = {n.value for n in ast.walk(setup) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    assert {"launch/*.launch.py", "config/*.yaml", "share/ament_index/resource_index/packages"} <= strings


def test_interfaces_package_declares_every_definition() -> None:
    manifest = ET.parse(INTERFACES / "package.xml").getroot()
    assert manifest.get("format") == "3"
    assert manifest.find("export/build_type").text == "ament_cmake"
    assert manifest.findtext("member_of_group") == "rosidl_interface_packages"
    cmake = (INTERFACES / "CMakeLists.txt").read_text()
    definitions = (
        sorted(INTERFACES.glob("*/*.msg"))
        + sorted(INTERFACES.glob("*/*.srv"))
        + sorted(INTERFACES.glob("*/*.action"))
    )
    assert len(definitions) >= 8
    for path in definitions:
        assert f'"{path.relative_to(INTERFACES)}"' in cmake


@pytest.mark.parametrize("path", sorted(INTERFACES.glob("*/*.*")), ids=lambda p: p.name)
def test_every_interface_field_is_documented(path: Path) -> None:
    """Each paragraph (lines between blank lines) that declares fields carries a comment explaining them."""
    paragraphs = re.split(r"\n\s*\n", path.read_text())
    for paragraph in paragraphs:
        lines = [line for line in paragraph.splitlines() if line.strip() and line.strip() != "---"]
        fields = [
            line for line in lines if not line.startswith("#") and not re.match(r"^\w+ [A-Z_0-9]+=", line)
        ]
        if fields:
            assert any(line.startswith("#") for line in lines), f"{path.name}: undocumented {fields}"


@pytest.mark.parametrize("name", [*PYTHON_PACKAGES, "pld_interfaces"])
def test_install_space_has_the_package(name: str) -> None:
    share = ROOT / "install" / name / "share"
    assert (share / name / "package.xml").is_file()
    assert (share / "ament_index" / "resource_index" / "packages" / name).is_file()
