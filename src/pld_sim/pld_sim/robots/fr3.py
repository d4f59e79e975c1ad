"""Franka Research 3 with the Franka Hand, from the model that ships inside `franky-sim`."""

from __future__ import annotations

from pathlib import Path

import mujoco

from pld_sim.robots.base import RobotSpec, register_robot


def _fr3_assets() -> Path:
    import franky_sim  # the FR3 model (menagerie fr3.xml + Panda hand) ships inside franky-sim

    return Path(franky_sim.__file__).parent / "assets"


# Franka Hand: the TCP (between the fingertip pads) is 0.1034 m along the flange z axis.
FR3_TCP_OFFSET = 0.1034
FR3_HAND_STIFFNESS_SCALE = 5.0


def load_fr3() -> mujoco.MjSpec:
    assets = _fr3_assets()
    spec = mujoco.MjSpec.from_file(str(assets / "fr3.xml"))
    spec.meshdir = str(assets / "meshes")
    # The real FR3 controller compensates gravity; without it position targets sag under load.
    for body in spec.bodies:
        if body.name.startswith("fr3_link") or body.name in ("hand", "left_finger", "right_finger"):
            body.gravcomp = 1.0
    # Fast visuals: the collision meshes (3k triangles) are what the cameras render by default; the
    # detailed visual meshes (240k triangles) cost ~28 ms per 64 px frame on a CPU (scene.VISUAL_DETAIL).
    for geom in spec.geoms:
        if geom.group == 3:
            geom.rgba = [0.92, 0.92, 0.92, 1.0] if geom.name.startswith("fr3_link") else [0.2, 0.2, 0.2, 1.0]
    # The menagerie hand actuator is a soft position servo (100 N/m): it needs > 1 s to close and squeezes a
    # 5 cm cube with ~2.5 N, so lifted objects slip. Five times stiffer gives the real hand's ~0.1 m/s
    # closing speed and a ~12 N grasp (the real Franka Hand holds up to 70 N).
    hand_actuator = spec.actuator("hand")
    hand_actuator.gainprm[0] *= FR3_HAND_STIFFNESS_SCALE
    hand_actuator.biasprm[1] *= FR3_HAND_STIFFNESS_SCALE
    hand_actuator.biasprm[2] *= FR3_HAND_STIFFNESS_SCALE
    hand = spec.body("hand")
    hand.add_site(name="tcp", pos=[0.0, 0.0, FR3_TCP_OFFSET], size=[0.005, 0.005, 0.005], group=4)
    # Keyframes refer to the robot's own qpos; a scene has more DoFs, so the scene sets home itself.
    for key in list(spec.keys):
        spec.delete(key)
    return spec


FR3 = register_robot(
    RobotSpec(
        name="fr3",
        load=load_fr3,
        arm_joints=tuple(f"fr3_joint{i}" for i in range(1, 8)),
        arm_actuators=tuple(f"fr3_joint{i}" for i in range(1, 8)),
        gripper_actuator="hand",
        # the menagerie Franka Hand actuator maps 0..255 to closed..open (0..0.04 m per finger)
        gripper_ctrl_open=255.0,
        gripper_ctrl_closed=0.0,
        gripper_joints=("finger_joint1", "finger_joint2"),
        gripper_width_per_joint=1.0,
        tcp_site="tcp",
        wrist_camera_body="hand",
        wrist_camera_pos=(0.06, 0.0, 0.04),
        # looks along the hand's +z (towards the fingers), image up towards the hand's -x
        wrist_camera_xyaxes=(0.0, -1.0, 0.0, -1.0, 0.0, 0.0),
        home_qpos=(0.0, -0.3, 0.0, -2.2, 0.0, 1.9, 0.7854),
        source="franky-sim 1.0.4 (franky_sim/assets/fr3.xml: MuJoCo Menagerie FR3 with the Panda hand)",
        license="Apache-2.0 (Franka Robotics GmbH, Google DeepMind; see franky_sim/assets/NOTICE)",
    )
)
