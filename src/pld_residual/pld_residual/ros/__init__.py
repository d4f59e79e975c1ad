"""ROS 2 nodes of pld_residual: the only modules of this package that import rclpy."""
