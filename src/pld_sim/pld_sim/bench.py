"""`pld bench sim`: simulator speed, measured against raw `mujoco.mj_step` of the same model in the same run.

Reports control steps/s without and with rendering (both cameras), render fps per camera, IK solve
time percentiles and our overhead as a ratio to raw MuJoCo. Prints JSON; no pass/fail here (the
targets are checked by whoever reads the numbers, e.g. CI reports).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SimBenchConfig:
    task: str = "pick_cube"
    steps: int = 1000
    render_steps: int = 200
    image_size: int | None = None  # None: the env's default
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 10 or self.render_steps < 10:
            raise ValueError("steps and render_steps must be at least 10")


def _rate(count: int, seconds: float) -> float:
    return round(count / seconds, 1) if seconds > 0 else float("inf")


def run_sim_bench(cfg: SimBenchConfig) -> dict[str, Any]:
    import mujoco
    import numpy as np

    import pld_sim

    options = {} if cfg.image_size is None else {"image_size": cfg.image_size}
    env = pld_sim.make(cfg.task, render_images=False, time_limit_s=1e6, **options)
    env.reset(seed=cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    actions = rng.uniform(env.action_space.low, env.action_space.high, size=(cfg.steps, 7))

    start = time.perf_counter()
    for action in actions:
        env.step(action)
    no_render_s = time.perf_counter() - start

    # raw MuJoCo: the same model and the same number of physics steps per control step, no IK, no obs
    model, data = env.model, env.data
    start = time.perf_counter()
    for _ in range(cfg.steps):
        mujoco.mj_step(model, data, nstep=env.cfg.substeps)
    raw_s = time.perf_counter() - start

    ik_ms = []
    env.reset(seed=cfg.seed)
    for action in actions[:200]:
        pos, quat = env.ik.tcp_pose(env.data)
        start = time.perf_counter()
        env.ik.solve(env.data, pos + action[:3], quat)
        ik_ms.append((time.perf_counter() - start) * 1e3)
        env.step(action)

    render_env = pld_sim.make(cfg.task, render_images=True, time_limit_s=1e6, **options)
    render_env.reset(seed=cfg.seed)
    start = time.perf_counter()
    for action in actions[: cfg.render_steps]:
        render_env.step(action)
    render_s = time.perf_counter() - start

    frames = 0
    start = time.perf_counter()
    for _ in range(cfg.render_steps):
        render_env._render_camera("side")
        frames += 1
    frame_s = time.perf_counter() - start
    render_env.close()

    no_render = _rate(cfg.steps, no_render_s)
    raw = _rate(cfg.steps, raw_s)
    return {
        "task": cfg.task,
        "robot": env.robot.name,
        "image_size": render_env.cfg.image_size,
        "cameras": 2,
        "physics_dt": env.cfg.physics_dt,
        "control_hz": env.cfg.control_hz,
        "steps": cfg.steps,
        "control_steps_per_s_no_render": no_render,
        "control_steps_per_s_render": _rate(cfg.render_steps, render_s),
        "render_fps": _rate(frames, frame_s),
        "raw_control_steps_per_s": raw,
        "overhead_ratio_raw_over_env": round(raw / no_render, 2),
        "ik_solve_ms_p50": round(float(np.percentile(ik_ms, 50)), 4),
        "ik_solve_ms_p99": round(float(np.percentile(ik_ms, 99)), 4),
        "machine": {
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "mujoco": mujoco.__version__,
        },
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", default=SimBenchConfig.task, help="registered task (default: %(default)s)")
    parser.add_argument(
        "--steps",
        type=int,
        default=SimBenchConfig.steps,
        help="control steps without rendering (default: %(default)s)",
    )
    parser.add_argument(
        "--render-steps",
        type=int,
        default=SimBenchConfig.render_steps,
        help="control steps with both cameras (default: %(default)s)",
    )
    parser.add_argument("--image-size", type=int, default=None, help="camera image size (default: the env's)")
    parser.add_argument("--json", action="store_true", help="print only the JSON document")


def run(args: argparse.Namespace) -> int:
    cfg = SimBenchConfig(
        task=args.task, steps=args.steps, render_steps=args.render_steps, image_size=args.image_size
    )
    result = run_sim_bench(cfg)
    if not args.json:
        print(f"pld bench sim: {cfg.task}, {cfg.steps} control steps (+{cfg.render_steps} rendered)")
    print(json.dumps(result, indent=2))
    return 0
