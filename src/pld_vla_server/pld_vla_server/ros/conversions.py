"""Message <-> numpy conversions of the VLA server. Pure functions, unit-tested once.

Images are decoded with `pld_sim.ros.conversions.image_from_msg` so every node reads the sim's (and
the drivers') topics the same way; this module adds what the VLA side needs: an `Observation`
message as a `VLAObservation` (rgb8 images by camera name) and `ActionChunk` dataclass <-> message.
"""

from __future__ import annotations

import array

import numpy as np
from builtin_interfaces.msg import Time
from std_msgs.msg import Header

from pld_interfaces.msg import ActionChunk as ActionChunkMsg
from pld_interfaces.msg import Observation
from pld_sim.ros.conversions import image_from_msg
from pld_vla_server.types import ACTION_DIM, ActionChunk, VLAObservation


def _to_rgb(image: np.ndarray, encoding: str) -> np.ndarray:
    """Decoded image of a uint8 encoding -> HxWx3 rgb; mono8 stays HxW so validation names the camera."""
    if encoding == "bgr8":
        return np.ascontiguousarray(image[:, :, ::-1])
    if encoding == "rgba8":
        return np.ascontiguousarray(image[:, :, :3])
    if encoding == "bgra8":
        return np.ascontiguousarray(image[:, :, 2::-1])
    return image


def vla_observation_from_msg(msg: Observation, instruction: str = "") -> VLAObservation:
    """pld_interfaces/Observation -> VLAObservation (rgb8 images by camera name, float32 proprio).

    The message carries no instruction (it is server state, from the latched `instruction` topic), so
    it is given here. Raises ValueError naming the field for a malformed message (name/value counts,
    duplicate camera names, image byte counts, unsupported encodings); sizes against a backend's
    `InputSpec` are checked by `validate_observation`, not here.
    """
    names = list(msg.camera_names)
    if len(names) != len(msg.images):
        raise ValueError(f"observation.images: {len(names)} camera names for {len(msg.images)} images")
    if len(set(names)) != len(names):
        raise ValueError(f"observation.camera_names: duplicate names in {names}")
    if len(msg.proprio_names) != len(msg.proprio):
        raise ValueError(f"observation.proprio: {len(msg.proprio_names)} names for {len(msg.proprio)} values")
    images = {}
    for name, image in zip(names, msg.images, strict=True):
        try:
            images[name] = _to_rgb(image_from_msg(image), image.encoding)
        except ValueError as exc:
            raise ValueError(f"observation.images[{name!r}]: {exc}") from None
    proprio = np.array(msg.proprio, dtype=np.float32)
    return VLAObservation(images=images, proprio=proprio, instruction=instruction)


def _float32_array(values: np.ndarray) -> array.array:
    """float32[] field value through bytes (element-wise assignment of numpy arrays is very slow)."""
    out = array.array("f")
    out.frombytes(np.ascontiguousarray(values, dtype=np.float32).ravel().tobytes())
    return out


def action_chunk_to_msg(
    chunk: ActionChunk, stamp: Time, frame_id: str = "", inference_ms: float | None = None
) -> ActionChunkMsg:
    """ActionChunk dataclass -> message; `stamp` is the stamp of the observation the chunk answers.

    `inference_ms` overrides the backend's own timing (the server measures every backend the same way).
    """
    features = chunk.features if chunk.features is not None else np.zeros(0, np.float32)
    return ActionChunkMsg(
        header=Header(stamp=stamp, frame_id=frame_id),
        horizon=chunk.horizon,
        action_dim=int(chunk.actions.shape[1]),
        actions=_float32_array(chunk.actions),
        features=_float32_array(features),
        model_id=chunk.model_id,
        inference_time_ms=float(chunk.inference_ms if inference_ms is None else inference_ms),
    )


def action_chunk_from_msg(msg: ActionChunkMsg) -> ActionChunk:
    """Message -> ActionChunk dataclass (actions [horizon, action_dim]); ValueError on inconsistent sizes."""
    if msg.action_dim != ACTION_DIM:
        raise ValueError(f"action_chunk.action_dim: expected {ACTION_DIM}, got {msg.action_dim}")
    if msg.horizon < 1 or len(msg.actions) != msg.horizon * msg.action_dim:
        raise ValueError(
            f"action_chunk.actions: {len(msg.actions)} values for horizon {msg.horizon} x {msg.action_dim}"
        )
    actions = np.array(msg.actions, dtype=np.float32).reshape(msg.horizon, msg.action_dim)
    features = np.array(msg.features, dtype=np.float32) if len(msg.features) else None
    return ActionChunk(actions, features, float(msg.inference_time_ms), msg.model_id)
