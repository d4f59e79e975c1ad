"""Read PLD episode bags back into arrays, and datasets into SFT episodes (broken bags are skipped, named).

Step alignment: observation `t` is what the policy saw when it sent command `t`; a bag of `T` commands
holds `T + 1` observations (the last is the state the final command reached). SFT pairs observation `t`
with the executed command `t`, for `t < T`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rosbags.rosbag2 import Reader

from pld_residual.dataset import messages, topics
from pld_residual.dataset.index import load_index, read_bag_record
from pld_residual.dataset.typestore import pld_typestore


@dataclass
class EpisodeArrays:
    """One bag as arrays: `images[cam]` [N, H, W, 3], `proprio` [N, P], commands [T, 7] with N = T + 1."""

    record: dict[str, Any]
    images: dict[str, np.ndarray]
    proprio: np.ndarray
    proprio_names: list[str]
    command: np.ndarray
    base: np.ndarray
    residual: np.ndarray
    provenance: np.ndarray  # [T] uint8, ActionCommand.PROVENANCE_*
    reward_probability: np.ndarray  # [R]
    reward_success: np.ndarray  # [R] bool
    phases: list[tuple[int, int]] = field(default_factory=list)  # (phase, step) in order
    instruction: str = ""

    def __len__(self) -> int:
        return len(self.command)


USED = {topics.OBSERVATION, topics.COMMAND, topics.REWARD, topics.EPISODE, topics.INSTRUCTION}


def read_episode(bag: Path, decode_all: bool = False) -> EpisodeArrays:
    """One bag as arrays; raises ValueError (naming the bag) on anything inconsistent.

    `decode_all` also decodes the topics the arrays do not use (camera copies, joint states): verification
    wants every message checked, training does not need the copies."""
    bag = Path(bag)
    record = read_bag_record(bag)
    store = pld_typestore()
    observations, commands, rewards, phases, instruction = [], [], [], [], ""
    try:
        with Reader(bag) as reader:
            wanted = [c for c in reader.connections if decode_all or c.topic.rsplit("/", 1)[-1] in USED]
            for connection, _timestamp, raw in reader.messages(connections=wanted):
                topic = connection.topic.rsplit("/", 1)[-1]  # camera topics end in image_raw
                msg = store.deserialize_cdr(raw, connection.msgtype)
                if topic == topics.OBSERVATION:
                    observations.append(msg)
                elif topic == topics.COMMAND:
                    commands.append(msg)
                elif topic == topics.REWARD:
                    rewards.append(msg)
                elif topic == topics.EPISODE:
                    phases.append((int(msg.phase), int(msg.step)))
                elif topic == topics.INSTRUCTION:
                    instruction = msg.data
    except Exception as exc:  # rosbags raises its own error types for truncated or corrupt files
        raise ValueError(f"{bag.name}: cannot read the bag ({type(exc).__name__}: {exc})") from exc
    if not observations or not commands:
        raise ValueError(f"{bag.name}: {len(observations)} observations and {len(commands)} commands")
    if len(commands) != record["length"]:
        raise ValueError(f"{bag.name}: {len(commands)} commands, its record says {record['length']}")
    if [int(c.step) for c in commands] != list(range(len(commands))):
        raise ValueError(f"{bag.name}: command steps are not 0..{len(commands) - 1}")
    observations.sort(key=lambda o: int(o.step))
    if [int(o.step) for o in observations] != list(range(len(observations))):
        raise ValueError(f"{bag.name}: observation steps are not 0..{len(observations) - 1}")
    if len(observations) < len(commands):
        raise ValueError(f"{bag.name}: {len(observations)} observations for {len(commands)} commands")
    cameras = list(observations[0].camera_names)
    images = {
        cam: np.stack([messages.image_array(o.images[i]) for o in observations])
        for i, cam in enumerate(cameras)
    }
    return EpisodeArrays(
        record=record,
        images=images,
        proprio=np.stack([np.asarray(o.proprio, np.float32) for o in observations]),
        proprio_names=list(observations[0].proprio_names),
        command=np.stack([np.asarray(c.command, np.float32) for c in commands]),
        base=np.stack([np.asarray(c.base, np.float32) for c in commands]),
        residual=np.stack([np.asarray(c.residual, np.float32) for c in commands]),
        provenance=np.array([c.provenance for c in commands], np.uint8),
        reward_probability=np.array([r.success_probability for r in rewards], np.float32),
        reward_success=np.array([r.success for r in rewards], bool),
        phases=phases,
        instruction=instruction or record["instruction"],
    )


def to_sft_episode(episode: EpisodeArrays) -> Any:
    """The pld_vla_server training episode: observation t with the executed command t, for t < T."""
    from pld_vla_server.dataset import Episode

    length = len(episode)
    record = episode.record
    return Episode(
        images={cam: frames[:length] for cam, frames in episode.images.items()},
        proprio=episode.proprio[:length],
        actions=episode.command,
        instruction=episode.instruction,
        task=record["task"],
        seed=record["seed"],
        success=record["success"],
        source=record["source"],
        meta={"bag": record["bag"], "t_base": record["t_base"], "provenance": episode.provenance.tolist()},
    )


def load_dataset(root: Path, only_successful: bool = True, tasks: list[str] | None = None) -> list[Any]:
    """The readable episodes in the index as SFT episodes; broken bags are skipped, with a warning."""
    root = Path(root)
    episodes = []
    for record in load_index(root):
        if (only_successful and not record["success"]) or (tasks and record["task"] not in tasks):
            continue
        try:
            episodes.append(to_sft_episode(read_episode(root / record["bag"])))
        except ValueError as exc:
            warnings.warn(f"{root}: skipping {record['bag']}: {exc}", stacklevel=2)
    return episodes
