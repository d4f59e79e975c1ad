"""Import every core (non-ROS) module of the given packages with rclpy and message packages unimportable.

Usage: python core_import_check.py SRC_DIR PACKAGE [PACKAGE ...]
Prints the modules it imported; exits 1 naming each module whose import needed ROS.
Core = every module of a package except its `ros` sub-package and `*_node` modules (design.md §3).
"""

from __future__ import annotations

import importlib
import importlib.abc
import pkgutil
import sys
import traceback
from pathlib import Path

BLOCKED_PREFIXES = ("rclpy", "rosidl_", "rmw", "launch", "pld_interfaces", "builtin_interfaces")
BLOCKED_SUFFIXES = ("_msgs", "_srvs")


class BlockRos(importlib.abc.MetaPathFinder):
    """Makes ROS client libraries and message packages look uninstalled."""

    def find_spec(self, fullname, path=None, target=None):
        top = fullname.split(".")[0]
        if top.startswith(BLOCKED_PREFIXES) or top.endswith(BLOCKED_SUFFIXES):
            raise ImportError(f"{top} is blocked: core modules must import without ROS")
        return None


def core_modules(src: Path, package: str) -> list[str]:
    root = src / package / package
    names = [package]
    for info in pkgutil.walk_packages([str(root)], prefix=f"{package}."):
        parts = info.name.split(".")
        if (
            "ros" in parts[1:]
            or parts[-1].endswith("_node")
            or parts[-1] == "__main__"
            or "test" in parts[1:]
        ):
            continue
        names.append(info.name)
    return names


def main() -> int:
    src = Path(sys.argv[1]).resolve()
    packages = sys.argv[2:]
    for module in [m for m in sys.modules if m.split(".")[0].startswith(BLOCKED_PREFIXES)]:
        del sys.modules[module]
    sys.meta_path.insert(0, BlockRos())
    sys.path[:0] = [str(src / p) for p in packages]
    failures = 0
    for package in packages:
        for name in core_modules(src, package):
            try:
                importlib.import_module(name)
                print(f"ok {name}")
            except Exception:
                failures += 1
                print(f"FAIL {name}\n{traceback.format_exc()}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
