"""Scripted expert for `pick_cube`: above the cube, aligned -> descend -> close -> lift."""

from __future__ import annotations

from typing import Any

import numpy as np

from pld_sim.experts.base import ScriptedExpert, grasp_yaw, register_expert, top_down_quat

OPEN, CLOSED = -1.0, 1.0
APPROACH_HEIGHT = 0.10
LIFT_HEIGHT = 0.15
MAX_CLOSE_STEPS = 20


@register_expert
class PickCubeExpert(ScriptedExpert):
    task = "pick_cube"

    def plan(self, obs: dict[str, Any]) -> np.ndarray:
        cube_pos, cube_quat = obs["privileged"][:3], obs["privileged"][3:7]
        quat = top_down_quat(grasp_yaw(cube_quat))
        above = cube_pos + np.array([0.0, 0.0, APPROACH_HEIGHT])
        if self.phase == 0:  # above the cube, fingers aligned with its faces
            action, dist = self.move_towards(obs, above, quat, OPEN)
            if dist < 0.01 and self.phase_steps > 3:
                self.advance()
        elif self.phase == 1:  # down to grasp height
            action, dist = self.move_towards(obs, cube_pos + np.array([0, 0, 0.005]), quat, OPEN)
            if dist < 0.008:
                self.advance()
        elif self.phase == 2:  # close until the fingers rest on the cube's faces
            action, _ = self.move_towards(obs, cube_pos + np.array([0, 0, 0.005]), quat, CLOSED)
            cube_width = 2 * obs["privileged"][7]
            if obs["proprio"][7] < cube_width + 0.004 or self.phase_steps >= MAX_CLOSE_STEPS:
                self.lift_xy = obs["proprio"][:2].astype(np.float64)  # lift straight up from here
                self.advance()
        else:  # lift (not towards the cube: chasing a cube that shifts in the hand would drag the hand along)
            target = np.array([self.lift_xy[0], self.lift_xy[1], LIFT_HEIGHT])
            action, _ = self.move_towards(obs, target, quat, CLOSED)
        return action
