"""scripts/fix_wheel_cmake_paths.py rewrites the manylinux include paths of the ROS wheels, idempotently."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "fix_wheel_cmake_paths.py"
spec = importlib.util.spec_from_file_location("fix_wheel_cmake_paths", SCRIPT)
fix = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fix)

SAMPLE = (
    'INTERFACE_INCLUDE_DIRECTORIES "/opt/python/cp311-cp311/include/python3.11;'
    '/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include"\n'
)


def test_rewrite_replaces_both_paths() -> None:
    out = fix.rewrite(SAMPLE, "/venv/include/python3.11", "/venv/numpy/include")
    assert out == 'INTERFACE_INCLUDE_DIRECTORIES "/venv/include/python3.11;/venv/numpy/include"\n'


def test_rewrite_leaves_other_text_alone() -> None:
    text = 'set(x "/opt/ros/kilted/include")\n'
    assert fix.rewrite(text, "/a", "/b") == text


def test_fix_tree_is_idempotent(tmp_path: Path) -> None:
    cmake = tmp_path / "share" / "std_msgs" / "cmake" / "export.cmake"
    cmake.parent.mkdir(parents=True)
    cmake.write_text(SAMPLE)
    (tmp_path / "share" / "clean.cmake").write_text("nothing to do\n")
    assert fix.fix_tree(tmp_path) == [cmake]
    assert "/opt/python" not in cmake.read_text()
    assert fix.fix_tree(tmp_path) == []


def test_installed_venv_has_no_foreign_paths_left() -> None:
    import sys

    leftovers = [
        p
        for p in (Path(sys.prefix) / "share").rglob("*.cmake")
        if "/opt/python/" in p.read_text(errors="ignore")
    ]
    assert leftovers == []
