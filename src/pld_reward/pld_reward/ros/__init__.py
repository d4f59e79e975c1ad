"""ROS 2 nodes of pld_reward: the only modules of this package that import rclpy."""
