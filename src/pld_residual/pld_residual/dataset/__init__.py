"""PLD datasets: one rosbag2 (MCAP) per episode plus an index, written and read without rclpy.

`writer.DatasetWriter` is the one writer: `pld collect` uses it in-process and the recorder node feeds it
the raw CDR bytes it subscribes to. `reader` turns bags back into SFT episodes, `verify` checks a dataset.
"""
