"""Cut the graph's raw message stream into episode bags, by header stamp. ROS-free: fed bytes and events.

Every dataset topic except std_msgs/String starts with a std_msgs/Header whose stamp is sim time, strictly
increasing across resets, so the stamp alone says which episode a message belongs to: from the RESET
event's stamp (the first observation after the reset) to the DONE event's stamp (the last observation),
both included. Events travel on their own topic and may arrive after the messages they delimit, so each
message first waits `reorder_window_s` (wall time) in a pending queue and is placed only then; a RESET
places every pending message stamped before it at once, and a DONE episode is finished `finalize_grace_s`
after its DONE arrived, sooner when every topic of the episode has sent a message stamped after DONE
(each topic arrives in order) or when the next RESET comes.

Messages are checked when they arrive: a bad CDR header, undecodable bytes, a wrong type, NaN/inf values
or inconsistent sizes are counted by reason and dropped. An episode whose observation and command steps
would not read back (`pld_residual.dataset.reader.read_episode` wants commands 0..T-1 and observations
0..N-1 with N >= T) is discarded and counted, so every indexed bag reads back. Nothing raises into the
caller: failures are counted, and reported through `notify(level, text)`.
"""

from __future__ import annotations

import logging
import math
import struct
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pld_residual.dataset import topics
from pld_residual.dataset.typestore import pld_typestore
from pld_residual.dataset.writer import DatasetWriter, EpisodeWriter
from pld_residual.recording.config import RecorderConfig

# EpisodeEvent.PHASE_* and END_* (the .msg file is the source of truth; topics.PHASES names them)
PHASE_RESET, PHASE_PROBING, PHASE_RESIDUAL, PHASE_DONE = 0, 1, 2, 3
END_NONE, END_ABORT = 0, 3
ABORTED = topics.END_REASONS[END_ABORT]  # end reason of an episode that a new RESET cut short
SHUTDOWN = "shutdown"  # end reason of the episode open when the recorder stops
CAMERA = "camera"  # kind of every camera/<name>/image_raw topic
RAW_TOPICS = (topics.OBSERVATION, topics.JOINT_STATES, topics.COMMAND, topics.REWARD)
_NS_PER_S = 1_000_000_000
_CDR_HEADER = struct.Struct(">2sH")  # encapsulation kind, options
_STAMP = {b"\x00\x00": struct.Struct(">iI"), b"\x00\x01": struct.Struct("<iI")}  # CDR_BE, CDR_LE

# (level, text): "info" / "warning" for episodes (rare); "drop" and "error" for single messages (may repeat
# at the message rate, so a node throttles them)
Notify = Callable[[str, str], None]


def header_stamp_ns(data: bytes | bytearray | memoryview) -> int:
    """The header stamp (ns) of a serialized message that starts with std_msgs/Header.

    After the 4-byte encapsulation header (byte 1: 0 big-endian, 1 little-endian plain CDR) come
    `int32 sec` and `uint32 nanosec`. Raises ValueError for short data, another encapsulation, a negative
    time or nanoseconds of a second or more."""
    view = memoryview(data).cast("B")
    if len(view) < _CDR_HEADER.size + 8:
        raise ValueError(f"{len(view)} bytes are too short for a CDR message with a header stamp")
    kind, _options = _CDR_HEADER.unpack_from(view, 0)
    stamp = _STAMP.get(kind)
    if stamp is None:
        raise ValueError(f"encapsulation 0x{kind.hex()} is not plain CDR (0x0000 or 0x0001)")
    sec, nanosec = stamp.unpack_from(view, _CDR_HEADER.size)
    if sec < 0:
        raise ValueError(f"negative header stamp ({sec} s)")
    if nanosec >= _NS_PER_S:
        raise ValueError(f"header stamp nanosec {nanosec} is not below one second")
    return sec * _NS_PER_S + nanosec


def topic_kind(topic: str) -> str | None:
    """'observation', 'joint_states', 'command', 'reward', 'camera', or None for a topic not recorded."""
    if topic in RAW_TOPICS:
        return topic
    name = topic.removeprefix("camera/").removesuffix("/image_raw")
    if topic == topics.camera_topic(name) and name and "/" not in name:
        return CAMERA
    return None


def expected_type(kind: str) -> str:
    return topics.IMAGE_TYPE if kind == CAMERA else topics.MSG_TYPES[kind]


def _finite(*arrays: Any) -> bool:
    return all(bool(np.all(np.isfinite(np.asarray(a, np.float64)))) for a in arrays)


def _image_problem(image: Any, rgb8: bool) -> str:
    if rgb8 and image.encoding != "rgb8":
        return f"image encoding {image.encoding!r} (dataset observations are rgb8)"
    size = len(image.data)
    if image.step * image.height != size or (rgb8 and image.step < image.width * 3):
        return f"image of {image.width}x{image.height} has {size} bytes for step {image.step}"
    return ""


def message_problem(kind: str, msg: Any) -> str:
    """'' when a decoded message can go into a dataset bag, else what is wrong with it."""
    if kind == topics.OBSERVATION:
        if len(msg.camera_names) != len(msg.images):
            return f"{len(msg.camera_names)} camera names for {len(msg.images)} images"
        if len(msg.proprio_names) != len(msg.proprio):
            return f"{len(msg.proprio_names)} proprio names for {len(msg.proprio)} proprio values"
        if not _finite(msg.proprio):
            return "non-finite proprio"
        return next((p for p in (_image_problem(i, rgb8=True) for i in msg.images) if p), "")
    if kind == topics.COMMAND:
        vectors = (msg.command, msg.base, msg.residual)
        if any(len(v) != 7 for v in vectors):
            return f"command sizes {[len(v) for v in vectors]}, expected 7"
        return "" if _finite(*vectors) else "non-finite command, base or residual"
    if kind == topics.REWARD:
        p = float(msg.success_probability)
        return "" if math.isfinite(p) and 0.0 <= p <= 1.0 else f"success probability {p} not in [0, 1]"
    if kind == topics.JOINT_STATES:
        sizes = [len(msg.position), len(msg.velocity), len(msg.effort)]
        if any(size not in (0, len(msg.name)) for size in sizes):
            return f"{len(msg.name)} joint names for position/velocity/effort sizes {sizes}"
        return "" if _finite(msg.position, msg.velocity, msg.effort) else "non-finite joint state"
    if kind == CAMERA:
        return _image_problem(msg, rgb8=False)
    return f"no check for {kind!r}"


def steps_problem(observation_steps: list[int], command_steps: list[int]) -> str:
    """'' when the steps read back as an episode (commands 0..T-1 in order, observations 0..N-1, N >= T)."""
    if not observation_steps or not command_steps:
        return f"{len(observation_steps)} observations and {len(command_steps)} commands"
    for kind, steps in (("command", command_steps), ("observation", sorted(observation_steps))):
        wrong = next((i for i, step in enumerate(steps) if step != i), None)
        if wrong is not None:
            return f"{kind} steps are not 0..{len(steps) - 1}: position {wrong} has step {steps[wrong]}"
    if len(observation_steps) < len(command_steps):
        return f"{len(observation_steps)} observations for {len(command_steps)} commands"
    return ""


@dataclass(frozen=True)
class PhaseEvent:
    """One pld_interfaces/EpisodeEvent, decoded (stamp in ns)."""

    episode_id: int
    phase: int
    t_base: int
    step: int
    seed: int
    success: bool
    end_reason: int
    task: str
    instruction: str
    stamp_ns: int


@dataclass
class _Pending:
    arrived: float
    stamp: int
    topic: str
    msgtype: str
    data: bytes
    step: int | None  # observations and commands: their `step` field


@dataclass
class _Episode:
    """The bag being written and what is known about its episode."""

    reset: PhaseEvent
    writer: EpisodeWriter
    done: PhaseEvent | None = None
    deadline: float = math.inf  # monotonic time at which a DONE episode is finished
    observation_steps: list[int] = field(default_factory=list)
    command_steps: list[int] = field(default_factory=list)
    messages: Counter[str] = field(default_factory=Counter)  # written, per topic
    past_done: set[str] = field(default_factory=set)  # topics that sent a message stamped after DONE
    write_errors: int = 0
    last_stamp: int = 0  # newest stamp written

    @property
    def start_ns(self) -> int:
        return self.reset.stamp_ns

    def holds(self, stamp: int) -> bool:
        return self.start_ns <= stamp and (self.done is None or stamp <= self.done.stamp_ns)


class DatasetRecorder:
    """Owns the dataset (`DatasetWriter`) and the one open episode bag; see the module docstring."""

    def __init__(
        self,
        cfg: RecorderConfig | None = None,
        *,
        root: Path | None = None,
        namespace: str = "",
        notify: Notify | None = None,
    ) -> None:
        """`root` overrides `cfg.dataset_dir`; `namespace` (the node's) is used when `cfg.namespace_in_bag`.
        Raises ValueError when the dataset cannot be opened (another writer holds it, unreadable index)."""
        self.cfg = cfg or RecorderConfig()
        self.root = Path(root) if root is not None else self.cfg.resolved_dataset_dir()
        self._notify = notify or _log
        self._store = pld_typestore()
        self._dataset = DatasetWriter(self.root, namespace if self.cfg.namespace_in_bag else "")
        try:
            self._dataset.open()
        except (RuntimeError, OSError) as exc:
            raise ValueError(f"cannot open the dataset {self.root}: {exc}") from None
        self._episode: _Episode | None = None
        self._last_range: tuple[int, int] | None = None  # stamps of the last finished episode
        self._pending: deque[_Pending] = deque()
        self._closed = False
        self.episodes_written = 0
        self.episodes_dropped: Counter[str] = Counter()
        self.messages_written: Counter[str] = Counter()
        self.dropped: Counter[str] = Counter()
        self.last_record: dict[str, Any] | None = None

    # ------------------------------------------------------------------ input

    def on_message(self, topic: str, msgtype: str, data: bytes, now: float | None = None) -> None:
        """One raw message of `topic` (relative to the namespace): checked, then queued for its episode."""
        now = time.monotonic() if now is None else now
        try:
            self._accept(topic, msgtype, data, now)
        except Exception as exc:  # a bug here must not stop the recording of the next messages
            self._drop("internal_error", f"{topic}: {type(exc).__name__}: {exc}", level="error")

    def on_event(self, event: PhaseEvent, now: float | None = None) -> None:
        """One episode event: RESET opens a bag (finishing the previous one), DONE schedules its finish."""
        now = time.monotonic() if now is None else now
        try:
            self._event(event, now)
        except Exception as exc:
            self._drop("internal_error", f"event: {type(exc).__name__}: {exc}", level="error")

    def poll(self, now: float | None = None) -> None:
        """Timer tick: place messages older than the reorder window, finish a DONE episode after its grace."""
        now = time.monotonic() if now is None else now
        try:
            self._drain(now)
            episode = self._episode
            if episode is not None and episode.done is not None and now >= episode.deadline:
                self._finish(episode)
        except Exception as exc:
            self._drop("internal_error", f"poll: {type(exc).__name__}: {exc}", level="error")

    def shutdown(self) -> None:
        """Finish the open episode (as it ended, or aborted with end reason 'shutdown' when it had no DONE),
        then release the dataset: every bag on disk is closed and readable. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._episode is not None:
                self._finish(self._episode, cut_short=SHUTDOWN)
            self._place_all(lambda _m: True)
        finally:
            self._dataset.close()

    # ------------------------------------------------------------------ messages

    def _accept(self, topic: str, msgtype: str, data: bytes, now: float) -> None:
        if self._closed:
            self.dropped["after_shutdown"] += 1
            return
        kind = topic_kind(topic)
        if kind is None:
            self._drop("unknown_topic", f"{topic} is not a dataset topic")
            return
        if msgtype != expected_type(kind):
            self._drop("wrong_type", f"{topic}: {msgtype}, expected {expected_type(kind)}")
            return
        data = bytes(data)
        try:
            stamp = header_stamp_ns(data)
            msg = self._store.deserialize_cdr(data, msgtype)
        except Exception as exc:  # ValueError from the header, rosbags' SerdeError, struct errors
            self._drop("malformed", f"{topic}: {exc}")
            return
        problem = message_problem(kind, msg)
        if problem:
            self._drop(f"invalid_{kind}", f"{topic}: {problem}")
            return
        step = int(msg.step) if kind in (topics.OBSERVATION, topics.COMMAND) else None
        episode = self._episode
        if episode is not None and episode.done is not None and stamp > episode.done.stamp_ns:
            episode.past_done.add(topic)
        self._pending.append(_Pending(now, stamp, topic, msgtype, data, step))
        self._drain(now)
        self._finish_if_complete()

    def _drain(self, now: float) -> None:
        """Place the messages that waited the reorder window (the queue is in arrival order)."""
        limit = now - self.cfg.reorder_window_s
        while self._pending and self._pending[0].arrived <= limit:
            self._place(self._pending.popleft())

    def _place_all(self, which: Callable[[_Pending], bool]) -> None:
        """Place every pending message `which` selects now, whatever its age; keep the others in order."""
        keep: deque[_Pending] = deque()
        for message in self._pending:
            if which(message):
                self._place(message)
            else:
                keep.append(message)
        self._pending = keep

    def _place(self, message: _Pending) -> None:
        episode = self._episode
        if (
            episode is not None
            and episode.done is not None
            and message.topic == topics.COMMAND
            and message.stamp >= episode.done.stamp_ns
        ):
            # a command answering the episode's last observation (sent before the actor heard DONE) does
            # not belong to the episode: it ended at that observation
            self.dropped["after_done"] += 1
        elif episode is not None and episode.holds(message.stamp):
            self._write(episode, message)
        elif self._last_range is not None and self._last_range[0] <= message.stamp <= self._last_range[1]:
            self.dropped["late"] += 1  # arrived after its episode's bag was finished: grace too short?
        else:
            self.dropped["outside_episode"] += 1

    def _write(self, episode: _Episode, message: _Pending) -> None:
        try:
            episode.writer.write_raw(message.topic, message.msgtype, message.stamp, message.data)
        except Exception as exc:  # disk full, a closed writer: the episode will be discarded
            episode.write_errors += 1
            self._drop("write_error", f"{message.topic}: {exc}", level="error")
            return
        episode.last_stamp = max(episode.last_stamp, message.stamp)
        episode.messages[message.topic] += 1
        self.messages_written[message.topic] += 1
        if message.topic == topics.OBSERVATION:
            episode.observation_steps.append(int(message.step or 0))
        elif message.topic == topics.COMMAND:
            episode.command_steps.append(int(message.step or 0))

    def _drop(self, reason: str, detail: str, level: str = "drop") -> None:
        self.dropped[reason] += 1
        self._notify(level, f"dropped ({reason}): {detail}")

    # ------------------------------------------------------------------ episodes

    def _event(self, event: PhaseEvent, now: float) -> None:
        if self._closed:
            self.dropped["after_shutdown"] += 1
            return
        if event.phase not in topics.PHASES:
            self._drop("invalid_event", f"unknown phase {event.phase}")
            return
        if event.phase == PHASE_RESET:
            self._on_reset(event, now)
            return
        episode = self._episode
        if episode is None or event.episode_id != episode.reset.episode_id:
            self.dropped["event_outside_episode"] += 1  # e.g. the recorder started mid-episode
            return
        if episode.done is not None:
            self._drop("event_after_done", f"{topics.PHASES[event.phase]} of episode {event.episode_id}")
            return
        self._write_phase(episode, event)
        if event.phase == PHASE_DONE:
            episode.done = event
            episode.deadline = now + self.cfg.finalize_grace_s
            episode.past_done.update(m.topic for m in self._pending if m.stamp > event.stamp_ns)
            self._finish_if_complete()

    def _on_reset(self, event: PhaseEvent, now: float) -> None:
        episode = self._episode
        if episode is not None and episode.reset == event:
            self.dropped["event_duplicate"] += 1
            return
        self._place_all(lambda m: m.stamp < event.stamp_ns)  # the old episode's (or nobody's) messages
        if episode is not None:
            self._finish(episode, cut_short=ABORTED, until_ns=event.stamp_ns - 1)
        self._open(event)
        self._drain(now)

    def _open(self, event: PhaseEvent) -> None:
        if not event.instruction:
            self.episodes_dropped["no_instruction"] += 1
            self._notify("warning", f"episode {event.episode_id} has no instruction: not recorded")
            return
        try:
            writer = self._dataset.episode(
                task=event.task,
                instruction=event.instruction,
                seed=event.seed,
                source=self.cfg.source,
                t_base=event.t_base,
                extra={"graph_episode_id": event.episode_id},
            )
        except Exception as exc:
            self.episodes_dropped["write_error"] += 1
            self._notify("error", f"cannot start a bag for episode {event.episode_id}: {exc}")
            return
        self._episode = _Episode(reset=event, writer=writer)
        try:
            writer.add_instruction(event.stamp_ns)
        except Exception as exc:
            self._episode.write_errors += 1
            self._drop("write_error", f"instruction: {exc}", level="error")
        self._write_phase(self._episode, event)

    def _write_phase(self, episode: _Episode, event: PhaseEvent) -> None:
        try:
            episode.writer.add_phase(
                event.stamp_ns, event.phase, event.step, bool(event.success), int(event.end_reason)
            )
        except Exception as exc:
            episode.write_errors += 1
            self._drop("write_error", f"episode event: {exc}", level="error")

    def _finish_if_complete(self) -> None:
        """Finish a DONE episode once every topic it recorded has sent a message stamped after DONE."""
        episode = self._episode
        if episode is None or episode.done is None:
            return
        expected = set(episode.messages) | {m.topic for m in self._pending if episode.holds(m.stamp)}
        if expected and expected <= episode.past_done:
            self._finish(episode)

    def _finish(self, episode: _Episode, cut_short: str = ABORTED, until_ns: float = math.inf) -> None:
        """Write the episode's pending messages, then index its bag (or discard it, counted).

        Without a DONE event (cut short by a new RESET or shutdown) the episode ends at `until_ns` with end
        reason `cut_short`."""
        done = episode.done
        limit = done.stamp_ns if done is not None else until_ns
        self._place_all(lambda m: m.stamp <= limit)
        self._episode = None
        self._last_range = (episode.start_ns, done.stamp_ns if done is not None else episode.last_stamp)
        if done is not None:
            success = bool(done.success)
            name = topics.END_REASONS.get(int(done.end_reason), f"unknown_{done.end_reason}")
            end_reason = "" if int(done.end_reason) == END_NONE else name
        else:
            success, end_reason = False, cut_short
        label = f"episode {episode.reset.episode_id} ({episode.writer.record['bag']})"
        problem = steps_problem(episode.observation_steps, episode.command_steps)
        if episode.write_errors:
            problem = f"{episode.write_errors} messages could not be written"
        reason = ""
        if problem:
            empty = not episode.observation_steps or not episode.command_steps
            reason = "write_error" if episode.write_errors else "empty" if empty else "inconsistent_steps"
        elif not success and not self.cfg.keep_failures:
            reason, problem = "failure", f"failed ({end_reason or 'time_limit'}) and keep_failures is false"
        if reason:
            episode.writer.abort()
            self.episodes_dropped[reason] += 1
            self._notify(
                "info" if reason in ("failure", "empty") else "warning", f"{label} discarded: {problem}"
            )
            return
        extra = {
            "graph_episode_id": episode.reset.episode_id,
            "messages": dict(sorted(episode.messages.items())),
            "cut_short": done is None,
        }
        try:
            record = episode.writer.finish(success, end_reason=end_reason, extra=extra)
        except Exception as exc:
            episode.writer.abort()
            self.episodes_dropped["write_error"] += 1
            self._notify("error", f"{label} could not be finished: {exc}")
            return
        self.episodes_written += 1
        self.last_record = record
        self._notify(
            "info",
            f"{label} written: {record['length']} steps, success {record['success']}, {record['end_reason']}",
        )

    # ------------------------------------------------------------------ status

    def status(self) -> dict[str, Any]:
        """Counters for the node's `recorder_status` topic (JSON-serialisable)."""
        episode = self._episode
        current = None
        if episode is not None:
            current = {
                "graph_episode_id": episode.reset.episode_id,
                "bag": episode.writer.record["bag"],
                "done": episode.done is not None,
                "messages": sum(episode.messages.values()),
            }
        last = self.last_record
        return {
            "dataset_dir": str(self.root),
            "source": self.cfg.source,
            "open": not self._closed,
            "episode": current,
            "episodes_written": self.episodes_written,
            "episodes_dropped": sum(self.episodes_dropped.values()),
            "episodes_dropped_by_reason": dict(sorted(self.episodes_dropped.items())),
            "messages_written": sum(self.messages_written.values()),
            "messages_by_topic": dict(sorted(self.messages_written.items())),
            "dropped": dict(sorted(self.dropped.items())),
            "pending": len(self._pending),
            "last_episode": None
            if last is None
            else {k: last[k] for k in ("bag", "task", "length", "success", "end_reason")},
        }


def _log(level: str, text: str) -> None:
    logging.getLogger("pld_residual.recording").log(
        {"info": logging.INFO, "warning": logging.WARNING}.get(level, logging.ERROR), text
    )
