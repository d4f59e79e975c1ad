"""The recorder: raw CDR messages of the ROS graph -> one rosbag2 (MCAP) per episode plus the dataset index.

`core.DatasetRecorder` is ROS-free (it is fed bytes and decoded episode events); the thin node is
`pld_residual.ros.recorder_node`. Bags are written through `pld_residual.dataset.writer`, the same writer as
`pld collect`, so both kinds of dataset read back alike.
"""
