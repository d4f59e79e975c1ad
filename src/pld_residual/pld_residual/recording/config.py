"""The one validated configuration of the recorder node.

Each field is one read-only ROS parameter of `recorder_node`; YAML presets and in-process runs use
`from_dict` / `to_dict`. Invalid values fail at construction with a message naming the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from pld_sim.config_checks import check_field_types, config_from_dict


def _help(text: str) -> dict[str, str]:
    return {"help": text}


def default_dataset_dir() -> Path:
    """`<workspace>/runs/<timestamp>-graph-dataset/` (design.md §5), like the other run directories."""
    from pld_residual.cli.workspace import workspace_root

    root = workspace_root() or Path.cwd()
    return root / "runs" / f"{datetime.now():%Y%m%d-%H%M%S}-graph-dataset"


@dataclass(frozen=True)
class RecorderConfig:
    """Options of the recorder; see `pld_residual/README.md` (Recorder node) for how episodes are cut."""

    dataset_dir: str = field(
        default="",
        metadata=_help(
            "dataset directory (created or appended to); '' = <workspace>/runs/<time>-graph-dataset"
        ),
    )
    source: str = field(
        default="graph",
        metadata=_help("the 'source' of every episode record (e.g. 'pld' when collecting, 'train', 'eval')"),
    )
    keep_failures: bool = field(
        default=True,
        metadata=_help("also index failed and aborted episodes; false: they are discarded, not indexed"),
    )
    finalize_grace_s: float = field(
        default=0.5,
        metadata=_help(
            "wall seconds to wait after an episode's DONE event for its late messages before the bag is "
            "closed (sooner when every topic has sent a message stamped after DONE, or at the next RESET)"
        ),
    )
    reorder_window_s: float = field(
        default=0.5,
        metadata=_help(
            "wall seconds a message waits before it is assigned to an episode by its header stamp, so a "
            "RESET or DONE event that arrives after the messages it delimits still places them right"
        ),
    )
    namespace_in_bag: bool = field(
        default=False,
        metadata=_help(
            "store topics as /<node namespace>/<topic>; false: /<topic>, exactly like `pld collect` bags"
        ),
    )
    status_period_s: float = field(default=1.0, metadata=_help("period of the recorder_status topic (s)"))

    def __post_init__(self) -> None:
        check_field_types(self)
        if not self.source.strip():
            raise ValueError(
                "RecorderConfig.source: must not be empty (it names where the episodes came from)"
            )
        for name in ("finalize_grace_s", "reorder_window_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"RecorderConfig.{name}: must be >= 0, got {getattr(self, name)}")
        if self.status_period_s <= 0:
            raise ValueError(f"RecorderConfig.status_period_s: must be positive, got {self.status_period_s}")

    def resolved_dataset_dir(self) -> Path:
        """`dataset_dir`, or a new timestamped directory under the workspace's `runs/` when it is ''."""
        return Path(self.dataset_dir).expanduser() if self.dataset_dir else default_dataset_dir()

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> RecorderConfig:
        return config_from_dict(cls, values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
