"""Entry point of `pld`: a registry of subcommands, each a module with `add_arguments` and `run`.

Only the standard library is imported here so that `pld --help` and `pld doctor` start even when
the environment is broken; subcommand modules are imported when chosen.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# name -> (module, one-line help).
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "doctor": ("pld_residual.cli.doctor", "check that this machine can run the PLD stack"),
    "demo": ("pld_residual.cli.demo", "run the main job on the simulated robot"),
    "sim": ("pld_sim.cli", "list, check and look at the simulated tasks"),
    "bench": ("pld_residual.cli.bench", "benchmarks that print JSON (e.g. `pld bench sim`)"),
    "pretrain": ("pld_vla_server.pretrain", "train the base VLA on scripted-expert demonstrations"),
    "learn": ("pld_residual.cli.learn", "stage 1: learn a residual RL specialist (or a baseline) in sim"),
    "reward": ("pld_reward.cli", "success classifier: collect labelled frames, train, mine false positives"),
    "collect": (
        "pld_residual.cli.collect",
        "stage 2: roll out a data source (PLD probing, ...), keep successes as bags",
    ),
    "distill": ("pld_residual.cli.distill", "stage 3: fine-tune the base VLA on collected datasets (SFT)"),
    "eval": (
        "pld_residual.cli.eval",
        "success rate (with 95 %% intervals) of VLA checkpoints on seeded sim episodes",
    ),
    "dataset": ("pld_residual.cli.dataset", "PLD datasets (episode bags): info, verify"),
    "run": (
        "pld_franka_bringup.cli",
        "the ros2 launch graph (sim, VLA, actor, episodes, recorder) in one process",
    ),
}


def build_parser() -> argparse.ArgumentParser:
    """Build the full parser; each subcommand module adds its own arguments."""
    parser = argparse.ArgumentParser(
        prog="pld",
        description="PLD (Probe, Learn, Distill) on ROS 2: residual RL specialists, probing data "
        "collection and distillation into a VLA.",
    )
    sub = parser.add_subparsers(dest="command", metavar="<command>", required=True)
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:  # one broken subcommand must not take `pld doctor` down with it
            sub_parser = sub.add_parser(name, help=f"{help_text} (unavailable: {exc})")
            sub_parser.set_defaults(run=_unavailable(name, exc))
            continue
        sub_parser = sub.add_parser(name, help=help_text, description=module.__doc__)
        module.add_arguments(sub_parser)
        sub_parser.set_defaults(run=module.run)
    return parser


def _unavailable(name: str, error: ImportError):
    def run(_args: argparse.Namespace) -> int:
        print(
            f"pld {name}: cannot load its module ({error}). Run `pld doctor` to see what is missing.",
            file=sys.stderr,
        )
        return 1

    return run


def main(argv: Sequence[str] | None = None) -> int:
    """Parse `argv`, run the chosen subcommand and return its exit code."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
