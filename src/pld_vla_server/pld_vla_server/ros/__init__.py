"""ROS 2 nodes of pld_vla_server: the only modules of this package that import rclpy."""
