"""`pld distill`: PLD stage 3, SFT of the base VLA on one or more datasets -> a new VLA checkpoint.

  pld distill --data runs/<collect run> [more datasets] [--base runs/base_vla/flow] [--mode full|head|lora]
              [--steps 2000] [--out DIR]

Datasets: PLD datasets (bags + index.json) or `pld pretrain` trajectory dirs (manifest.json); only
successful episodes are used. Writes <out>/model/ (load it with `pld eval --vla`, `pld learn --base`) and
<out>/distill.json (the data it saw, with each bag's SHA-256). Re-running the same command resumes.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from pathlib import Path

from pld_residual.cli.interrupts import interrupt_on_sigterm


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from pld_residual.distillation import MODES

    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    add = parser.add_argument
    add("--data", type=Path, nargs="+", required=True, help="dataset directories")
    add("--base", type=Path, default=None, help="VLA checkpoint to fine-tune (default: runs/base_vla/flow)")
    add("--mode", choices=MODES, default="full", help="what trains: all, the action head, LoRA adapters")
    add("--steps", type=int, default=2000, help="optimizer steps (default: %(default)s)")
    add("--batch-size", type=int, default=64, help="default: %(default)s")
    add("--lr", type=float, default=3e-4, help="peak learning rate (default: %(default)s)")
    add("--tasks", nargs="+", default=None, help="only these tasks' episodes")
    add("--seed", type=int, default=0, help="default: %(default)s")
    add("--include-failures", action="store_true", help="train on failed episodes too (smoke runs only)")
    add("--checkpoint-every", type=int, default=100, help="steps between resumable checkpoints")
    add("--out", type=Path, default=None, help="output directory; an unfinished run there is resumed")
    add("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from pld_residual.cli.workspace import workspace_root
    from pld_residual.distillation import distill
    from pld_residual.learning.loop import default_base_dir

    interrupt_on_sigterm()  # also when started with SIGINT ignored (nohup, a test runner)
    root = workspace_root() or Path.cwd()
    out = (args.out or root / "runs" / f"{datetime.now():%Y%m%d-%H%M%S}-distill").resolve()
    try:
        manifest = distill(
            args.base or default_base_dir(), args.data, out, args.mode, args.steps, args.batch_size, args.lr,
            args.seed, args.tasks, progress=not args.quiet, checkpoint_every=args.checkpoint_every,
            only_successful=not args.include_failures,
        )  # fmt: skip
    except (FileNotFoundError, ValueError) as exc:
        raise SystemExit(f"pld distill: {exc}") from exc
    print(json.dumps({k: manifest[k] for k in ("model_id", "episodes", "loss_first", "loss_last")}, indent=1))
    print(f"model: {out / manifest['model']}  manifest: {out}/distill.json")
    return 0 if manifest["complete"] else 1
