"""Message <-> numpy conversions of the sim node: round trips, exact bytes, NaN kept, bad shapes refused."""

from __future__ import annotations

import math

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from sensor_msgs.msg import Image

from pld_interfaces.msg import ActionCommand
from pld_sim.ros.conversions import (
    action_command_to_array,
    array_to_action_command,
    clock_msg,
    image_from_msg,
    image_to_msg,
    joint_state_from_msg,
    joint_state_to_msg,
    nanoseconds_to_time,
    observation_from_msg,
    observation_to_msg,
    seconds_to_time,
    time_to_nanoseconds,
    time_to_seconds,
)

RNG = np.random.default_rng(0)


@pytest.mark.parametrize("shape", [(48, 64, 3), (5, 7, 4), (9, 3)])
def test_image_round_trip_keeps_every_byte(shape: tuple[int, ...]) -> None:
    pixels = RNG.integers(0, 256, size=shape, dtype=np.uint8)
    msg = image_to_msg(pixels, Time(sec=3, nanosec=4), "side_camera")
    assert (msg.height, msg.width) == shape[:2]
    assert msg.encoding == {3: "rgb8", 4: "rgba8"}.get(shape[-1] if len(shape) == 3 else 0, "mono8")
    assert msg.step == shape[1] * (shape[2] if len(shape) == 3 else 1)
    assert bytes(msg.data) == pixels.tobytes()
    assert (msg.header.stamp.sec, msg.header.frame_id) == (3, "side_camera")
    back = image_from_msg(msg)
    assert back.dtype == np.uint8 and back.shape == shape
    np.testing.assert_array_equal(back, pixels)


def test_image_from_non_contiguous_array_and_padded_rows() -> None:
    pixels = RNG.integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
    np.testing.assert_array_equal(image_from_msg(image_to_msg(pixels[:, ::2])), pixels[:, ::2])
    # a driver may pad each row (step > width * channels): the padding must not leak into the pixels
    padded = np.zeros((6, 8 * 3 + 4), np.uint8)
    padded[:, : 8 * 3] = pixels.reshape(6, -1)
    msg = Image(height=6, width=8, encoding="rgb8", step=28, data=padded.tobytes())
    np.testing.assert_array_equal(image_from_msg(msg), pixels)


def test_bad_images_are_refused() -> None:
    with pytest.raises(ValueError, match="uint8"):
        image_to_msg(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ValueError, match="shape"):
        image_to_msg(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(ValueError, match="encoding"):
        image_from_msg(Image(height=1, width=1, encoding="16UC1", step=2, data=b"\0\0"))
    with pytest.raises(ValueError, match="bytes"):
        image_from_msg(Image(height=2, width=2, encoding="rgb8", step=6, data=bytes(11)))


def test_time_conversions_are_exact_in_nanoseconds() -> None:
    assert time_to_nanoseconds(nanoseconds_to_time(12_345_678_901)) == 12_345_678_901
    stamp = seconds_to_time(1.9999999999)  # rounds up to the next second, never nanosec == 1e9
    assert (stamp.sec, stamp.nanosec) == (2, 0)
    stamp = seconds_to_time(3.25)
    assert (stamp.sec, stamp.nanosec) == (3, 250_000_000)
    assert time_to_seconds(stamp) == 3.25
    assert clock_msg(stamp).clock == stamp
    with pytest.raises(ValueError):
        nanoseconds_to_time(-1)


def _observation(size: int = 16) -> dict:
    return {
        "images": {
            "side": RNG.integers(0, 256, size=(size, size, 3), dtype=np.uint8),
            "wrist": RNG.integers(0, 256, size=(size, size, 3), dtype=np.uint8),
        },
        "proprio": np.array([0.5, -0.25, 1.0, 0.125], np.float32),
        "privileged": np.zeros(3, np.float32),
        "instruction": "pick up the blue cube",
    }


def test_observation_round_trip() -> None:
    obs = _observation()
    names = ["tcp_x", "tcp_y", "tcp_z", "gripper_width"]
    stamp = nanoseconds_to_time(2_050_000_000)
    msg = observation_to_msg(obs, names, stamp, "base", episode_id=4, step=17)
    assert msg.camera_names == ["side", "wrist"]
    assert all(image.header.stamp == stamp for image in msg.images)
    assert msg.header.stamp == stamp and msg.header.frame_id == "base"
    back = observation_from_msg(msg)
    assert (back["episode_id"], back["step"], back["stamp_ns"], back["frame_id"]) == (
        4,
        17,
        2_050_000_000,
        "base",
    )
    assert back["proprio_names"] == names
    np.testing.assert_array_equal(back["proprio"], obs["proprio"])
    for name, pixels in obs["images"].items():
        np.testing.assert_array_equal(back["images"][name], pixels)


def test_observation_needs_one_name_per_proprio_value() -> None:
    with pytest.raises(ValueError, match="proprio names"):
        observation_to_msg(_observation(), ["tcp_x"], Time(), "base")


def test_action_command_round_trip_keeps_nan_and_inf() -> None:
    command = [0.01, -0.02, 0.0, float("nan"), 0.05, float("inf"), 1.0]
    msg = array_to_action_command(
        command, provenance=ActionCommand.PROVENANCE_RESIDUAL, episode_id=2, step=9, frame_id="base"
    )
    assert (msg.provenance, msg.episode_id, msg.step) == (ActionCommand.PROVENANCE_RESIDUAL, 2, 9)
    back = action_command_to_array(msg)
    assert back.shape == (7,) and back.dtype == np.float64
    assert math.isnan(back[3]) and math.isinf(back[5])
    np.testing.assert_allclose(back[[0, 1, 2, 4, 6]], np.float32([0.01, -0.02, 0.0, 0.05, 1.0]))
    np.testing.assert_array_equal(msg.base, np.zeros(7, np.float32))


def test_action_command_of_the_wrong_length_is_refused_when_built() -> None:
    for bad in ([0.0] * 6, [0.0] * 8, np.zeros((7, 1, 2))):
        with pytest.raises(ValueError, match="7 values"):
            array_to_action_command(bad)
    with pytest.raises(ValueError, match="residual"):
        array_to_action_command([0.0] * 7, residual=[0.0] * 3)


def test_action_command_to_array_passes_a_wrong_length_through_for_the_driver_to_reject() -> None:
    msg = ActionCommand()
    msg._command = np.zeros(6, np.float32)  # only possible in-process: over DDS the field is float32[7]
    assert action_command_to_array(msg).shape == (6,)


def test_joint_state_round_trip_and_length_check() -> None:
    names = ["j1", "j2", "j3"]
    msg = joint_state_to_msg(names, np.array([0.1, 0.2, 0.3]), [1.0, 2.0, 3.0], stamp=Time(sec=5))
    back = joint_state_from_msg(msg)
    assert back["name"] == names and msg.header.stamp.sec == 5
    np.testing.assert_array_equal(back["position"], [0.1, 0.2, 0.3])
    np.testing.assert_array_equal(back["velocity"], [1.0, 2.0, 3.0])
    assert back["effort"].size == 0
    with pytest.raises(ValueError, match="position"):
        joint_state_to_msg(names, [0.0, 1.0])
