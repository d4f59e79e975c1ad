"""The learner alone, for a graph started with `learner:=remote` (e.g. on a GPU machine in the same ROS
domain as the robot machine):

    ros2 launch launch/remote_learner.launch.py task:=pick_cube namespace:=franka

It loads the learner's section of src/pld_franka_bringup/config/<task>.yaml, as the robot graph does.
Note: the `learner` executable of pld_residual does not exist yet (a later issue adds it); until then this
file parses and builds its description, but starting it fails with "executable 'learner' not found".
"""

from pld_franka_bringup.launch_description import remote_learner_launch_description


def generate_launch_description():
    return remote_learner_launch_description()
