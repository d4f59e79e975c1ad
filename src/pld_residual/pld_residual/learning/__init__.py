"""PLD stage 1 without ROS: the in-process learning loop (`learn`, `pld learn`) and the baselines.

`base_env.BaseGuidedEnv` runs the frozen base VLA inside the task env, `action_space` maps the agent's
normalised actions to the robot's, `methods` holds PLD and the baselines as switches, `loop.learn` runs a
whole resumable run into `runs/<timestamp>-learn-<task>-<method>/`.
"""

from pld_residual.learning.config import LearnConfig
from pld_residual.learning.methods import METHODS, MethodSpec

__all__ = ["METHODS", "LearnConfig", "MethodSpec"]
