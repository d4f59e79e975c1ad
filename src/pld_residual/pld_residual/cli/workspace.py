"""Where the workspace is and how a user gets its environment (for messages that say what to run)."""

from __future__ import annotations

import os
from pathlib import Path


def workspace_root() -> Path | None:
    """The checkout this code runs from: $PLD_ROOT (set by env.sh), else the nearest parent with env.sh.in."""
    env_root = os.environ.get("PLD_ROOT")
    if env_root:
        return Path(env_root)
    for parent in Path(__file__).resolve().parents:
        if (parent / "scripts" / "env.sh.in").is_file():
            return parent
    return None


def source_hint() -> str:
    """The exact command that gives a shell the PLD environment."""
    root = workspace_root()
    if root is None:
        return "source the env.sh at the root of your PLD checkout"
    if not (root / "env.sh").is_file():
        return f"cd {root} && make setup && . ./env.sh"
    return f". {root}/env.sh"
