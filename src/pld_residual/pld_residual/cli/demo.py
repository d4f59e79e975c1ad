"""Run the main job on the simulated robot and write its results under runs/.

Until the PLD pipeline exists (pretrain -> evaluate base -> learn -> collect -> distill -> evaluate)
this runs scripted-expert episodes of `pick_cube` on the simulated Franka FR3 and writes a summary,
the camera frames and the cube-height curve.
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
    parser.add_argument("--out", type=Path, default=None, help="output directory (default: runs/<time>-demo)")
    parser.add_argument("--task", default="pick_cube", help="simulated task (default: %(default)s)")
    parser.add_argument("--episodes", type=int, default=3, help="episodes to run (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="first episode's seed (default: %(default)s)")


def run(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from tqdm import tqdm

    import pld_sim
    from pld_sim.experts import make_expert

    if args.episodes < 1:
        raise SystemExit("pld demo: --episodes must be at least 1")
    out = args.out or default_out_dir("demo")
    out.mkdir(parents=True, exist_ok=True)
    print(
        f"pld demo: the PLD pipeline is not built yet; running {args.episodes} scripted-expert "
        f"episode(s) of {args.task} on the simulated robot."
    )
    env = pld_sim.make(args.task)
    start = time.perf_counter()
    episodes, strip, heights = [], [], []
    for episode in tqdm(range(args.episodes), desc=args.task, unit="episode"):
        seed = args.seed + episode
        obs, info = env.reset(seed=seed)
        expert = make_expert(env, seed=seed)
        frames, tcp_heights = [obs["images"]["side"]], [float(obs["proprio"][2])]
        terminated = truncated = False
        while not (terminated or truncated):
            obs, _, terminated, truncated, info = env.step(expert.act(obs))
            frames.append(obs["images"]["side"])
            tcp_heights.append(float(obs["proprio"][2]))
        episodes.append({"seed": seed, "success": bool(info["success"]), "steps": env.step_count})
        heights.append(tcp_heights)
        if episode == 0:
            strip = [*frames[:: max(1, len(frames) // 6)][:6], frames[-1]]
    elapsed = time.perf_counter() - start

    plt.imsave(out / "frames.png", np.concatenate(strip, axis=1))
    fig, ax = plt.subplots(figsize=(5, 3))
    for record, tcp in zip(episodes, heights, strict=True):
        ax.plot(np.arange(len(tcp)) / env.cfg.control_hz, tcp, label=f"seed {record['seed']}")
    ax.set_xlabel("time [s]")
    ax.set_ylabel("TCP height [m]")
    ax.set_title(f"{args.task}: scripted expert")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "tcp_height.png", dpi=100)
    plt.close(fig)

    successes = sum(e["success"] for e in episodes)
    summary = {
        "job": "scripted-expert-episodes",
        "task": args.task,
        "instruction": obs["instruction"],
        "episodes": episodes,
        "success_rate": successes / len(episodes),
        "wall_time_s": round(elapsed, 2),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    print(f"results: {out}/summary.json, frames.png, tcp_height.png")
    return 0 if successes == len(episodes) else 1
