"""ROS 2 nodes of pld_sim: the only modules of this package that import rclpy."""
