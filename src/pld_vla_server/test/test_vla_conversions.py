"""VLA-side conversions: Observation -> VLAObservation (rgb images by name), ActionChunk round trip."""

from __future__ import annotations

import numpy as np
import pytest
from builtin_interfaces.msg import Time

from pld_interfaces.msg import ActionChunk as ActionChunkMsg
from pld_sim.ros.conversions import image_to_msg, observation_to_msg
from pld_vla_server.ros.conversions import (
    action_chunk_from_msg,
    action_chunk_to_msg,
    vla_observation_from_msg,
)
from pld_vla_server.types import ActionChunk

RNG = np.random.default_rng(0)
NAMES = [f"p{i}" for i in range(15)]


def observation_msg(size: int = 16, cameras: tuple[str, ...] = ("side", "wrist")):
    images = {name: RNG.integers(0, 256, (size, size, 3), dtype=np.uint8) for name in cameras}
    proprio = RNG.normal(size=15).astype(np.float32)
    msg = observation_to_msg({"images": images, "proprio": proprio}, NAMES, Time(sec=3, nanosec=7), "base")
    return msg, (images, proprio)


def test_observation_becomes_images_by_camera_name_and_float32_proprio() -> None:
    msg, (images, proprio) = observation_msg()
    obs = vla_observation_from_msg(msg, "pick up the blue cube")
    assert obs.instruction == "pick up the blue cube"
    assert list(obs.images) == ["side", "wrist"]
    for name, image in images.items():
        assert obs.images[name].dtype == np.uint8 and np.array_equal(obs.images[name], image)
    assert obs.proprio.dtype == np.float32 and np.array_equal(obs.proprio, proprio)
    assert vla_observation_from_msg(msg).instruction == ""  # the server fills it in


def test_bgr_and_alpha_images_arrive_as_rgb() -> None:
    msg, (images, _) = observation_msg(cameras=("side",))
    rgb = images["side"]
    bgr = image_to_msg(np.ascontiguousarray(rgb[:, :, ::-1]))
    bgr.encoding = "bgr8"
    msg.images = [bgr]
    assert np.array_equal(vla_observation_from_msg(msg).images["side"], rgb)
    rgba = np.concatenate([rgb, np.full((*rgb.shape[:2], 1), 255, np.uint8)], axis=2)
    msg.images = [image_to_msg(rgba)]
    assert np.array_equal(vla_observation_from_msg(msg).images["side"], rgb)
    bgra = image_to_msg(np.ascontiguousarray(rgba[:, :, [2, 1, 0, 3]]))
    bgra.encoding = "bgra8"
    msg.images = [bgra]
    assert np.array_equal(vla_observation_from_msg(msg).images["side"], rgb)


def test_mono_image_stays_two_dimensional_for_validation_to_name() -> None:
    msg, _ = observation_msg(cameras=("side",))
    msg.images = [image_to_msg(np.zeros((16, 16), np.uint8))]
    assert vla_observation_from_msg(msg).images["side"].shape == (16, 16)


@pytest.mark.parametrize("defect", ["names", "duplicate", "bytes", "encoding", "proprio"])
def test_malformed_observations_raise_value_error(defect: str) -> None:
    msg, _ = observation_msg()
    if defect == "names":
        msg.camera_names = ["side"]
    elif defect == "duplicate":
        msg.camera_names = ["side", "side"]
    elif defect == "bytes":
        msg.images[0].data = bytes(10)
    elif defect == "encoding":
        msg.images[0].encoding = "32FC1"
    else:
        msg.proprio_names = NAMES[:3]
    with pytest.raises(ValueError, match=r"^observation\.(images|camera_names|proprio)"):
        vla_observation_from_msg(msg)


def test_action_chunk_round_trip_keeps_values_stamp_and_features() -> None:
    actions = RNG.normal(size=(10, 7)).astype(np.float32)
    features = RNG.normal(size=32).astype(np.float32)
    chunk = ActionChunk(actions, features, 3.5, "small_vla:abc")
    msg = action_chunk_to_msg(chunk, Time(sec=12, nanosec=345), "base")
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id) == (12, 345, "base")
    assert (msg.horizon, msg.action_dim, msg.model_id) == (10, 7, "small_vla:abc")
    assert msg.inference_time_ms == pytest.approx(3.5)
    back = action_chunk_from_msg(msg)
    assert np.array_equal(back.actions, actions) and np.array_equal(back.features, features)
    assert back.model_id == "small_vla:abc"
    # the server's own timing replaces the backend's; a chunk without features sends none
    msg = action_chunk_to_msg(ActionChunk(actions), Time(), inference_ms=9.25)
    assert msg.inference_time_ms == pytest.approx(9.25) and len(msg.features) == 0
    assert action_chunk_from_msg(msg).features is None


def test_inconsistent_chunk_message_is_refused() -> None:
    msg = action_chunk_to_msg(ActionChunk(np.zeros((4, 7))), Time())
    msg.horizon = 5
    with pytest.raises(ValueError, match="actions"):
        action_chunk_from_msg(msg)
    msg = ActionChunkMsg(horizon=4, action_dim=6, actions=np.zeros(24, np.float32).tolist())
    with pytest.raises(ValueError, match="action_dim"):
        action_chunk_from_msg(msg)
