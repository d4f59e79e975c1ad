"""Rewrite the build-machine paths baked into the ROS wheels' exported CMake files.

The PyPI ROS 2 wheels were built in a manylinux container; their `*Export.cmake` files name that
container's Python and numpy include directories, so `find_package(<msgs>)` fails when colcon builds
our interface package. We point them at this venv's directories. Idempotent: re-running (e.g. after
installing another message wheel) only touches files that still carry a foreign path.
"""

from __future__ import annotations

import re
import sys
import sysconfig
from pathlib import Path

import numpy

# Any manylinux CPython prefix, e.g. /opt/python/cp311-cp311.
_PY_INCLUDE = re.compile(r"/opt/python/cp\d+-cp\d+t?/include/python[\d.]+t?")
_NUMPY_INCLUDE = re.compile(
    r"/opt/python/cp\d+-cp\d+t?/lib/python[\d.]+t?/site-packages/numpy/(?:_core|core)/include"
)


def rewrite(text: str, py_include: str, numpy_include: str) -> str:
    """Return `text` with the foreign include paths replaced (pure, unit-tested)."""
    text = _NUMPY_INCLUDE.sub(numpy_include, text)
    return _PY_INCLUDE.sub(py_include, text)


def fix_tree(prefix: Path) -> list[Path]:
    """Rewrite every CMake file under `prefix/share`; return the files changed."""
    py_include = sysconfig.get_paths()["include"]
    numpy_include = numpy.get_include()
    changed = []
    for path in sorted((prefix / "share").rglob("*.cmake")):
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
        if "/opt/python/" not in text:
            continue
        new = rewrite(text, py_include, numpy_include)
        if new != text:
            path.write_text(new, encoding="utf-8", errors="surrogateescape")
            changed.append(path)
    return changed


def main() -> int:
    prefix = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(sys.prefix)
    changed = fix_tree(prefix)
    print(f"fix_wheel_cmake_paths: {len(changed)} CMake file(s) rewritten under {prefix / 'share'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
