"""Observation -> classifier input and judgement -> Reward, for the reward and label nodes. Pure functions.

`frame_from_msg` is where an observation is refused before it reaches the classifier: every refusal is an
`InvalidFrame` with a short `reason` (the key of the nodes' `invalid` counters) and a message naming the
camera or field. Only the cameras the classifier reads are converted; extra cameras are ignored.

Reasons:
  malformed       camera_names / images lengths differ, a camera name repeats, image data of the wrong length
  missing_camera  a camera the classifier needs is not in the observation
  encoding        a needed image is not rgb8 (bgr8 would be judged with swapped colours, so it is refused)
  image_size      a needed image is not image_size x image_size
  proprio         (classifiers that read proprioception) wrong length, NaN or inf
"""

from __future__ import annotations

from typing import Any

import numpy as np
from std_msgs.msg import Header

from pld_interfaces.msg import Observation, Reward
from pld_reward.config import ClassifierConfig
from pld_reward.preprocess import FrameError, check_frame, proprio_input
from pld_sim.ros.conversions import image_from_msg

ENCODING = "rgb8"


InvalidFrame = FrameError  # the core's refusal, with its `reason`; the message checks below add theirs


def frame_from_msg(
    msg: Observation, cfg: ClassifierConfig
) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """(images of cfg.cameras as HxWx3 uint8, proprio float32 or None when the classifier ignores it).

    The message-level checks live here (names vs images, encoding, decodable data); cameras, sizes and
    proprio are checked by the classifier's own `preprocess` functions, the same as in sim and training.
    """
    names = list(msg.camera_names)
    if len(names) != len(msg.images):
        raise InvalidFrame("malformed", f"{len(names)} camera names for {len(msg.images)} images")
    if len(set(names)) != len(names):
        raise InvalidFrame("malformed", f"camera names repeat: {names}")
    by_name = dict(zip(names, msg.images, strict=True))
    images = {}
    for name in cfg.cameras:
        image = by_name.get(name)
        if image is None:
            continue  # check_frame names every missing camera at once
        if image.encoding != ENCODING:
            raise InvalidFrame(
                "encoding", f"camera {name!r}: encoding {image.encoding!r}, expected {ENCODING!r}"
            )
        try:
            images[name] = image_from_msg(image)
        except ValueError as exc:
            raise InvalidFrame("malformed", f"camera {name!r}: {exc}") from None
    check_frame(images, cfg)
    proprio = proprio_input(msg.proprio, cfg) if cfg.use_proprio else None
    return images, proprio


def reward_to_msg(header: Header, probability: float, success: bool, stage: int) -> Reward:
    """One Reward; `header` is the judged observation's (its stamp says which frame was judged)."""
    return Reward(
        header=Header(stamp=header.stamp, frame_id=header.frame_id),
        success_probability=float(probability),
        success=bool(success),
        stage=int(stage),
    )


def reward_from_msg(msg: Reward) -> dict[str, Any]:
    return {
        "stamp_ns": msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec,
        "success_probability": float(msg.success_probability),
        "success": bool(msg.success),
        "stage": int(msg.stage),
    }
