"""Print `name==version` for every distribution pip installed in this interpreter, sorted.

Unlike `pip freeze`, it skips the egg-info directories that the ROS wheels carry inside them
(action_msgs, rclpy, ...): they are not distributions on any index, so pinning them breaks installs.
The CPU torch wheel on local disk is `2.13.0+cpu`; it is pinned without the local label.
"""

from importlib import metadata

pins = {}
for dist in metadata.distributions():
    if dist.read_text("INSTALLER") is None:  # not installed by an installer: part of another wheel
        continue
    name = dist.metadata["Name"]
    if name.lower() == "pip":  # setup upgrades pip itself
        continue
    version = dist.version.split("+")[0] if name.lower() == "torch" else dist.version
    pins[name.lower()] = f"{name}=={version}"
print("\n".join(pins[k] for k in sorted(pins)))
