"""The ROS-free recorder core: header stamps from CDR bytes, episodes cut by stamp between RESET and DONE
(events that arrive late, messages that arrive after DONE), shutdown mid-episode, aborted and failed
episodes, and malformed messages counted and dropped. The bytes are real CDR (the rosbags typestore), and
every bag is read back with the dataset reader and checked with `verify_dataset`."""

from __future__ import annotations

import struct
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from pld_residual.dataset import messages, topics
from pld_residual.dataset.index import load_index
from pld_residual.dataset.reader import read_episode, to_sft_episode
from pld_residual.dataset.typestore import pld_typestore
from pld_residual.dataset.verify import verify_dataset
from pld_residual.recording.config import RecorderConfig
from pld_residual.recording.core import DatasetRecorder, PhaseEvent, header_stamp_ns, steps_problem

STORE = pld_typestore()
STEP_NS = 50_000_000
PROPRIO_NAMES = ["tcp_x", "tcp_y", "gripper_width"]
JOINT_NAMES = ["joint1", "joint2"]
INSTRUCTION = "pick up the red cube"
GRACE = 0.5
OBS, CAM, JOINTS, CMD, REWARD = "observation", "camera/side/image_raw", "joint_states", "command", "reward"


def cdr(msg, msgtype: str) -> bytes:
    return bytes(STORE.serialize_cdr(msg, msgtype))


def image(step: int, seed: int) -> np.ndarray:
    return np.random.default_rng((seed, step)).integers(0, 256, (4, 6, 3), dtype=np.uint8)


def proprio(step: int, seed: int) -> np.ndarray:
    return np.array([step, seed, 0.04], np.float32)


def base_action(step: int) -> np.ndarray:
    return np.full(7, 0.01 * step, np.float32)


def raw(topic: str, msg) -> tuple:
    msgtype = topics.IMAGE_TYPE if topic.startswith("camera/") else topics.MSG_TYPES[topic]
    return ("msg", topic, msgtype, cdr(msg, msgtype))


def observation(step: int, stamp: int, seed: int, graph_episode: int) -> list[tuple]:
    """What the sim node publishes at one step: the camera image, the joint states, the observation."""
    img = image(step, seed)
    obs = messages.observation_msg(
        STORE, {"side": img}, proprio(step, seed), PROPRIO_NAMES, stamp, graph_episode, step
    )
    joints = messages.joint_state_msg(STORE, JOINT_NAMES, np.array([0.1 * step, seed]), stamp)
    return [raw(CAM, messages.image_msg(STORE, img, stamp)), raw(JOINTS, joints), raw(OBS, obs)]


def command(step: int, stamp: int, residual: bool, graph_episode: int, value: float | None = None) -> tuple:
    base = base_action(step)
    action = base if value is None else np.full(7, value, np.float32)
    msg = messages.command_msg(STORE, action, base, None, int(residual), stamp, graph_episode, step)
    return raw(CMD, msg)


def event(graph_episode: int, phase: int, step: int, stamp: int, **kw) -> tuple:
    fields = dict(t_base=2, seed=11, success=False, end_reason=0, task="pick_cube", instruction=INSTRUCTION)
    fields.update(kw)
    return ("event", PhaseEvent(episode_id=graph_episode, phase=phase, step=step, stamp_ns=stamp, **fields))


def episode_items(
    graph_episode: int,
    start: int,
    steps: int = 5,
    t_base: int = 2,
    seed: int = 11,
    success: bool = True,
    end_reason: int = 1,
) -> list[tuple]:
    """One episode in the order a lockstep graph delivers it: the first observation before the RESET event
    (the manager waits for it), each command followed by the next observation and its reward, DONE last."""
    kw = dict(t_base=t_base, seed=seed)
    items = observation(0, start, seed, graph_episode)
    items += [event(graph_episode, 0, 0, start, **kw), event(graph_episode, 1, 0, start, **kw)]
    for step in range(steps):
        stamp = start + step * STEP_NS
        if step == t_base:
            items.append(event(graph_episode, 2, step, stamp, **kw))
        items.append(command(step, stamp, step >= t_base, graph_episode))
        items += observation(step + 1, stamp + STEP_NS, seed, graph_episode)
        reward = messages.reward_msg(STORE, 0.1 * step, success and step == steps - 1, stamp + STEP_NS)
        items.append(raw(REWARD, reward))
    done = start + steps * STEP_NS
    items.append(event(graph_episode, 3, steps, done, success=success, end_reason=end_reason, **kw))
    return items


class Feed:
    """Plays items into a recorder with a fake monotonic clock (`dt` wall seconds between items)."""

    def __init__(self, recorder: DatasetRecorder, dt: float = 0.01) -> None:
        self.recorder, self.now, self.dt = recorder, 100.0, dt

    def __call__(self, items: list[tuple]) -> None:
        for item in items:
            self.now += self.dt
            if item[0] == "event":
                self.recorder.on_event(item[1], self.now)
            else:
                self.recorder.on_message(item[1], item[2], item[3], self.now)

    def wait(self, seconds: float) -> None:
        self.now += seconds
        self.recorder.poll(self.now)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "dataset"


def recorder(root: Path, **options) -> DatasetRecorder:
    notes: list[tuple[str, str]] = []
    cfg = RecorderConfig(finalize_grace_s=GRACE, reorder_window_s=0.3, **options)
    rec = DatasetRecorder(cfg, root=root, notify=lambda level, text: notes.append((level, text)))
    rec.notes = notes  # type: ignore[attr-defined]
    return rec


def bags(root: Path) -> list[dict]:
    return load_index(root)


# ---------------------------------------------------------------------- header stamps


def test_header_stamp_is_read_from_little_and_big_endian_cdr() -> None:
    stamp = 7 * 10**9 + 123_456_789
    for msgtype, msg in (
        (topics.MSG_TYPES[REWARD], messages.reward_msg(STORE, 0.5, False, stamp)),
        (topics.MSG_TYPES[CMD], messages.command_msg(STORE, np.zeros(7), None, None, 0, stamp, 1, 0)),
        (topics.MSG_TYPES[OBS], messages.observation_msg(STORE, {}, np.zeros(1), ["a"], stamp, 1, 0)),
    ):
        data = cdr(msg, msgtype)
        assert data[:2] == b"\x00\x01"  # what ROS 2 middlewares send: little-endian plain CDR
        assert header_stamp_ns(data) == stamp
        assert header_stamp_ns(memoryview(data)) == stamp
    big_endian = b"\x00\x00\x00\x00" + struct.pack(">iI", 7, 123_456_789) + b"\x00\x00\x00\x00"
    assert header_stamp_ns(big_endian) == stamp
    assert header_stamp_ns(b"\x00\x01\x00\x00" + struct.pack("<iI", 0, 0)) == 0


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"", "too short"),
        (b"\x00\x01\x00\x00\x07\x00\x00", "too short"),
        (b"\x00\x03\x00\x00" + struct.pack("<iI", 1, 2), "not plain CDR"),  # parameter-list CDR
        (b"\x01\x01\x00\x00" + struct.pack("<iI", 1, 2), "not plain CDR"),
        (b"\x00\x01\x00\x00" + struct.pack("<iI", -1, 2), "negative"),
        (b"\x00\x01\x00\x00" + struct.pack("<iI", 1, 10**9), "below one second"),
    ],
)
def test_header_stamp_refuses_malformed_bytes(data: bytes, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        header_stamp_ns(data)


def test_steps_problem_is_what_the_reader_refuses() -> None:
    assert steps_problem([0, 2, 1, 3], [0, 1, 2]) == ""
    assert steps_problem([0, 1], [0, 1]) == ""
    assert "commands" in steps_problem([0, 1], [])
    assert "command steps" in steps_problem([0, 1, 2], [0, 0])
    assert "observation steps" in steps_problem([0, 2], [0])
    assert "2 observations for 3 commands" in steps_problem([0, 1], [0, 1, 2])


# ---------------------------------------------------------------------- episodes


def test_an_episode_reads_back_like_a_collected_one_and_verifies(root: Path) -> None:
    rec = recorder(root, source="pld")
    feed = Feed(rec)
    feed(episode_items(graph_episode=4, start=10 * 10**9, steps=5, t_base=2, seed=11))
    assert rec.status()["episode"]["done"] and not bags(root)  # waits for late messages
    feed.wait(GRACE + 0.01)
    (record,) = bags(root)
    assert record["bag"] == "episode_000000" and record["episode_id"] == 0
    expected = dict(task="pick_cube", instruction=INSTRUCTION, seed=11, t_base=2, source="pld", length=5)
    assert {k: record[k] for k in expected} == expected
    assert record["success"] is True and record["end_reason"] == "success"
    assert record["provenance"] == {"base": 2, "residual": 3}
    assert record["extra"]["graph_episode_id"] == 4 and not record["extra"]["cut_short"]
    assert record["extra"]["messages"] == {CAM: 6, CMD: 5, JOINTS: 6, OBS: 6, REWARD: 5}

    arrays = read_episode(root / record["bag"], decode_all=True)
    assert len(arrays) == 5 and arrays.instruction == INSTRUCTION
    assert arrays.phases == [(0, 0), (1, 0), (2, 2), (3, 5)]
    np.testing.assert_array_equal(arrays.images["side"], np.stack([image(s, 11) for s in range(6)]))
    np.testing.assert_array_equal(arrays.proprio, np.stack([proprio(s, 11) for s in range(6)]))
    np.testing.assert_array_equal(arrays.command, np.stack([base_action(s) for s in range(5)]))
    np.testing.assert_allclose(arrays.reward_probability, 0.1 * np.arange(5), rtol=1e-6)
    assert arrays.reward_success.tolist() == [False] * 4 + [True]
    sft = to_sft_episode(arrays)
    assert (sft.task, sft.seed, sft.success, sft.source) == ("pick_cube", 11, True, "pld")
    assert sft.meta["t_base"] == 2 and len(sft.actions) == 5

    report = verify_dataset(root)
    assert report["ok"] == 1 and not report["broken"] and not report["unindexed"]
    status = rec.status()
    assert status["episodes_written"] == 1 and status["messages_written"] == 28
    assert status["dropped"] == {} and status["last_episode"]["success"] is True
    rec.shutdown()
    assert bags(root) == [record]  # nothing open: shutdown adds nothing


def test_messages_outside_episodes_are_dropped_and_a_reset_closes_the_previous_bag(root: Path) -> None:
    rec = recorder(root)
    feed = Feed(rec)
    stale = observation(99, 5 * 10**9, 0, 0)  # before the first RESET: nobody's
    first = episode_items(1, start=10 * 10**9, steps=3, t_base=0, seed=1)
    between = observation(7, 10 * 10**9 + 4 * STEP_NS, 1, 1)  # after DONE, before the next RESET
    second = episode_items(2, start=20 * 10**9, steps=4, t_base=4, seed=2, success=False, end_reason=2)
    feed(stale + first + between)
    assert rec.status()["episodes_written"] == 0  # the joint states were not yet past DONE
    feed(second[:4])  # the next episode's first observation and RESET: the first bag is finished at once
    assert rec.status()["episodes_written"] == 1
    feed(second[4:])
    feed.wait(GRACE + 0.01)
    one, two = bags(root)
    assert (one["length"], one["seed"], one["t_base"], one["success"]) == (3, 1, 0, True)
    assert (two["length"], two["seed"], two["t_base"], two["success"]) == (4, 2, 4, False)
    assert two["end_reason"] == "time_limit" and two["provenance"] == {"base": 4}
    assert read_episode(root / two["bag"]).phases == [(0, 0), (1, 0), (3, 4)]  # t_base = steps: no RESIDUAL
    assert rec.status()["dropped"] == {"outside_episode": 6}
    assert verify_dataset(root)["ok"] == 2


def test_every_topic_past_done_finishes_the_bag_at_once(root: Path) -> None:
    rec = recorder(root)
    feed = Feed(rec)
    feed(episode_items(1, start=10 * 10**9, steps=3))
    after = 10 * 10**9 + 4 * STEP_NS
    feed(observation(4, after, 11, 1))  # camera, joints, observation: not yet the command and reward topics
    assert rec.status()["episodes_written"] == 0
    feed([command(4, after, True, 1), raw(REWARD, messages.reward_msg(STORE, 0.0, False, after))])
    assert rec.status()["episodes_written"] == 1  # long before the grace period
    assert bags(root)[0]["length"] == 3


def test_late_messages_within_the_grace_period_go_into_the_bag(root: Path) -> None:
    rec = recorder(root)
    feed = Feed(rec)
    items = episode_items(1, start=10 * 10**9, steps=4)
    done, tail = items[-1], items[-6:-1]  # the last command, observation (3 topics) and reward
    feed([*items[:-6], done])  # DONE overtakes the episode's last messages
    feed.wait(0.4)  # longer than the reorder window, shorter than the grace period
    feed(tail)
    feed.wait(GRACE)
    (record,) = bags(root)
    assert record["length"] == 4 and record["extra"]["messages"][OBS] == 5
    # a message of that episode arriving after its bag was finished is counted as late
    feed([raw(REWARD, messages.reward_msg(STORE, 0.5, False, 10 * 10**9 + 2 * STEP_NS))])
    feed.wait(1.0)
    assert rec.status()["dropped"] == {"late": 1}
    assert verify_dataset(root)["ok"] == 1


def test_events_that_lag_their_messages_still_place_them(root: Path) -> None:
    """The RESET event after several observations, within the reorder window."""
    rec = recorder(root)
    feed = Feed(rec, dt=0.001)
    items = episode_items(1, start=10 * 10**9, steps=3)
    reset_events = [i for i in items if i[0] == "event" and i[1].phase in (0, 1)]
    rest = [i for i in items if i not in reset_events]
    feed(rest[:8] + reset_events + rest[8:])
    feed.wait(GRACE + 0.01)
    assert bags(root)[0]["length"] == 3 and rec.status()["dropped"] == {}


def test_shutdown_mid_episode_keeps_a_readable_aborted_bag(root: Path) -> None:
    rec = recorder(root)
    feed = Feed(rec)
    items = episode_items(3, start=10 * 10**9, steps=6, t_base=1)
    feed(items[: items.index(next(i for i in items if i[0] == "msg" and i[1] == REWARD)) + 20])
    rec.shutdown()
    rec.shutdown()  # twice is harmless
    (record,) = bags(root)
    assert record["success"] is False and record["end_reason"] == "shutdown" and record["extra"]["cut_short"]
    arrays = read_episode(root / record["bag"], decode_all=True)
    assert len(arrays) == record["length"] >= 3
    assert not (root / ".partial").exists() or not any((root / ".partial").iterdir())
    assert verify_dataset(root)["ok"] == 1
    rec.on_message(*items[5][1:], now=1e6)  # after shutdown: counted, not raised
    assert rec.status()["dropped"]["after_shutdown"] == 1 and not rec.status()["open"]
    # the dataset is free again: another recorder appends to it
    again = recorder(root)
    Feed(again)(episode_items(4, start=30 * 10**9, steps=2, t_base=0))
    again.shutdown()  # DONE came, grace did not pass: finished as it ended, not as 'shutdown'
    assert [r["end_reason"] for r in bags(root)] == ["shutdown", "success"]
    assert verify_dataset(root)["ok"] == 2


def test_failures_are_dropped_when_keep_failures_is_false(root: Path) -> None:
    rec = recorder(root, keep_failures=False)
    feed = Feed(rec)
    feed(episode_items(1, start=10 * 10**9, steps=3, success=False, end_reason=2))
    feed(episode_items(2, start=20 * 10**9, steps=3, success=True, end_reason=1))
    feed(episode_items(3, start=30 * 10**9, steps=3)[:-1])  # open at shutdown
    rec.shutdown()
    (record,) = bags(root)
    assert record["extra"]["graph_episode_id"] == 2 and record["success"]
    assert rec.status()["episodes_dropped_by_reason"] == {"failure": 2}
    assert sorted(p.name for p in root.iterdir() if not p.name.startswith(".")) == [
        "episode_000000",
        "index.json",
    ]


def test_an_aborted_episode_is_recorded_as_a_failure(root: Path) -> None:
    rec = recorder(root)
    feed = Feed(rec)
    feed(episode_items(1, start=10 * 10**9, steps=4, success=False, end_reason=3))  # e.g. the VLA died
    feed(episode_items(2, start=20 * 10**9, steps=2)[:10])  # the next RESET finishes it
    (record,) = bags(root)
    assert (record["success"], record["end_reason"], record["length"]) == (False, "abort", 4)
    assert read_episode(root / record["bag"]).phases[-1] == (3, 4)
    rec.shutdown()
    assert [r["end_reason"] for r in bags(root)] == ["abort", "shutdown"]
    assert verify_dataset(root)["ok"] == 2


def test_a_reset_without_done_cuts_the_episode_short_as_aborted(root: Path) -> None:
    rec = recorder(root)
    feed = Feed(rec)
    feed(episode_items(1, start=10 * 10**9, steps=4)[:-1])  # no DONE
    feed(episode_items(2, start=20 * 10**9, steps=2))
    feed.wait(GRACE + 0.01)
    first, second = bags(root)
    assert (first["end_reason"], first["success"], first["extra"]["cut_short"]) == ("abort", False, True)
    assert second["end_reason"] == "success"


def test_malformed_nan_and_wrong_messages_are_counted_and_dropped(root: Path) -> None:
    rec = recorder(root)
    feed = Feed(rec)
    start = 10 * 10**9
    bad_obs = messages.observation_msg(STORE, {}, np.zeros(2), ["a", "b"], start + STEP_NS, 1, 1)
    bad_obs.proprio_names = ["only_one"]  # still valid CDR
    nan_obs = messages.observation_msg(STORE, {}, np.array([np.nan, 0]), ["a", "b"], start + STEP_NS, 1, 1)
    cmd_type = topics.MSG_TYPES[CMD]
    reward = messages.reward_msg(STORE, 0.5, False, start + STEP_NS)
    reward.success_probability = float("nan")
    good = cdr(messages.reward_msg(STORE, 0.5, False, start + STEP_NS), topics.MSG_TYPES[REWARD])
    odd_image = messages.image_msg(STORE, image(0, 0), start)
    odd_image.height = 5  # 5 rows claimed, 4 sent
    garbage = [
        ("msg", CMD, cmd_type, b"\x00\x01\x00\x00\x01"),  # too short for a stamp
        ("msg", CMD, cmd_type, b"\x00\x01\x00\x00" + b"\xff" * 30),  # a stamp, then nonsense
        ("msg", REWARD, topics.MSG_TYPES[REWARD], good[:-3]),  # truncated
        ("msg", REWARD, topics.MSG_TYPES[CMD], good),  # wrong type for the topic
        ("msg", "action_chunk", "pld_interfaces/msg/ActionChunk", good),  # not recorded
        command(1, start + STEP_NS, True, 1, value=float("nan")),
        raw(OBS, bad_obs),
        raw(OBS, nan_obs),
        raw(REWARD, reward),
        raw(CAM, odd_image),
    ]
    items = episode_items(1, start=start, steps=3)
    feed(items[:6] + garbage + items[6:])
    feed.wait(GRACE + 0.01)
    assert rec.status()["dropped"] == {
        "malformed": 3,
        "wrong_type": 1,
        "unknown_topic": 1,
        "invalid_command": 1,
        "invalid_observation": 2,
        "invalid_reward": 1,
        "invalid_camera": 1,
    }
    assert bags(root)[0]["length"] == 3 and verify_dataset(root)["ok"] == 1
    assert sum(level == "drop" for level, _ in rec.notes) == 10  # type: ignore[attr-defined]

    # a NaN command in place of a real one leaves a gap: that episode would not read back, so it is
    # discarded (counted), and the dataset stays all-readable
    items = episode_items(2, start=20 * 10**9, steps=3)
    second = [i for i, item in enumerate(items) if item[0] == "msg" and item[1] == CMD][1]
    items[second] = command(1, 20 * 10**9 + STEP_NS, False, 2, value=float("inf"))
    feed(items)
    feed.wait(GRACE + 0.01)
    status = rec.status()
    assert status["episodes_dropped_by_reason"] == {"inconsistent_steps": 1}
    assert status["dropped"]["invalid_command"] == 2 and len(bags(root)) == 1
    assert any("command steps are not 0..1" in text for _, text in rec.notes)  # type: ignore[attr-defined]


def test_events_outside_an_open_episode_and_missing_instructions_are_counted(root: Path) -> None:
    rec = recorder(root)
    feed = Feed(rec)
    items = episode_items(1, start=10 * 10**9, steps=2)
    feed(items[4:])  # the recorder started after the RESET: nothing of this episode is recorded
    feed([event(5, 0, 0, 15 * 10**9, instruction="")])  # a RESET without instruction: not recorded either
    feed.wait(GRACE + 0.01)
    items = episode_items(2, start=20 * 10**9, steps=2)
    duplicate = items[3]
    feed([*items[:4], duplicate, event(9, 2, 0, 20 * 10**9), *items[4:]])
    feed([("event", replace(items[-1][1], step=99))])  # a second DONE
    feed.wait(GRACE + 0.01)
    assert [r["extra"]["graph_episode_id"] for r in bags(root)] == [2]
    status = rec.status()
    assert status["episodes_dropped_by_reason"] == {"no_instruction": 1}
    assert status["dropped"]["event_outside_episode"] == 2 + 1  # PROBING and DONE of 1; one of id 9
    assert status["dropped"]["event_duplicate"] == 1 and status["dropped"]["event_after_done"] == 1


def test_one_writer_per_dataset(root: Path) -> None:
    rec = recorder(root)
    with pytest.raises(ValueError, match="another process is writing"):
        recorder(root)
    rec.shutdown()
    recorder(root).shutdown()


# ---------------------------------------------------------------------- config


def test_config_validates_and_round_trips(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = RecorderConfig.from_dict({"finalize_grace_s": 1, "source": "eval", "keep_failures": False})
    assert cfg.finalize_grace_s == 1.0 and isinstance(cfg.finalize_grace_s, float)
    assert RecorderConfig.from_dict(cfg.to_dict()) == cfg
    for bad in (
        {"finalize_grace_s": -1.0},
        {"reorder_window_s": float("nan")},
        {"status_period_s": 0.0},
        {"source": " "},
        {"keep_failures": "yes"},
        {"dataset_dir": 3},
        {"grace": 1.0},
    ):
        with pytest.raises(ValueError, match="RecorderConfig"):
            RecorderConfig.from_dict(bad)
    monkeypatch.setenv("PLD_ROOT", str(tmp_path))
    default = RecorderConfig().resolved_dataset_dir()
    assert default.parent == tmp_path / "runs" and default.name.endswith("-graph-dataset")
    assert RecorderConfig(dataset_dir=str(tmp_path / "d")).resolved_dataset_dir() == tmp_path / "d"


def test_a_command_for_the_last_observation_is_not_part_of_the_episode(root: Path) -> None:
    """Lockstep race: the actor may answer the episode's final observation before it hears DONE; that
    command is stamped at the DONE stamp and must not make the bag one command longer than its steps."""
    rec = recorder(root)
    feed = Feed(rec)
    items = episode_items(graph_episode=1, start=10**9, steps=4, success=False, end_reason=2)
    done = 10**9 + 4 * STEP_NS
    items.insert(-1, command(4, done, True, 1))  # the answer to observation 4, before the DONE event
    feed(items)
    feed.wait(GRACE + 0.01)
    (record,) = bags(root)
    assert record["length"] == 4 and record["extra"]["messages"][CMD] == 4
    assert rec.status()["dropped"] == {"after_done": 1}
