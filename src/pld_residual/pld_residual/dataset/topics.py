"""The topics of a PLD episode bag: what the ROS graph publishes, so a recorder can store it unchanged.

| topic | type | when |
| --- | --- | --- |
| `observation` | pld_interfaces/msg/Observation | every control step, and once after the last command |
| `joint_states` | sensor_msgs/msg/JointState | with every observation |
| `camera/<name>/image_raw` | sensor_msgs/msg/Image | with every observation, one topic per camera |
| `command` | pld_interfaces/msg/ActionCommand | every control step (base, residual, executed, provenance) |
| `reward` | pld_interfaces/msg/Reward | for every observation after the first |
| `episode` | pld_interfaces/msg/EpisodeEvent | at each phase change (reset, probing, residual, done) |
| `instruction` | std_msgs/msg/String | once, at the start |

`Observation` bundles the images too (it is what the VLA and distillation read); the per-camera topics
exist for ROS tools (Foxglove, rqt, `ros2 bag play`). Bags are zstd-compressed, which keeps the copies cheap.
"""

from __future__ import annotations

OBSERVATION = "observation"
JOINT_STATES = "joint_states"
COMMAND = "command"
REWARD = "reward"
EPISODE = "episode"
INSTRUCTION = "instruction"

MSG_TYPES = {
    OBSERVATION: "pld_interfaces/msg/Observation",
    JOINT_STATES: "sensor_msgs/msg/JointState",
    COMMAND: "pld_interfaces/msg/ActionCommand",
    REWARD: "pld_interfaces/msg/Reward",
    EPISODE: "pld_interfaces/msg/EpisodeEvent",
    INSTRUCTION: "std_msgs/msg/String",
}
IMAGE_TYPE = "sensor_msgs/msg/Image"

# ActionCommand.PROVENANCE_* and EpisodeEvent constants, by name (the .msg files are the source of truth;
# test_topics checks these against them)
PROVENANCE = {0: "base", 1: "residual", 2: "human", 3: "hold"}
PHASES = {0: "reset", 1: "probing", 2: "residual", 3: "done"}
END_REASONS = {0: "none", 1: "success", 2: "time_limit", 3: "abort"}


def camera_topic(camera: str) -> str:
    return f"camera/{camera}/image_raw"


def full_topic(namespace: str, topic: str) -> str:
    """`/<namespace>/<topic>` (or `/<topic>` with no namespace), as rosbag2 stores topic names."""
    namespace = namespace.strip("/")
    return f"/{namespace}/{topic}" if namespace else f"/{topic}"
