"""The one PLD dataset writer: a directory of episode bags (rosbag2, MCAP, zstd) and its index.

Nothing is lost or half-written on interruption: an episode is written under `.partial/` and moved into
place (one atomic rename) only when it is finished, then the index is rewritten atomically. Reopening a
dataset deletes unfinished episodes and adds finished bags that the index missed (a crash between the
rename and the index write). A lock file keeps two writers out of one dataset.

`pld collect` calls the typed `add_*` methods; the recorder node passes the CDR bytes it subscribed to
through `write_raw`. Both give the same bag.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rosbags.rosbag2 import Writer
from rosbags.rosbag2.enums import CompressionFormat, CompressionMode, StoragePlugin

from pld_residual.dataset import messages, topics
from pld_residual.dataset.index import (
    BAG_PREFIX,
    RECORD_KEY,
    bag_digest,
    load_index,
    save_index,
    unindexed_bags,
)
from pld_residual.dataset.typestore import pld_typestore

PARTIAL = ".partial"
LOCK = ".lock"
ROSBAG_VERSION = 9


def bag_name(episode_id: int) -> str:
    return f"{BAG_PREFIX}{episode_id:06d}"


class DatasetWriter:
    """Owns one dataset directory while open (`with DatasetWriter(root) as dataset: ...`)."""

    def __init__(self, root: Path, namespace: str = "") -> None:
        self.root = Path(root)
        self.namespace = namespace
        self._lock_handle = None
        self.records: list[dict[str, Any]] = []
        self.recovered: list[str] = []  # bags the index missed, added back on open
        self.discarded: list[str] = []  # unfinished episodes deleted on open

    def __enter__(self) -> DatasetWriter:
        self.open()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def open(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        handle = open(self.root / LOCK, "a")  # noqa: SIM115 - held until close()
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise RuntimeError(f"another process is writing the dataset {self.root}") from None
        self._lock_handle = handle
        self.records = load_index(self.root)
        partial = self.root / PARTIAL
        if partial.exists():
            self.discarded = sorted(p.name for p in partial.iterdir())
            shutil.rmtree(partial)
        # broken or foreign directories stay out: `pld dataset verify` reports them
        found = [record for record in unindexed_bags(self.root, self.records) if "error" not in record]
        self.records += found
        self.recovered = [record["bag"] for record in found]
        if self.recovered:
            save_index(self.root, self.records)

    def close(self) -> None:
        if self._lock_handle is not None:
            self._lock_handle.close()
            self._lock_handle = None

    def next_episode_id(self) -> int:
        """One past the largest id on disk (indexed or not), so a new bag never reuses a name."""
        ids = [record["episode_id"] for record in self.records]
        ids += [int(p.name[len(BAG_PREFIX) :]) for p in self.root.glob(f"{BAG_PREFIX}[0-9]*") if p.is_dir()]
        return max(ids, default=-1) + 1

    def episode(
        self,
        *,
        task: str,
        instruction: str,
        seed: int,
        source: str,
        t_base: int = 0,
        extra: Mapping[str, Any] | None = None,
    ) -> EpisodeWriter:
        """Start the next episode's bag; use as a context manager (an exception discards the episode)."""
        if self._lock_handle is None:
            raise RuntimeError("DatasetWriter is not open")
        if not instruction:
            raise ValueError("an episode needs its instruction")
        episode_id = self.next_episode_id()
        record = {
            "bag": bag_name(episode_id),
            "episode_id": episode_id,
            "task": task,
            "instruction": instruction,
            "seed": int(seed),
            "t_base": int(t_base),
            "source": source,
            "extra": dict(extra or {}),
        }
        return EpisodeWriter(self, record)

    def _commit(self, partial_bag: Path, record: dict[str, Any]) -> dict[str, Any]:
        final = self.root / record["bag"]
        partial_bag.replace(final)
        indexed = {**record, "sha256": bag_digest(final)}
        self.records.append(indexed)
        save_index(self.root, self.records)
        return indexed


class EpisodeWriter:
    """Writes one episode bag; `finish(success)` publishes it into the dataset, `abort()` drops it."""

    def __init__(self, dataset: DatasetWriter, record: dict[str, Any]) -> None:
        self.dataset = dataset
        self.record = record
        self.store = pld_typestore()
        self.path = dataset.root / PARTIAL / record["bag"]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = Writer(self.path, version=ROSBAG_VERSION, storage_plugin=StoragePlugin.MCAP)
        self._writer.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
        self._writer.open()
        self._connections: dict[str, Any] = {}
        self._provenance = dict.fromkeys(topics.PROVENANCE.values(), 0)
        self._commands = 0
        self._cameras: list[str] = []
        self._last_stamp = 0
        self.done = False

    def __enter__(self) -> EpisodeWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_rest: object) -> None:
        if self.done:
            return
        self.abort()
        if exc_type is None:
            raise RuntimeError(f"episode {self.record['bag']} left without finish(): discarded")

    # ------------------------------------------------------------------ raw (recorder node)

    def write_raw(self, topic: str, msgtype: str, stamp: int, data: bytes | memoryview) -> None:
        """Write serialized CDR as received; `topic` is relative to the dataset's namespace."""
        if self.done:
            raise RuntimeError(f"episode {self.record['bag']} is already finished")
        name = topics.full_topic(self.dataset.namespace, topic)
        connection = self._connections.get(name)
        if connection is None:
            connection = self._writer.add_connection(name, msgtype, typestore=self.store)
            self._connections[name] = connection
        if msgtype == topics.MSG_TYPES[topics.COMMAND]:
            self._count_command(self.store.deserialize_cdr(bytes(data), msgtype).provenance)
        elif msgtype == topics.MSG_TYPES[topics.OBSERVATION] and not self._cameras:  # once per episode
            self._cameras = list(self.store.deserialize_cdr(bytes(data), msgtype).camera_names)
        self._writer.write(connection, int(stamp), data)
        self._last_stamp = max(self._last_stamp, int(stamp))

    def _write(self, topic: str, msgtype: str, stamp: int, msg: Any) -> None:
        self.write_raw(topic, msgtype, stamp, self.store.serialize_cdr(msg, msgtype))

    def _count_command(self, provenance: int) -> None:
        self._commands += 1
        name = topics.PROVENANCE.get(int(provenance), f"unknown_{provenance}")
        self._provenance[name] = self._provenance.get(name, 0) + 1

    # ------------------------------------------------------------------ typed (pld collect)

    def add_instruction(self, stamp: int) -> None:
        msg = messages.string_msg(self.store, self.record["instruction"])
        self._write(topics.INSTRUCTION, topics.MSG_TYPES[topics.INSTRUCTION], stamp, msg)

    def add_observation(
        self,
        step: int,
        stamp: int,
        images: Mapping[str, np.ndarray],
        proprio: np.ndarray,
        proprio_names: Sequence[str],
        joint_names: Sequence[str] = (),
        joint_positions: np.ndarray | None = None,
    ) -> None:
        """The observation bundle, the per-camera images and (when given) the joint states at `stamp`."""
        store, episode_id = self.store, self.record["episode_id"]
        msg = messages.observation_msg(store, images, proprio, proprio_names, stamp, episode_id, step)
        self._write(topics.OBSERVATION, topics.MSG_TYPES[topics.OBSERVATION], stamp, msg)
        for name, image in zip(msg.camera_names, msg.images, strict=True):
            self._write(topics.camera_topic(name), topics.IMAGE_TYPE, stamp, image)
        if joint_positions is not None:
            joints = messages.joint_state_msg(store, joint_names, joint_positions, stamp)
            self._write(topics.JOINT_STATES, topics.MSG_TYPES[topics.JOINT_STATES], stamp, joints)

    def add_command(
        self,
        step: int,
        stamp: int,
        command: np.ndarray,
        base: np.ndarray | None,
        residual: np.ndarray | None,
        provenance: int,
    ) -> None:
        msg = messages.command_msg(
            self.store, command, base, residual, provenance, stamp, self.record["episode_id"], step
        )
        self._write(topics.COMMAND, topics.MSG_TYPES[topics.COMMAND], stamp, msg)

    def add_reward(self, stamp: int, probability: float, success: bool, stage: int = 0) -> None:
        msg = messages.reward_msg(self.store, probability, success, stamp, stage)
        self._write(topics.REWARD, topics.MSG_TYPES[topics.REWARD], stamp, msg)

    def add_phase(
        self, stamp: int, phase: int, step: int, success: bool = False, end_reason: int = 0
    ) -> None:
        msg = messages.episode_event_msg(
            self.store,
            stamp=stamp,
            episode_id=self.record["episode_id"],
            phase=phase,
            t_base=self.record["t_base"],
            step=step,
            seed=self.record["seed"],
            success=success,
            end_reason=end_reason,
            task=self.record["task"],
            instruction=self.record["instruction"],
        )
        self._write(topics.EPISODE, topics.MSG_TYPES[topics.EPISODE], stamp, msg)

    # ------------------------------------------------------------------ end

    def finish(self, success: bool, end_reason: str = "", extra: Mapping[str, Any] | None = None) -> dict:
        """Close the bag, move it into the dataset and index it; returns its record."""
        if self.done:
            raise RuntimeError(f"episode {self.record['bag']} is already finished")
        record = {
            **self.record,
            "length": self._commands,
            "success": bool(success),
            "end_reason": end_reason or ("success" if success else "time_limit"),
            "provenance": {name: count for name, count in self._provenance.items() if count},
            "cameras": self._cameras,
            "finished_unix": round(time.time(), 3),
        }
        record["extra"] = {**record["extra"], **(extra or {})}
        self._writer.set_custom_data(RECORD_KEY, json.dumps(record))
        self._writer.close()
        self.done = True
        return self.dataset._commit(self.path, record)

    def abort(self) -> None:
        """Drop the episode: nothing of it reaches the dataset."""
        if self.done:
            return
        self.done = True
        with contextlib.suppress(Exception):  # the bag is deleted either way
            self._writer.close()
        shutil.rmtree(self.path, ignore_errors=True)
