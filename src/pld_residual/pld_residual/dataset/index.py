"""The dataset index (`index.json`): one record per finished episode bag, rewritten atomically.

A record says what an episode is without opening its bag: task, instruction, seed, T_base, length (control
steps), success, source, provenance counts, and the SHA-256 of the bag's MCAP file (added to the index only,
after the bag is closed). Every bag also carries its record in its own metadata
(`custom_data["pld.episode"]`), so the index can always be rebuilt from the bags (`pld dataset verify --fix`).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

INDEX = "index.json"
FORMAT = "pld-dataset"
VERSION = 1
RECORD_KEY = "pld.episode"  # rosbag2 custom_data key of the record inside each bag's metadata.yaml
BAG_PREFIX = "episode_"  # every episode bag's directory name starts so
REQUIRED = ("bag", "episode_id", "task", "instruction", "seed", "t_base", "length", "success", "source")


def check_record(record: dict[str, Any]) -> dict[str, Any]:
    missing = [key for key in REQUIRED if key not in record]
    if missing:
        raise ValueError(f"episode record of {record.get('bag', '?')} lacks {missing}")
    return record


def load_index(root: Path) -> list[dict[str, Any]]:
    """The records of `root/index.json` ([] when the dataset is new)."""
    path = Path(root) / INDEX
    if not path.exists():
        return []
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        fix = f"pld dataset verify --fix {root}"
        raise ValueError(f"{path} is not valid JSON ({exc}); `{fix}` rebuilds it") from None
    if data.get("format") != FORMAT:
        raise ValueError(f"{path} is not a PLD dataset index (format {data.get('format')!r})")
    return [check_record(record) for record in data["episodes"]]


def save_index(root: Path, records: list[dict[str, Any]]) -> Path:
    """Write the index atomically (temp file + rename): a crash leaves the old or the new one, never half."""
    path = Path(root) / INDEX
    tmp = path.with_name(f".{INDEX}.tmp")
    body = {"format": FORMAT, "version": VERSION, "episodes": sorted(records, key=lambda r: r["episode_id"])}
    with open(tmp, "w") as handle:
        json.dump(body, handle, indent=1)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)
    return path


def bag_digest(bag: Path) -> str:
    """SHA-256 over the bag's storage files: the index keeps it, so any changed byte is found by verify."""
    digest = hashlib.sha256()
    for path in sorted(Path(bag).glob("*.mcap")):
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def read_bag_record(bag: Path) -> dict[str, Any]:
    """The record a bag keeps in its metadata.yaml; raises ValueError when there is none."""
    import yaml

    metadata_path = Path(bag) / "metadata.yaml"
    if not metadata_path.is_file():
        raise ValueError(f"{bag} has no metadata.yaml (the bag was never closed)")
    info = (yaml.safe_load(metadata_path.read_text()) or {}).get("rosbag2_bagfile_information", {})
    raw = (info.get("custom_data") or {}).get(RECORD_KEY)
    if raw is None:
        raise ValueError(f"{bag} has no {RECORD_KEY!r} in its metadata")
    return check_record(json.loads(raw))


def unindexed_bags(root: Path, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Episode bags on disk that `records` lack: each bag's own record with its SHA-256, or `bag` and the
    `error` that keeps it from being read (a crash between the bag's rename and the index write leaves
    the first kind; a foreign or broken directory the second)."""
    indexed = {record["bag"] for record in records}
    found = []
    for bag in sorted(p for p in Path(root).glob(f"{BAG_PREFIX}*") if p.is_dir() and p.name not in indexed):
        try:
            found.append({**read_bag_record(bag), "sha256": bag_digest(bag)})
        except ValueError as exc:
            found.append({"bag": bag.name, "error": str(exc)})
    return found
