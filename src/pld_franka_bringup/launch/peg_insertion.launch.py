"""The PLD graph for peg_insertion on the Franka (sim:=true: the simulated Franka). Arguments: `ros2 launch
pld_franka_bringup peg_insertion.launch.py --show-args`; what they change: pld_franka_bringup/graph.py.
"""

from pld_franka_bringup.launch_description import graph_launch_description


def generate_launch_description():
    return graph_launch_description("peg_insertion")
