"""The PLD graph for pick_cube on the Franka (sim:=true: the simulated Franka). Arguments: `ros2 launch
pld_franka_bringup pick_cube.launch.py --show-args`; what they change: pld_franka_bringup/graph.py.

    ros2 launch pld_franka_bringup pick_cube.launch.py mode:=collect checkpoint:=runs/.../best_policy
"""

from pld_franka_bringup.launch_description import graph_launch_description


def generate_launch_description():
    return graph_launch_description("pick_cube")
