"""The residual actor without ROS: config, chunk indexing, the safety combiner and the control step.

Imported by `pld_residual.ros.residual_actor_node` and usable in-process (tests, benchmarks) alike.
"""
