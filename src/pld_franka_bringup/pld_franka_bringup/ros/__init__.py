"""ROS 2 nodes of pld_franka_bringup: the only modules of this package that import rclpy."""
