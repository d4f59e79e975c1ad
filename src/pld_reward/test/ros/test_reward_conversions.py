"""Observation -> classifier input (refusal reasons) and Reward construction, as pure functions."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.ros  # message types


def cfg(**changes):
    from pld_reward.config import ClassifierConfig

    return ClassifierConfig(image_size=32, input_size=16, **changes)


def msg(cameras=("side", "wrist"), size: int = 32, proprio=(0.0, 1.0, 2.0)):
    from pld_sim.ros.conversions import nanoseconds_to_time, observation_to_msg

    rng = np.random.default_rng(0)
    images = {name: rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for name in cameras}
    obs = {"images": images, "proprio": np.asarray(proprio, np.float32)}
    names = [f"p{i}" for i in range(len(proprio))]
    return observation_to_msg(obs, names, nanoseconds_to_time(5_000_000_123), "base"), images


def test_the_classifier_cameras_come_out_in_order_and_extra_ones_are_ignored() -> None:
    from pld_reward.ros.reward_conversions import frame_from_msg

    observation, images = msg(cameras=("wrist", "top", "side"))
    out, proprio = frame_from_msg(observation, cfg())
    assert list(out) == ["side", "wrist"] and proprio is None
    for name in out:
        np.testing.assert_array_equal(out[name], images[name])
    _, proprio = frame_from_msg(observation, cfg(use_proprio=True, proprio_dim=3))
    np.testing.assert_array_equal(proprio, [0, 1, 2])


def test_refusals_carry_their_reason() -> None:
    from pld_reward.ros.reward_conversions import InvalidFrame, frame_from_msg

    def reason(observation, **changes) -> str:
        with pytest.raises(InvalidFrame) as excinfo:
            frame_from_msg(observation, cfg(**changes))
        return excinfo.value.reason

    assert reason(msg(cameras=("side",))[0]) == "missing_camera"
    assert reason(msg(size=64)[0]) == "image_size"
    observation = msg()[0]
    observation.images[0].encoding = "bgr8"
    assert reason(observation) == "encoding"
    observation = msg()[0]
    observation.images[1].data = bytes(5)
    assert reason(observation) == "malformed"
    observation = msg()[0]
    observation.camera_names = ["side", "side"]
    assert reason(observation) == "malformed"
    assert reason(msg(proprio=(0.0, np.nan, 1.0))[0], use_proprio=True, proprio_dim=3) == "proprio"
    assert reason(msg(proprio=(0.0, 1.0))[0], use_proprio=True, proprio_dim=3) == "proprio"
    frame_from_msg(msg(proprio=(np.nan,))[0], cfg())  # ignored when the classifier does not read it


def test_reward_message_keeps_the_observation_header() -> None:
    from pld_reward.ros.reward_conversions import reward_from_msg, reward_to_msg

    observation = msg()[0]
    reward = reward_to_msg(observation.header, np.float32(0.25), np.bool_(True), 3)
    assert reward.header.stamp == observation.header.stamp and reward.header.frame_id == "base"
    assert reward_from_msg(reward) == {
        "stamp_ns": 5_000_000_123,
        "success_probability": 0.25,
        "success": True,
        "stage": 3,
    }
