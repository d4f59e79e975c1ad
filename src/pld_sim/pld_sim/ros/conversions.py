"""Message <-> numpy conversions for the sim node (and any node that reads its topics). Pure functions.

Kept in one module so every node converts the same way and the conversions are unit-tested once.
Byte payloads go through `tobytes()` / `np.frombuffer`: assigning numpy arrays element-wise to message
fields is ~1000x slower (design.md §6).
"""

from __future__ import annotations

import array
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from builtin_interfaces.msg import Time
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Header

from pld_interfaces.msg import ActionCommand, Observation, Reward

ACTION_DIM = 7
# encoding -> channels of the uint8 encodings we produce and read
ENCODING_CHANNELS = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1}
_NS_PER_S = 1_000_000_000


# ---------------------------------------------------------------------- time


def nanoseconds_to_time(nanoseconds: int) -> Time:
    """Integer nanoseconds -> Time (exact; the sim driver keeps its clock in ns)."""
    nanoseconds = int(nanoseconds)
    if nanoseconds < 0:
        raise ValueError(f"time must be non-negative, got {nanoseconds} ns")
    sec, nanosec = divmod(nanoseconds, _NS_PER_S)
    return Time(sec=sec, nanosec=nanosec)


def time_to_nanoseconds(stamp: Time) -> int:
    return stamp.sec * _NS_PER_S + stamp.nanosec


def seconds_to_time(seconds: float) -> Time:
    """Seconds -> Time, rounded to the nearest nanosecond (never nanosec == 1e9)."""
    return nanoseconds_to_time(round(float(seconds) * _NS_PER_S))


def time_to_seconds(stamp: Time) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def clock_msg(stamp: Time) -> Clock:
    return Clock(clock=stamp)


# ---------------------------------------------------------------------- images


def image_to_msg(image: np.ndarray, stamp: Time | None = None, frame_id: str = "") -> Image:
    """HxWx3 (rgb8), HxWx4 (rgba8) or HxW (mono8) uint8 array -> sensor_msgs/Image."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"image must be uint8, got {image.dtype}")
    if image.ndim == 2:
        encoding = "mono8"
    elif image.ndim == 3 and image.shape[2] in (3, 4):
        encoding = "rgb8" if image.shape[2] == 3 else "rgba8"
    else:
        raise ValueError(f"image must be HxW, HxWx3 or HxWx4, got shape {image.shape}")
    height, width = image.shape[:2]
    channels = 1 if image.ndim == 2 else image.shape[2]
    return Image(
        header=Header(stamp=stamp or Time(), frame_id=frame_id),
        height=height,
        width=width,
        encoding=encoding,
        is_bigendian=0,
        step=width * channels,
        data=np.ascontiguousarray(image).tobytes(),
    )


def image_from_msg(msg: Image) -> np.ndarray:
    """sensor_msgs/Image (uint8 encodings) -> HxWxC array (HxW for mono8), a copy with row padding removed."""
    channels = ENCODING_CHANNELS.get(msg.encoding)
    if channels is None:
        raise ValueError(
            f"unsupported image encoding {msg.encoding!r}; supported: {sorted(ENCODING_CHANNELS)}"
        )
    row = msg.width * channels
    if msg.step < row or len(msg.data) != msg.step * msg.height:
        raise ValueError(
            f"image data has {len(msg.data)} bytes, expected step {msg.step} (>= {row}) x height {msg.height}"
        )
    flat = np.frombuffer(msg.data, dtype=np.uint8).reshape(msg.height, msg.step)[:, :row]
    shape = (msg.height, msg.width) if channels == 1 else (msg.height, msg.width, channels)
    return flat.reshape(shape).copy()


# ---------------------------------------------------------------------- observation


def _float_array(values: Any, typecode: str) -> array.array:
    """A numeric vector as the array.array rosidl keeps for float32[] ('f') / float64[] ('d') fields."""
    dtype = np.float32 if typecode == "f" else np.float64
    out = array.array(typecode)
    out.frombytes(np.ascontiguousarray(values, dtype=dtype).ravel().tobytes())
    return out


def observation_to_msg(
    obs: Mapping[str, Any],
    proprio_names: Sequence[str],
    stamp: Time,
    frame_id: str,
    episode_id: int = 0,
    step: int = 0,
) -> Observation:
    """Env observation dict -> pld_interfaces/Observation; every image carries the same stamp.

    Image frame ids are '<camera>_camera'. The instruction and privileged state are not part of the
    robot's observation (the instruction comes from the Reset service, privileged state is sim-only).
    """
    proprio = np.asarray(obs["proprio"])
    if len(proprio_names) != proprio.size:
        raise ValueError(f"{len(proprio_names)} proprio names for {proprio.size} proprio values")
    images = obs.get("images", {})
    return Observation(
        header=Header(stamp=stamp, frame_id=frame_id),
        camera_names=list(images),
        images=[image_to_msg(image, stamp, f"{name}_camera") for name, image in images.items()],
        proprio_names=list(proprio_names),
        proprio=_float_array(proprio, "f"),
        episode_id=int(episode_id),
        step=int(step),
    )


def observation_from_msg(msg: Observation) -> dict[str, Any]:
    """pld_interfaces/Observation -> dict with the env's keys (`images`, `proprio`) plus the metadata."""
    if len(msg.camera_names) != len(msg.images):
        raise ValueError(f"{len(msg.camera_names)} camera names for {len(msg.images)} images")
    if len(msg.proprio_names) != len(msg.proprio):
        raise ValueError(f"{len(msg.proprio_names)} proprio names for {len(msg.proprio)} proprio values")
    return {
        "images": {
            name: image_from_msg(image) for name, image in zip(msg.camera_names, msg.images, strict=True)
        },
        "proprio": np.array(msg.proprio, dtype=np.float32),
        "proprio_names": list(msg.proprio_names),
        "episode_id": msg.episode_id,
        "step": msg.step,
        "stamp_ns": time_to_nanoseconds(msg.header.stamp),
        "frame_id": msg.header.frame_id,
    }


# ---------------------------------------------------------------------- commands


def action_command_to_array(msg: ActionCommand) -> np.ndarray:
    """The executed command as float64 (n,), unvalidated: NaN stays NaN so the driver can reject it."""
    return np.array(msg.command, dtype=np.float64).ravel()


def array_to_action_command(
    command: Sequence[float] | np.ndarray,
    *,
    base: Sequence[float] | np.ndarray | None = None,
    residual: Sequence[float] | np.ndarray | None = None,
    provenance: int = ActionCommand.PROVENANCE_BASE,
    episode_id: int = 0,
    step: int = 0,
    stamp: Time | None = None,
    frame_id: str = "",
) -> ActionCommand:
    """Build an ActionCommand; raises ValueError for a vector that is not 7 long.

    The check matters on the sending side: rosidl's C conversion silently truncates a longer
    `float32[7]` and reads past the end of a shorter one, so a receiver can never see the mistake.
    Non-finite values are allowed through (the receiving driver rejects them).
    """

    def vector(name: str, values: Any) -> np.ndarray:
        out = np.zeros(ACTION_DIM, np.float32) if values is None else np.asarray(values, np.float32).ravel()
        if out.shape != (ACTION_DIM,):
            raise ValueError(f"{name} must have {ACTION_DIM} values, got {out.size}")
        return out

    return ActionCommand(
        header=Header(stamp=stamp or Time(), frame_id=frame_id),
        command=vector("command", command),
        base=vector("base", base),
        residual=vector("residual", residual),
        provenance=int(provenance),
        episode_id=int(episode_id),
        step=int(step),
    )


# ---------------------------------------------------------------------- joints


def joint_state_to_msg(
    names: Sequence[str],
    positions: Sequence[float] | np.ndarray,
    velocities: Sequence[float] | np.ndarray | None = None,
    efforts: Sequence[float] | np.ndarray | None = None,
    stamp: Time | None = None,
) -> JointState:
    """Joint names and vectors -> sensor_msgs/JointState (velocity / effort left empty when None)."""
    vectors = {"position": positions, "velocity": velocities, "effort": efforts}
    msg = JointState(header=Header(stamp=stamp or Time()), name=list(names))
    for field_name, values in vectors.items():
        if values is None:
            continue
        values = _float_array(values, "d")
        if len(values) != len(msg.name):
            raise ValueError(f"{len(values)} {field_name} values for {len(msg.name)} joints")
        setattr(msg, field_name, values)
    return msg


def joint_state_from_msg(msg: JointState) -> dict[str, np.ndarray | list[str]]:
    return {
        "name": list(msg.name),
        "position": np.array(msg.position, dtype=np.float64),
        "velocity": np.array(msg.velocity, dtype=np.float64),
        "effort": np.array(msg.effort, dtype=np.float64),
    }


def predicate_reward_msg(success: bool, stamp: Time, frame_id: str = "", stage: int = 0) -> Reward:
    """The simulator's success predicate as a Reward (probability 1 or 0) for the observation at `stamp`."""
    msg = Reward(success_probability=1.0 if success else 0.0, success=bool(success), stage=int(stage))
    msg.header.stamp, msg.header.frame_id = stamp, frame_id
    return msg
