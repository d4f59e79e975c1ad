"""Franka bringup: Franka driver node and the Franka launch files (pick_cube.launch.py,
peg_insertion.launch.py).
"""
