"""ROS 2 nodes of pld_yam_driver: the only modules of this package that import rclpy."""
