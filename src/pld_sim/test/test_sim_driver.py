"""The ROS-free core of the sim node: config validation, task resolution, reject/hold, resets, sim time."""

from __future__ import annotations

import numpy as np
import pytest

from pld_sim.sim_driver import SimDriver, SimDriverConfig, resolve_task
from pld_sim.tasks import TASKS
from pld_sim.tasks.pick_cube import PickCube

# ---------------------------------------------------------------------- config


def test_config_defaults_round_trip_through_dict() -> None:
    cfg = SimDriverConfig()
    assert (cfg.task, cfg.mode, cfg.control_hz) == ("pick_cube", "lockstep", 20.0)
    assert SimDriverConfig.from_dict(cfg.to_dict()) == cfg
    custom = SimDriverConfig.from_dict({"mode": "realtime", "control_hz": 10, "image_size": 32})
    assert custom.control_hz == 10.0 and isinstance(custom.control_hz, float)
    assert custom.sim_config().image_size == 32 and custom.sim_config().substeps == 20


@pytest.mark.parametrize(
    ("values", "match"),
    [
        ({"mode": "fast"}, "mode"),
        ({"task": ""}, "task"),
        ({"seed": -1}, "seed"),
        ({"stage": -2}, "stage"),
        ({"image_size": 8}, "image_size"),
        ({"control_hz": 0.0}, "positive"),
        ({"control_hz": 30.0}, "whole number"),  # 1 / (30 Hz * 5 ms) is not a whole number of substeps
        ({"command_timeout_s": 0.0}, "command_timeout_s"),
        ({"command_timeout_s": 0.02}, "one control period"),
        ({"publish_phase_s": -0.01}, "publish_phase_s"),
        ({"publish_phase_s": 0.05}, "shorter than one control"),
        ({"visual_detail": "ultra"}, "visual_detail"),
        ({"image_size": 64.0}, "image_size must be a int"),
        ({"publish_clock": 1}, "publish_clock"),
        ({"frame": "base"}, "unknown"),
    ],
)
def test_config_rejects_invalid_values(values: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        SimDriverConfig.from_dict(values)


def test_resolve_task_maps_stages_to_registry_names() -> None:
    known = {"pick_cube": 1, "gpu_insertion": 1, "gpu_insertion_stage3": 1}
    assert resolve_task("pick_cube", 0, known) == "pick_cube"
    assert resolve_task("gpu_insertion", 3, known) == "gpu_insertion_stage3"
    assert resolve_task("gpu_insertion_stage3", 3, known) == "gpu_insertion_stage3"
    with pytest.raises(ValueError, match=r"no stage 2.*known tasks: \['gpu_insertion'"):
        resolve_task("gpu_insertion", 2, known)
    with pytest.raises(ValueError, match=r"unknown task 'stack'; known tasks: \['gpu_insertion'"):
        resolve_task("stack", 0, known)
    with pytest.raises(ValueError, match="stage"):
        resolve_task("pick_cube", -1, known)


# ---------------------------------------------------------------------- driver


@pytest.fixture(scope="module")
def driver():
    driver = SimDriver(SimDriverConfig(image_size=32, seed=5))
    yield driver
    driver.close()


def tcp(driver: SimDriver) -> np.ndarray:
    return driver.observation["proprio"][:3].astype(np.float64)


def gripper_width(driver: SimDriver) -> float:
    return float(driver.observation["proprio"][driver.proprio_names.index("gripper_width")])


def test_starts_with_an_observation_of_the_configured_task(driver: SimDriver) -> None:
    obs = driver.observation
    assert (driver.task_name, driver.seed, driver.episode_id, driver.step) == ("pick_cube", 5, 0, 0)
    assert driver.camera_names == ["side", "wrist"]
    assert all(image.shape == (32, 32, 3) and image.dtype == np.uint8 for image in obs["images"].values())
    assert len(driver.proprio_names) == obs["proprio"].shape[0]
    assert driver.frame_id == "base"  # the FR3 model's root body
    positions, velocities, efforts = driver.joint_state()
    assert driver.joint_names[:7] == [f"fr3_joint{i}" for i in range(1, 8)]
    assert positions.shape == velocities.shape == efforts.shape == (len(driver.joint_names),)
    arm = [driver.proprio_names.index(f"fr3_joint{i}_pos") for i in range(1, 8)]
    np.testing.assert_allclose(positions[:7], obs["proprio"][arm], atol=1e-6)


def test_invalid_commands_are_rejected_counted_and_the_arm_holds(driver: SimDriver) -> None:
    driver.reset(seed=1)
    for _ in range(3):  # let the start pose settle
        driver.hold()
    before = driver.stats.to_dict()
    start_tcp, start_step = tcp(driver), driver.step
    bad = [
        [np.nan, 0, 0, 0, 0, 0, 0],
        [0, 0, np.inf, 0, 0, 0, 0],
        [0.01] * 6,  # wrong length
        np.zeros((7, 2)),
        "close",
    ]
    for action in bad:
        assert driver.apply(action) is False
    stats = driver.stats
    assert stats.rejected - before["rejected"] == len(bad)
    assert stats.holds - before["holds"] == len(bad)
    assert stats.accepted == before["accepted"]
    assert driver.step == start_step + len(bad)  # each rejection still took one (hold) step
    assert "shape" in stats.last_reject_reason or "7 numbers" in stats.last_reject_reason
    assert np.linalg.norm(tcp(driver) - start_tcp) < 2e-3, "the arm moved on a rejected command"
    # positive control: a valid command does move the TCP (+x, 2 cm per step at most)
    for _ in range(5):
        assert driver.apply([0.02, 0, 0, 0, 0, 0, -1]) is True
    assert tcp(driver)[0] - start_tcp[0] > 0.03
    assert driver.stats.accepted == before["accepted"] + 5


def test_hold_keeps_the_last_valid_gripper_command(driver: SimDriver) -> None:
    driver.reset(seed=2)
    open_width = gripper_width(driver)
    assert driver.apply([0, 0, 0, 0, 0, 0, 1.0])  # close
    for _ in range(10):
        driver.apply([np.nan] * 7)  # holds must keep closing, not reopen
    assert gripper_width(driver) < open_width - 0.02
    driver.reset(seed=2)  # a new episode starts open again
    for _ in range(10):
        driver.hold()
    assert gripper_width(driver) == pytest.approx(open_width, abs=2e-3)


def test_screen_counts_a_rejection_without_stepping(driver: SimDriver) -> None:
    step, rejected = driver.step, driver.stats.rejected
    assert driver.screen([np.nan] * 7) is None
    np.testing.assert_array_equal(driver.screen([0.0] * 7), np.zeros(7))
    assert (driver.step, driver.stats.rejected) == (step, rejected + 1)


def test_resets_are_seeded_and_sim_time_never_goes_back(driver: SimDriver) -> None:
    times = [driver.sim_time_ns]
    episode = driver.episode_id
    seed, instruction = driver.reset("pick_cube", 11)
    assert (seed, instruction) == (11, "pick up the blue cube")
    assert driver.episode_id == episode + 1 and driver.step == 0
    cube = driver.observation["privileged"].copy()
    times.append(driver.sim_time_ns)
    for _ in range(3):
        driver.hold()
        times.append(driver.sim_time_ns)
    driver.reset(seed=11)
    times.append(driver.sim_time_ns)
    np.testing.assert_array_equal(driver.observation["privileged"], cube)
    assert np.all(np.diff(times) > 0), times
    assert np.diff(times)[2] == driver.period_ns == 50_000_000
    drawn, _ = driver.reset(seed=-1)
    assert drawn >= 0
    assert not np.array_equal(driver.observation["privileged"], cube)


def test_drawn_seeds_follow_the_config_seed() -> None:
    seeds = []
    for _ in range(2):
        d = SimDriver(SimDriverConfig(image_size=16, seed=3, visual_detail="fast"))
        seeds.append([d.reset(seed=-1)[0] for _ in range(3)])
        d.close()
    assert seeds[0] == seeds[1] and len(set(seeds[0])) == 3


def test_unknown_task_is_refused_and_the_episode_kept(driver: SimDriver) -> None:
    driver.reset(seed=4)
    env, episode = driver.env, driver.episode_id
    with pytest.raises(ValueError, match=r"unknown task 'stack_cups'; known tasks: .*'pick_cube'"):
        driver.reset("stack_cups", 1)
    with pytest.raises(ValueError, match="no stage 2"):
        driver.reset("pick_cube", 1, stage=2)
    assert driver.env is env and driver.episode_id == episode and driver.task_name == "pick_cube"


def test_task_change_rebuilds_the_env_and_staged_names_resolve(
    driver: SimDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    class PickCubeStage2(PickCube):
        name = "pick_cube_stage2"

    monkeypatch.setitem(TASKS, PickCubeStage2.name, PickCubeStage2)
    driver.reset("pick_cube", 1)
    env, before_ns = driver.env, driver.sim_time_ns
    driver.reset("", 1)  # empty task keeps the current one, without rebuilding
    assert driver.env is env
    driver.reset("pick_cube", 1, stage=2)
    assert driver.env is not env and driver.task_name == "pick_cube_stage2" and driver.stage == 2
    assert driver.sim_time_ns > before_ns
    assert driver.apply([0.0] * 7)
    driver.reset("pick_cube", 1)
    assert driver.task_name == "pick_cube"
