"""I2RT YAM 6-DoF arm with the linear_4310 parallel gripper, from the models inside `dreamscale-i2rt`.

The i2rt MJCF is kinematics and inertia only: every geom is a detailed visual mesh in group 0 and the
model has no actuators. Here we add what the simulator needs:

- position actuators for the 6 arm joints (with reflected-rotor armature) and for the gripper,
  and gravity compensation on the moving bodies, as the real YAM controller compensates gravity;
- render-cheap geometry: the detailed meshes (104k triangles, ~37 ms per 64 px frame on a CPU) move
  to group 2 ("full" visual detail); a vertex-clustered copy (~8k triangles) goes to group 3, which the
  "fast" cameras render. The coarse arm links also collide (MuJoCo uses their convex hulls); the
  fingers collide through box pads on their inner faces, because a fingertip mesh's convex hull
  includes its carriage and would fill the space between the fingers;
- the TCP site (i2rt's `grasp_site`, midway between the fingertip facets) and the wrist camera at the
  D405 mount pose of i2rt's `yam_station_linear_4310_d405` model.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import mujoco
import numpy as np

from pld_sim.robots.base import RobotSpec, register_robot

ARM_JOINTS = tuple(f"joint{i}" for i in range(1, 7))
FINGER_JOINTS = ("joint7", "joint8")  # joint8 follows joint7 through the model's equality constraint
FINGER_TRAVEL_M = 0.0475  # per finger: 0 = closed (the pads touch), 0.0475 = open
LINK_BODIES = ("link1", "link2", "link3", "link4", "link5", "gripper", "tip_left", "tip_right")
FINGER_BODIES = ("tip_left", "tip_right")
TCP_SITE = "grasp_site"

# Armature (kg m^2): of the order of the reflected rotor inertia of the geared DM4340 (joints 1-3) and
# DM4310 (joints 4-6) drives; it also keeps the light wrist stable under the servos at a 5 ms step.
ARMATURE = (0.05, 0.05, 0.05, 0.01, 0.01, 0.01)
# Position-servo gains: ~45 rad/s bandwidth, about critically damped on the effective joint inertia
# (armature + links, from the mass matrix over the workspace: 0.12-0.5, 0.14-0.6, 0.27, 0.032, 0.015,
# 0.011 kg m^2), so a 20 Hz target is reached within about a control step. Stiffer servos track a
# sudden stop better (the env's velocity feed-forward leads the target by kv/kp = 45 ms of motion,
# which overshoots a stop from full speed by ~1 cm here) but move the arm in 20 Hz bursts whose
# accelerations shake a held card in the grasp (3x kp: stage-1 expert at noise 0.1 falls from 94 % to
# about 50 %).
ARM_KP = (500.0, 600.0, 500.0, 60.0, 30.0, 20.0)
ARM_KV = (22.0, 27.0, 24.0, 2.8, 1.3, 0.9)
ARM_FORCE_LIMIT_NM = 10.0  # i2rt's actuatorfrcrange on every arm joint
# Gripper servo on the mean finger opening (a tendon over both finger joints, so both fingers get the
# same force even while the soft equality that couples them stretches): ~20 N squeeze per finger on a
# 16 mm handle (error 8 mm), at most 25 N per finger. The fingers' speed is limited to ~0.1 m/s
# (about the real gripper's) by joint damping, which the implicit integrator handles stably; servo
# damping would not be, because it is clamped with the force (the 70 g fingers then chatter and slam
# through a thin object within one control step).
GRIPPER_KP = 5000.0
GRIPPER_FORCE_LIMIT_N = 50.0  # on the tendon: half of it on each finger
FINGER_DAMPING = 250.0  # N s/m per finger: 25 N / 250 = 0.1 m/s
# Reflected inertia of the lead-screw finger drive. It also makes finger contacts stiff: MuJoCo's soft
# contacts scale with the bodies' effective mass, and on bare 70 g fingers a 16 mm handle is squeezed
# to under 10 mm and slips out.
FINGER_ARMATURE = 0.2
FINGER_COUPLING_SOLREF = (0.01, 1.0)  # i2rt's joint7 = joint8 equality, stiffer than the default

# Robot geoms collide with the world (contype 1 / conaffinity 1) but not with each other: the links'
# convex hulls overlap at the joints, and the real arm has no self-collision model either.
ROBOT_CONTYPE, ROBOT_CONAFFINITY = 2, 1
COARSE_MESH_CELL_M = 0.004  # vertex-clustering grid: far below one pixel at 64-128 px
LINK_RGBA = (0.42, 0.42, 0.45, 1.0)  # the real YAM is dark grey; lighter reads better at 64 px
GRIPPER_RGBA = (0.25, 0.25, 0.27, 1.0)
FINGER_RGBA = (0.75, 0.75, 0.78, 1.0)
# Finger pads in the TCP (grasp_site) frame at closed fingers: +y is the left finger's side, z = 0 the
# fingertip facets, -z towards the wrist. Half sizes and centre of the left pad; the right one mirrors.
PAD_HALF = (0.009, 0.003, 0.02)
PAD_CENTER = (0.0, 0.003, -0.02)
PAD_FRICTION = (1.5, 0.02, 0.0001)
PAD_SOLREF = (0.01, 1.0)  # the stiffest stable time constant at a 5 ms step (2 * dt)
PAD_SOLIMP = (0.95, 0.99, 0.001, 0.5, 2.0)

# Wrist camera: the D405 optical frame on the flange (`gripper` body) from i2rt's
# station/yam_station_linear_4310_d405 model, position (0, -0.0704, 0.0770), OpenCV axes
# (x right, y down, z forward) tilted 25 deg about the flange x axis towards the fingers. MuJoCo
# cameras look along -z with y up: MuJoCo x = OpenCV x, MuJoCo y = -OpenCV y.
WRIST_CAMERA_POS = (0.0, -0.0704, 0.0770)
WRIST_CAMERA_QUAT_OPENCV = (-0.9762948880484529, 0.2164446616738001, 0.0, 0.0)


def _mujoco_camera_xyaxes(quat_opencv: tuple[float, ...]) -> tuple[float, ...]:
    rot = np.empty(9)
    mujoco.mju_quat2Mat(rot, np.asarray(quat_opencv) / np.linalg.norm(quat_opencv))
    rot = rot.reshape(3, 3)
    return tuple(float(v) for v in (*rot[:, 0], *(-rot[:, 1])))


WRIST_CAMERA_XYAXES = _mujoco_camera_xyaxes(WRIST_CAMERA_QUAT_OPENCV)

# Home: TCP 0.30 m in front of the base, 0.20 m above the table, pointing down (tilted 0.3 rad
# outwards about the finger axis, which keeps the wrist off its joint-4 limit), fingers closing
# along the world y axis (solved once with the IK; see test_robot_yam.py).
HOME_QPOS = (0.0, 1.42, 1.45, -1.3, 0.0, 0.0)


@functools.cache
def _combined_xml() -> str:
    """The YAM arm with the linear_4310 gripper merged onto its flange, by i2rt's own helper."""
    from i2rt.robots.utils import ArmType, GripperType, combine_arm_and_gripper_xml

    path = combine_arm_and_gripper_xml(ArmType.YAM, GripperType.LINEAR_4310)
    try:  # the helper writes a fresh file in /tmp on every call; it is ours to remove
        return Path(path).read_text()
    finally:
        os.remove(path)


def _read_binary_stl(path: str) -> np.ndarray:
    """Triangles (n, 3, 3) of a binary STL file."""
    raw = Path(path).read_bytes()
    count = int(np.frombuffer(raw, np.uint32, count=1, offset=80)[0])
    if len(raw) != 84 + 50 * count:
        raise ValueError(f"{path} is not a binary STL file")
    record = np.dtype([("normal", "<f4", 3), ("vertices", "<f4", (3, 3)), ("attribute", "<u2")])
    return np.frombuffer(raw, record, count=count, offset=84)["vertices"].astype(np.float64)


@functools.cache
def coarse_mesh(path: str, cell: float = COARSE_MESH_CELL_M) -> tuple[np.ndarray, np.ndarray]:
    """Vertex-clustered copy of an STL mesh: (vertices (n, 3), faces (m, 3)).

    Vertices in the same `cell`-sized grid cube merge into their mean; collapsed and duplicate
    triangles are dropped. Cheap to render and good enough for 64-128 px cameras.
    """
    vertices = _read_binary_stl(path).reshape(-1, 3)
    cells = np.floor(vertices / cell).astype(np.int64)
    cells -= cells.min(axis=0)
    span = cells.max(axis=0) + 1
    keys = (cells[:, 0] * span[1] + cells[:, 1]) * span[2] + cells[:, 2]
    _, cluster = np.unique(keys, return_inverse=True)
    count = np.bincount(cluster)
    merged = np.stack([np.bincount(cluster, vertices[:, k]) for k in range(3)], axis=1) / count[:, None]
    faces = cluster.reshape(-1, 3)
    faces = faces[(faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])]
    _, first = np.unique(np.sort(faces, axis=1), axis=0, return_index=True)
    faces = faces[np.sort(first)]
    used, faces = np.unique(faces, return_inverse=True)
    return merged[used], faces.reshape(-1, 3)


def _pose_in(parent_pos, parent_quat, pos, quat) -> tuple[np.ndarray, np.ndarray]:
    """Pose given in frame A, re-expressed in frame B, where (parent_pos, parent_quat) is B in A."""
    inverse = np.empty(4)
    mujoco.mju_negQuat(inverse, np.asarray(parent_quat, dtype=np.float64))
    local = np.empty(3)
    mujoco.mju_rotVecQuat(local, np.asarray(pos, dtype=np.float64) - parent_pos, inverse)
    local_quat = np.empty(4)
    mujoco.mju_mulQuat(local_quat, inverse, np.asarray(quat, dtype=np.float64))
    return local, local_quat


def _add_finger_pads(spec: mujoco.MjSpec) -> None:
    """Box pads on the fingers' inner faces; the TCP site and the tip bodies share one parent frame."""
    site = spec.site(TCP_SITE)
    site_pos, site_quat = np.asarray(site.pos, dtype=np.float64), np.asarray(site.quat, dtype=np.float64)
    for name, side in (("tip_left", 1.0), ("tip_right", -1.0)):
        body = spec.body(name)
        center = np.array([PAD_CENTER[0], side * PAD_CENTER[1], PAD_CENTER[2]])
        in_frame = np.empty(3)
        mujoco.mju_rotVecQuat(in_frame, center, site_quat)
        pos, quat = _pose_in(
            np.asarray(body.pos, dtype=np.float64), np.asarray(body.quat), site_pos + in_frame, site_quat
        )
        body.add_geom(
            name=f"{name}_pad",
            type=mujoco.mjtGeom.mjGEOM_BOX,
            size=list(PAD_HALF),
            pos=pos.tolist(),
            quat=quat.tolist(),
            group=3,
            rgba=list(FINGER_RGBA),
            friction=list(PAD_FRICTION),
            solref=list(PAD_SOLREF),
            solimp=list(PAD_SOLIMP),
            condim=4,
            contype=ROBOT_CONTYPE,
            conaffinity=ROBOT_CONAFFINITY,
            mass=0.0,
        )


def _split_geometry(spec: mujoco.MjSpec) -> None:
    """Detailed meshes -> group 2 (visual only); coarse copies -> group 3 (rendered, arm collision)."""
    for mesh in list(spec.meshes):
        vertices, faces = coarse_mesh(mesh.file)
        coarse = spec.add_mesh(name=f"{mesh.name}_coarse")
        coarse.uservert = vertices.ravel().tolist()
        coarse.userface = faces.ravel().tolist()
        coarse.inertia = mujoco.mjtMeshInertia.mjMESH_INERTIA_SHELL
        mesh.inertia = mujoco.mjtMeshInertia.mjMESH_INERTIA_SHELL
    for geom in list(spec.geoms):
        if geom.type != mujoco.mjtGeom.mjGEOM_MESH:
            continue
        body = geom.parent
        fingers = body.name in FINGER_BODIES
        collides = body.name != "base" and not fingers  # the base is welded to the world
        if fingers:
            rgba = FINGER_RGBA
        elif body.name == "gripper":
            rgba = GRIPPER_RGBA
        else:
            rgba = LINK_RGBA
        coarse = body.add_geom(
            name=f"{body.name}_collision",
            type=mujoco.mjtGeom.mjGEOM_MESH,
            meshname=f"{geom.meshname}_coarse",
            pos=list(geom.pos),
            quat=list(geom.quat),
            group=3,
            rgba=list(rgba),
            contype=ROBOT_CONTYPE if collides else 0,
            conaffinity=ROBOT_CONAFFINITY if collides else 0,
            mass=0.0,
        )
        if geom.frame is not None:  # the gripper housing sits in the <frame> i2rt's merge creates
            coarse.set_frame(geom.frame)
        geom.name = f"{body.name}_visual"
        geom.group = 2
        geom.contype = 0
        geom.conaffinity = 0
        geom.mass = 0.0


def _add_actuators(spec: mujoco.MjSpec) -> None:
    for name, armature, kp, kv in zip(ARM_JOINTS, ARMATURE, ARM_KP, ARM_KV, strict=True):
        joint = spec.joint(name)
        joint.armature = armature
        actuator = spec.add_actuator(name=name, target=name, trntype=mujoco.mjtTrn.mjTRN_JOINT)
        actuator.set_to_position(kp=kp, kv=kv)
        actuator.ctrlrange = list(joint.range)
        actuator.ctrllimited = True
        actuator.forcerange = [-ARM_FORCE_LIMIT_NM, ARM_FORCE_LIMIT_NM]
        actuator.forcelimited = True
    tendon = spec.add_tendon(name="fingers")
    for joint in FINGER_JOINTS:
        tendon.wrap_joint(joint, 1.0 / len(FINGER_JOINTS))
    for joint in FINGER_JOINTS:
        spec.joint(joint).damping = [FINGER_DAMPING, 0.0, 0.0]  # MuJoCo 4: polynomial coefficients
        spec.joint(joint).armature = FINGER_ARMATURE
    for equality in spec.equalities:
        equality.solref = list(FINGER_COUPLING_SOLREF)
    gripper = spec.add_actuator(name="gripper", target="fingers", trntype=mujoco.mjtTrn.mjTRN_TENDON)
    gripper.set_to_position(kp=GRIPPER_KP)
    gripper.ctrlrange = [0.0, FINGER_TRAVEL_M]
    gripper.ctrllimited = True
    gripper.forcerange = [-GRIPPER_FORCE_LIMIT_N, GRIPPER_FORCE_LIMIT_N]
    gripper.forcelimited = True


def load_yam() -> mujoco.MjSpec:
    """The YAM + linear_4310 spec with actuators, render-cheap geometry, finger pads and gravcomp."""
    spec = mujoco.MjSpec.from_string(_combined_xml())
    spec.modelname = "yam"
    _split_geometry(spec)
    _add_finger_pads(spec)
    _add_actuators(spec)
    for name in LINK_BODIES:  # the real YAM controller compensates gravity
        spec.body(name).gravcomp = 1.0
    for site in spec.sites:  # i2rt's tcp/grasp sites are coloured markers in group 0: keep them out of images
        site.group = 4
    return spec


YAM = register_robot(
    RobotSpec(
        name="yam",
        load=load_yam,
        arm_joints=ARM_JOINTS,
        arm_actuators=ARM_JOINTS,
        gripper_actuator="gripper",
        gripper_ctrl_open=FINGER_TRAVEL_M,
        gripper_ctrl_closed=0.0,
        gripper_joints=FINGER_JOINTS,
        gripper_width_per_joint=1.0,
        tcp_site=TCP_SITE,
        wrist_camera_body="gripper",
        wrist_camera_pos=WRIST_CAMERA_POS,
        wrist_camera_xyaxes=WRIST_CAMERA_XYAXES,
        home_qpos=HOME_QPOS,
        source=(
            "dreamscale-i2rt 1.3.6.post1: i2rt/robot_models/arm/yam/v1/yam.xml + "
            "gripper/linear_4310/linear_4310.xml, merged by i2rt.robots.utils.combine_arm_and_gripper_xml; "
            "wrist camera pose from station/yam_station_linear_4310_d405"
        ),
        license="MIT (Copyright (c) I2RT Robotics; dreamscale_i2rt-*.dist-info/licenses)",
    )
)
