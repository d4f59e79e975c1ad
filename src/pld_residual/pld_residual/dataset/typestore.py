"""A rosbags typestore that knows the standard ROS 2 messages and ours (`pld_interfaces`).

The custom types are read from the `.msg` files that colcon installs, so bags carry exactly the definitions
(and RIHS01 hashes) that the ROS graph uses, and any reader can decode them from the bag alone.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from rosbags.typesys import Stores, get_types_from_msg
from rosbags.typesys import get_typestore as _rosbags_typestore
from rosbags.typesys.store import Typestore

PACKAGE = "pld_interfaces"
ROS_DISTRO_STORE = Stores.ROS2_KILTED  # the ROS 2 release of our wheels (design.md §6)


def interface_msg_dir() -> Path:
    """`share/pld_interfaces/msg` of the first prefix on AMENT_PREFIX_PATH that has it."""
    prefixes = [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    for prefix in prefixes:
        candidate = Path(prefix) / "share" / PACKAGE / "msg"
        if candidate.is_dir():
            return candidate
    raise RuntimeError(
        f"the {PACKAGE} message definitions (share/{PACKAGE}/msg/*.msg) are not on AMENT_PREFIX_PATH "
        f"({os.environ.get('AMENT_PREFIX_PATH') or 'unset'}); run `make setup` and source env.sh"
    )


@functools.cache
def pld_typestore() -> Typestore:
    """The standard types of our ROS release plus every `pld_interfaces/msg/*` type (built once)."""
    store = _rosbags_typestore(ROS_DISTRO_STORE)
    types = {}
    for path in sorted(interface_msg_dir().glob("*.msg")):
        types.update(get_types_from_msg(path.read_text(), f"{PACKAGE}/msg/{path.stem}"))
    store.register(types)
    return store
