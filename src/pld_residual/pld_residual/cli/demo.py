"""Run the main job on the simulated robot and write its results under runs/.

Until the PLD pipeline exists (pretrain -> evaluate base -> learn -> collect -> distill -> evaluate)
this runs a minimal simulated episode (physics + offscreen camera) and writes its summary and frames.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import datetime
from pathlib import Path

from pld_residual.cli.workspace import workspace_root


def default_out_dir(name: str) -> Path:
    root = workspace_root() or Path.cwd()
    return root / "runs" / f"{datetime.now():%Y%m%d-%H%M%S}-{name}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", type=Path, default=None, help="output directory (default: runs/<timestamp>-demo)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the episode (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=40, help="control steps at 20 Hz (default: %(default)s)")


def run(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from tqdm import tqdm

    from pld_sim.smoke_scene import SmokeEpisodeConfig, run_smoke_episode

    cfg = SmokeEpisodeConfig(steps=args.steps, seed=args.seed)
    out = args.out or default_out_dir("demo")
    out.mkdir(parents=True, exist_ok=True)
    print("pld demo: the PLD pipeline is not built yet; running a minimal simulated episode.")
    start = time.perf_counter()
    with tqdm(total=cfg.steps, desc="episode", unit="step") as bar:
        result = run_smoke_episode(cfg, on_step=lambda _: bar.update(1))
    elapsed = time.perf_counter() - start

    strip = np.concatenate(result.frames[:: max(1, cfg.steps // 8)][:8], axis=1)
    plt.imsave(out / "frames.png", strip)
    fig, ax = plt.subplots(figsize=(5, 3))
    t = np.arange(1, cfg.steps + 1) / cfg.control_hz
    ax.plot(t, result.cube_heights)
    ax.set_xlabel("time [s]")
    ax.set_ylabel("cube height [m]")
    ax.set_title("minimal episode: cube dropped on the table")
    fig.tight_layout()
    fig.savefig(out / "cube_height.png", dpi=100)
    plt.close(fig)

    summary = {
        "job": "minimal-sim-episode",
        "seed": cfg.seed,
        "steps": cfg.steps,
        "control_hz": cfg.control_hz,
        "success": result.settled_on_table,
        "final_cube_height_m": result.cube_heights[-1],
        "wall_time_s": round(elapsed, 3),
        "sim_realtime_factor": round(cfg.steps / cfg.control_hz / elapsed, 1),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    print(f"results: {out}/summary.json, frames.png, cube_height.png")
    return 0 if result.settled_on_table else 1
