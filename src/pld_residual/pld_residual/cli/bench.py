"""Benchmarks that print JSON: `pld bench <part>`, each measured against a peer in the same run."""

from __future__ import annotations

import argparse
import importlib

# part -> (module with add_arguments/run, help). Later issues add reward, graph, learner, ...
PARTS: dict[str, tuple[str, str]] = {
    "sim": ("pld_sim.bench", "simulator control steps/s, render fps, IK time vs raw MuJoCo"),
    "vla": ("pld_vla_server.bench", "VLA chunk latency in-process vs through the server node over DDS"),
    "reward": (
        "pld_reward.bench",
        "success classifier precision/recall on held-out episodes; inference ms/frame",
    ),
    "rl": (
        "pld_residual.cli.bench_rl",
        "learning curves of PLD and the baselines; --updates-only: updates/s vs stable-baselines3 SAC",
    ),
    "graph": ("pld_franka_bringup.bench", "graph loop jitter, observation->command latency vs bare rclpy"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="part", metavar="<part>", required=True)
    for name, (module_name, help_text) in PARTS.items():
        module = importlib.import_module(module_name)
        part = sub.add_parser(name, help=help_text, description=module.__doc__)
        module.add_arguments(part)
        part.set_defaults(run_part=module.run)


def run(args: argparse.Namespace) -> int:
    return args.run_part(args)
