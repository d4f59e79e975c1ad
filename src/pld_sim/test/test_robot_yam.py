"""The YAM arm model: actuators, render-cheap geometry, home pose, gripper and IK tracking in the env."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

import pld_sim
from pld_sim.control import orientation_error
from pld_sim.experts.gpu_insertion import yam_down_quat
from pld_sim.robots import get_robot
from pld_sim.robots.yam import ARM_JOINTS, coarse_mesh, load_yam

TASK = "gpu_insertion_stage1"  # the YAM's scene


@pytest.fixture(scope="module")
def model() -> mujoco.MjModel:
    return load_yam().compile()


@pytest.fixture(scope="module")
def env():
    env = pld_sim.make(TASK, render_images=False, time_limit_s=1000.0)
    yield env
    env.close()


def test_registered_with_source_and_licence() -> None:
    spec = get_robot("yam")
    assert "i2rt" in spec.source and "yam.xml" in spec.source
    assert spec.license.startswith("MIT")
    assert spec.arm_joints == ARM_JOINTS and len(spec.home_qpos) == 6


def test_every_joint_is_actuated_and_the_moving_links_are_gravity_compensated(model) -> None:
    names = {model.actuator(i).name for i in range(model.nu)}
    assert names == {*ARM_JOINTS, "gripper"}
    for name in ("link1", "link2", "link3", "link4", "link5", "gripper", "tip_left", "tip_right"):
        assert model.body_gravcomp[model.body(name).id] == 1.0


def test_fast_cameras_see_coarse_geometry_and_not_the_detailed_meshes(model) -> None:
    fast_groups = {0, 1, 3}  # env.VISUAL_GROUPS["fast"]
    rendered = [
        g for g in range(model.ngeom) if model.geom_group[g] in fast_groups and model.geom_rgba[g, 3] > 0
    ]
    bodies = {model.body(model.geom_bodyid[g]).name for g in rendered}
    assert {"base", "link1", "link2", "link3", "link4", "link5", "gripper", "tip_left", "tip_right"} <= bodies
    faces = sum(
        int(model.mesh_facenum[model.geom_dataid[g]])
        for g in rendered
        if model.geom_type[g] == mujoco.mjtGeom.mjGEOM_MESH
    )
    detailed = sum(
        int(model.mesh_facenum[m]) for m in range(model.nmesh) if not model.mesh(m).name.endswith("_coarse")
    )
    assert faces < 15_000 < detailed, (faces, detailed)
    # the detailed meshes stay for visual_detail="full" but never collide
    for g in range(model.ngeom):
        if model.geom_group[g] == 2:
            assert model.geom_contype[g] == 0 and model.geom_conaffinity[g] == 0


def test_coarse_mesh_merges_vertices_and_keeps_the_shape(tmp_path) -> None:
    # a finely tessellated unit square (two triangles per 1 mm cell) written as a binary STL
    n = 40
    grid = np.stack(np.meshgrid(np.arange(n + 1), np.arange(n + 1), indexing="ij"), -1) * 0.001
    tris = []
    for i in range(n):
        for j in range(n):
            a, b, c, d = grid[i, j], grid[i + 1, j], grid[i + 1, j + 1], grid[i, j + 1]
            tris += [[a, b, c], [a, c, d]]
    tris = np.concatenate([np.asarray(tris), np.zeros((len(tris), 3, 1))], axis=2)  # z = 0
    record = np.dtype([("normal", "<f4", 3), ("vertices", "<f4", (3, 3)), ("attribute", "<u2")])
    data = np.zeros(len(tris), record)
    data["vertices"] = tris
    path = tmp_path / "square.stl"
    path.write_bytes(b"\0" * 80 + np.uint32(len(tris)).tobytes() + data.tobytes())
    vertices, faces = coarse_mesh(str(path), 0.01)
    assert len(faces) < len(tris) / 10
    assert faces.max() < len(vertices)
    assert np.all(faces[:, 0] != faces[:, 1]) and np.all(faces[:, 1] != faces[:, 2])
    # still spans the square, to within one clustering cell
    assert vertices[:, :2].min() < 0.01 and vertices[:, :2].max() > 0.03


def test_home_pose_points_the_tcp_down_above_the_workspace(env) -> None:
    obs, _ = env.reset(seed=0)
    pos, quat = obs["proprio"][:3], obs["proprio"][3:7].astype(np.float64)
    rot = np.empty(9)
    mujoco.mju_quat2Mat(rot, quat)
    approach = rot.reshape(3, 3)[:, 2]
    assert 0.25 < pos[0] < 0.35 and abs(pos[1]) < 0.02 and 0.15 < pos[2] < 0.25
    assert approach[2] < -0.9, f"the TCP does not point down: approach axis {approach}"


def test_gripper_opens_and_closes_at_a_realistic_speed(env) -> None:
    obs, _ = env.reset(seed=0)
    assert obs["proprio"][7] == pytest.approx(0.095, abs=0.002)
    widths = []
    for _ in range(12):
        obs, *_ = env.step(np.array([0, 0, 0, 0, 0, 0, 1.0]))
        widths.append(float(obs["proprio"][7]))
    assert widths[-1] < 0.003
    assert widths[0] > 0.075, "the fingers slam shut within one control step"


def test_ik_tracks_tcp_waypoints_across_the_workspace(env) -> None:
    obs, _ = env.reset(seed=0)
    rng = np.random.default_rng(0)
    moving, final = [], []
    for _ in range(6):
        target = np.array([rng.uniform(0.24, 0.40), rng.uniform(-0.12, 0.12), rng.uniform(0.08, 0.18)])
        quat = yam_down_quat(rng.uniform(-0.3, 0.3))
        for _ in range(30):
            pos, cur = obs["proprio"][:3].astype(np.float64), obs["proprio"][3:7].astype(np.float64)
            action = np.concatenate([0.6 * (target - pos), 0.6 * orientation_error(quat, cur), [-1.0]])
            obs, _, _, _, info = env.step(np.clip(action, env.action_space.low, env.action_space.high))
            moving.append(info["ik_tracking_error_m"])
        final.append(np.linalg.norm(obs["proprio"][:3] - target))
    assert max(final) < 0.003, final
    assert np.mean(moving) < 0.01, np.mean(moving)
