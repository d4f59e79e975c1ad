"""The episode manager's core: reset -> probing (T_base) -> residual takeover -> done, without ROS."""
