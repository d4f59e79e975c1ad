"""Our bags open with readers that are not ours: `mcap` + `mcap-ros2-support`, and `rosbags` on its own.

Both decode from the definitions stored in the bag (our typestore is not used), so a user without our
workspace can read a PLD dataset.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory
from rosbags.highlevel import AnyReader

from pld_residual.dataset.writer import DatasetWriter

TOPICS = {
    "/observation": 6,
    "/joint_states": 6,
    "/camera/side/image_raw": 6,
    "/camera/wrist/image_raw": 6,
    "/command": 5,
    "/reward": 5,
    "/episode": 3,
    "/instruction": 1,
}


def _bag(dataset_root: Path, write_episode: Callable) -> Path:
    with DatasetWriter(dataset_root) as dataset:
        record = write_episode(dataset, steps=5, t_base=2, seed=4)
    return dataset_root / record["bag"]


def test_mcap_ros2_decodes_every_message(
    dataset_root: Path, write_episode: Callable, expected: Callable
) -> None:
    bag = _bag(dataset_root, write_episode)
    (mcap_file,) = bag.glob("*.mcap")
    want = expected(5, 4)
    counts: Counter[str] = Counter()
    commands, side_images = [], []
    with open(mcap_file, "rb") as handle:
        reader = make_reader(handle, decoder_factories=[DecoderFactory()])
        summary = reader.get_summary()
        assert summary is not None and summary.statistics.message_count == sum(TOPICS.values())
        assert {schema.encoding for schema in summary.schemas.values()} == {"ros2msg"}
        decoded = [(channel.topic, msg) for _schema, channel, _message, msg in reader.iter_decoded_messages()]
    for topic, msg in decoded:  # each decoded from the schema stored in the file
        counts[topic] += 1
        if topic == "/command":
            commands.append((msg.step, msg.provenance, list(msg.base)))
        elif topic == "/camera/side/image_raw":
            side_images.append(np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.width, 3))
        elif topic == "/observation":
            assert list(msg.camera_names) == ["side", "wrist"] and len(msg.images) == 2
        elif topic == "/instruction":
            assert msg.data == "pick up the red cube"
    assert dict(counts) == TOPICS
    assert [c[0] for c in commands] == [0, 1, 2, 3, 4] and [c[1] for c in commands] == [0, 0, 1, 1, 1]
    np.testing.assert_allclose([c[2] for c in commands], want["base"], atol=1e-7)
    np.testing.assert_array_equal(np.stack(side_images), want["images"]["side"])


def test_rosbags_decodes_every_message_from_the_bag_alone(
    dataset_root: Path, write_episode: Callable, expected: Callable
) -> None:
    bag = _bag(dataset_root, write_episode)
    want = expected(5, 4)
    counts: Counter[str] = Counter()
    with AnyReader([bag]) as reader:  # builds its types from the bag's stored definitions
        assert reader.message_count == sum(TOPICS.values())
        for connection, _stamp, raw in reader.messages():
            msg = reader.deserialize(raw, connection.msgtype)
            counts[connection.topic] += 1
            if connection.topic == "/observation":
                np.testing.assert_array_equal(msg.proprio, want["proprio"][msg.step])
            elif connection.topic == "/joint_states":
                assert list(msg.name) == ["joint1", "joint2"]
    assert dict(counts) == TOPICS
