"""numpy <-> rosbags message objects for the dataset topics. Pure functions, no rclpy.

Stamps are integer nanoseconds (the sim keeps its clock in ns). Images are uint8 HxWx3 (rgb8) arrays.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from rosbags.typesys.store import Typestore

ACTION_DIM = 7
_NS_PER_S = 1_000_000_000


def _header(store: Typestore, stamp_ns: int, frame_id: str = "") -> Any:
    if stamp_ns < 0:
        raise ValueError(f"stamp must be non-negative, got {stamp_ns} ns")
    sec, nanosec = divmod(int(stamp_ns), _NS_PER_S)
    time = store.types["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec)
    return store.types["std_msgs/msg/Header"](stamp=time, frame_id=frame_id)


def stamp_ns(header: Any) -> int:
    return int(header.stamp.sec) * _NS_PER_S + int(header.stamp.nanosec)


def image_msg(store: Typestore, image: np.ndarray, stamp: int, frame_id: str = "") -> Any:
    """HxWx3 uint8 -> sensor_msgs/Image (rgb8)."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"images must be HxWx3 uint8 (rgb8), got {image.dtype} {image.shape}")
    height, width = image.shape[:2]
    return store.types["sensor_msgs/msg/Image"](
        header=_header(store, stamp, frame_id),
        height=height,
        width=width,
        encoding="rgb8",
        is_bigendian=0,
        step=width * 3,
        data=np.ascontiguousarray(image).reshape(-1),
    )


def image_array(msg: Any) -> np.ndarray:
    """sensor_msgs/Image (rgb8) -> HxWx3 uint8, with any row padding removed."""
    if msg.encoding != "rgb8":
        raise ValueError(f"dataset images are rgb8, got {msg.encoding!r}")
    data = np.asarray(msg.data, dtype=np.uint8)
    if msg.step < msg.width * 3 or data.size != msg.step * msg.height:
        raise ValueError(f"image has {data.size} bytes for step {msg.step} x height {msg.height}")
    return data.reshape(msg.height, msg.step)[:, : msg.width * 3].reshape(msg.height, msg.width, 3).copy()


def observation_msg(
    store: Typestore,
    images: Mapping[str, np.ndarray],
    proprio: np.ndarray,
    proprio_names: Sequence[str],
    stamp: int,
    episode_id: int,
    step: int,
    frame_id: str = "base",
) -> Any:
    """Camera images + proprioception -> pld_interfaces/Observation (image frames '<camera>_camera')."""
    proprio = np.asarray(proprio, np.float32).ravel()
    if len(proprio_names) != proprio.size:
        raise ValueError(f"{len(proprio_names)} proprio names for {proprio.size} proprio values")
    return store.types["pld_interfaces/msg/Observation"](
        header=_header(store, stamp, frame_id),
        camera_names=list(images),
        images=[image_msg(store, image, stamp, f"{name}_camera") for name, image in images.items()],
        proprio_names=list(proprio_names),
        proprio=proprio,
        episode_id=int(episode_id),
        step=int(step),
    )


def joint_state_msg(store: Typestore, names: Sequence[str], positions: np.ndarray, stamp: int) -> Any:
    positions = np.asarray(positions, np.float64).ravel()
    if len(names) != positions.size:
        raise ValueError(f"{positions.size} joint positions for {len(names)} joint names")
    empty = np.zeros(0, np.float64)
    return store.types["sensor_msgs/msg/JointState"](
        header=_header(store, stamp), name=list(names), position=positions, velocity=empty, effort=empty
    )


def _vector(name: str, values: Any) -> np.ndarray:
    out = np.zeros(ACTION_DIM, np.float32) if values is None else np.asarray(values, np.float32).ravel()
    if out.shape != (ACTION_DIM,):
        raise ValueError(f"{name} must have {ACTION_DIM} values, got {out.size}")
    return out


def command_msg(
    store: Typestore,
    command: np.ndarray,
    base: np.ndarray | None,
    residual: np.ndarray | None,
    provenance: int,
    stamp: int,
    episode_id: int,
    step: int,
) -> Any:
    """The executed command with the base action, the raw residual and who decided it."""
    return store.types["pld_interfaces/msg/ActionCommand"](
        header=_header(store, stamp, "base"),
        command=_vector("command", command),
        base=_vector("base", base),
        residual=_vector("residual", residual),
        provenance=int(provenance),
        episode_id=int(episode_id),
        step=int(step),
    )


def reward_msg(store: Typestore, probability: float, success: bool, stamp: int, stage: int = 0) -> Any:
    return store.types["pld_interfaces/msg/Reward"](
        header=_header(store, stamp),
        success_probability=float(probability),
        success=bool(success),
        stage=int(stage),
    )


def episode_event_msg(
    store: Typestore,
    *,
    stamp: int,
    episode_id: int,
    phase: int,
    t_base: int,
    step: int,
    success: bool,
    end_reason: int,
    task: str,
    instruction: str,
    seed: int = 0,
) -> Any:
    return store.types["pld_interfaces/msg/EpisodeEvent"](
        header=_header(store, stamp),
        episode_id=int(episode_id),
        phase=int(phase),
        t_base=int(t_base),
        step=int(step),
        seed=int(seed),
        success=bool(success),
        end_reason=int(end_reason),
        task=task,
        instruction=instruction,
    )


def string_msg(store: Typestore, text: str) -> Any:
    return store.types["std_msgs/msg/String"](data=text)
