"""LiveLabeller and the keyboard loop: labels follow the marks, shards read back with the human labeller,
ids never collide, bad frames are refused before anything is stored; keys driven from io.StringIO."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from pld_reward.config import ClassifierConfig
from pld_reward.frames import list_shards, load_frames, read_episode
from pld_reward.labelling import LiveLabeller, handle_key, keyboard_loop
from pld_reward.preprocess import FrameError, frame_input

CFG = ClassifierConfig(image_size=32, input_size=16, encoder_widths=(4, 4, 4, 4), head_hidden=8)


def frame(value: int) -> dict[str, np.ndarray]:
    return {name: np.full((32, 32, 3), value, np.uint8) for name in CFG.cameras}


def add(labeller: LiveLabeller, values: list[int]) -> None:
    for value in values:
        assert labeller.add_frame(frame(value), np.full(3, value, np.float32), step=value)


def test_labels_follow_the_marks_and_the_shard_reads_back(tmp_path: Path) -> None:
    labeller = LiveLabeller(CFG, tmp_path, "pick_cube")
    add(labeller, [0, 1])
    labeller.mark(True)
    add(labeller, [2, 3, 4])
    labeller.mark(False)
    add(labeller, [5])
    labeller.mark(True)
    add(labeller, [6])
    assert (labeller.frames, labeller.positives) == (7, 4)
    path = labeller.end_episode()
    assert path == tmp_path / "label_tool-pick_cube-0000000.npz"
    assert labeller.frames == 0 and labeller.label is False  # the next episode starts as failure

    episode = read_episode(path)
    np.testing.assert_array_equal(episode.labels, [0, 0, 1, 1, 1, 0, 1])
    np.testing.assert_array_equal(episode.steps, np.arange(7))
    np.testing.assert_array_equal(episode.proprio[:, 0], np.arange(7))
    assert episode.images.shape == (7, 2, 16, 16, 3) and episode.images.dtype == np.uint8
    np.testing.assert_array_equal(episode.images[3], frame_input(frame(3), CFG))
    meta = episode.meta
    assert (meta["labeller"], meta["source"], meta["task"], meta["stage"], meta["seed"]) == (
        "human", "label_tool", "pick_cube", 0, 0
    )  # fmt: skip
    assert meta["cameras"] == ["side", "wrist"] and meta["input_size"] == 16
    assert meta["episode_success"] is True and meta["length"] == 7


def test_ids_continue_after_existing_shards_and_are_never_rewritten(tmp_path: Path) -> None:
    first = LiveLabeller(CFG, tmp_path, "pick_cube")
    add(first, [1])
    assert first.end_episode().name.endswith("-0000000.npz")
    add(first, [2])
    assert first.end_episode(episode_id=7).name.endswith("-0000007.npz")
    second = LiveLabeller(CFG, tmp_path, "pick_cube")  # a later session on the same frame set
    add(second, [3])
    assert second.end_episode().name.endswith("-0000008.npz")
    add(second, [4])
    with pytest.raises(FileExistsError, match="never rewritten"):
        second.end_episode(episode_id=0)
    assert second.frames == 1  # kept: the person can still save it under another id
    assert read_episode(tmp_path / "label_tool-pick_cube-0000000.npz").proprio[0, 0] == 1
    frames, problems = load_frames([tmp_path])
    assert not problems and len(frames) == 3 and len(list_shards([tmp_path])) == 3


def test_discard_empty_episode_and_invalid_frames(tmp_path: Path) -> None:
    labeller = LiveLabeller(CFG, tmp_path, "pick_cube")
    with pytest.raises(ValueError, match="no frames"):
        labeller.end_episode()
    add(labeller, [1, 2])
    labeller.mark(True)
    assert labeller.discard_episode() == 2
    assert labeller.frames == 0 and labeller.label is False and labeller.discarded == 1
    with pytest.raises(FrameError, match="missing camera"):
        labeller.add_frame({"side": frame(0)["side"]})
    with pytest.raises(FrameError, match="shape"):
        labeller.add_frame({name: np.zeros((16, 16, 3), np.uint8) for name in CFG.cameras})
    add(labeller, [1])
    with pytest.raises(ValueError, match="proprio"):
        labeller.add_frame(frame(0), np.zeros(5))
    assert labeller.frames == 1
    assert list(tmp_path.iterdir()) == []


def test_max_frames_drops_and_counts(tmp_path: Path) -> None:
    labeller = LiveLabeller(CFG, tmp_path, "pick_cube", max_frames=2)
    assert labeller.add_frame(frame(0)) and labeller.add_frame(frame(1))
    assert not labeller.add_frame(frame(2))
    assert labeller.dropped == 1
    episode = read_episode(labeller.end_episode())
    assert episode.meta["dropped_frames"] == 1 and len(episode.labels) == 2
    assert episode.proprio.shape == (2, 0)


def test_stage_comes_from_the_task_or_is_given(tmp_path: Path) -> None:
    staged = CFG.replace(tasks=("gpu_insertion_stage1", "gpu_insertion_stage2"))
    assert LiveLabeller(staged, tmp_path, "gpu_insertion_stage2").stage == 2
    assert LiveLabeller(CFG, tmp_path, "anything", stage=3).stage == 3
    with pytest.raises(ValueError, match="not judged"):
        LiveLabeller(CFG, tmp_path, "anything")
    with pytest.raises(ValueError, match="stage"):
        LiveLabeller(CFG, tmp_path, "pick_cube", stage=-1)


def test_keyboard_loop_on_a_text_stream(tmp_path: Path) -> None:
    labeller = LiveLabeller(CFG, tmp_path, "pick_cube")
    # keys arrive between frames, as a person types while the robot runs
    script = [("", [0, 1]), ("s\n", [2, 3]), ("F\n", [4]), ("e\n", []), ("", [5]), ("s\n", [6]), ("d\n", [])]
    script += [("", [7]), ("x\n", []), ("s e\n", []), ("q\n", [])]
    out = io.StringIO()

    class Stream:
        def __iter__(self):
            for line, values in script:  # the line is read, then these frames arrive
                if line:
                    yield line
                add(labeller, values)

    keyboard_loop(labeller, Stream(), out)
    shards = sorted(tmp_path.glob("*.npz"))
    assert [p.name for p in shards] == [
        "label_tool-pick_cube-0000000.npz",
        "label_tool-pick_cube-0000001.npz",
    ]
    np.testing.assert_array_equal(read_episode(shards[0]).labels, [0, 0, 1, 1, 0])
    np.testing.assert_array_equal(read_episode(shards[1]).labels, [0])  # `s` then `e` on one line
    assert labeller.discarded == 1  # `d`; `q` found an empty episode
    text = out.getvalue()
    assert "keys" in text and "saved 5 frame(s) (2 success)" in text and "discarded 2 frame(s)" in text
    assert "unknown key 'x'" in text and text.rstrip().endswith("quit")


def test_keyboard_loop_stops_at_end_of_input_and_q_discards(tmp_path: Path) -> None:
    labeller = LiveLabeller(CFG, tmp_path, "pick_cube")
    keyboard_loop(labeller, io.StringIO("s\nf\n"))  # no `q`: ends with the stream, nothing written
    assert labeller.label is False
    add(labeller, [1, 2])
    assert handle_key(labeller, "e")[1].startswith("saved 2 frame(s)")
    assert handle_key(labeller, "e") == (True, "error: no frames in this episode: nothing to save")
    add(labeller, [3])
    going, message = handle_key(labeller, "q")
    assert not going and message == "quit (1 unsaved frame(s) discarded)"
    stopped = io.StringIO("s\ns\n")
    keyboard_loop(labeller, stopped, stop=lambda: True)  # the node's context went away: one line, then out
    assert stopped.read() == "s\n"
