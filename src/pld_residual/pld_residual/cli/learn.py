"""`pld learn`: PLD stage 1 in one process (sim env + frozen base VLA + residual SAC), or a baseline.

Writes runs/<timestamp>-learn-<task>-<method>/ (or --out): curve.json + curve.png after every evaluation,
checkpoint/ (re-run with the same --out to resume), policy/ (the residual actor) and summary.json.
Methods: pld (default), rlpd, wsrl, jsrl, sac; see pld_residual/learning/methods.py.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from pld_residual.cli.interrupts import interrupt_on_sigterm

BUDGETS: dict[str, dict[str, Any]] = {
    "default": {},
    # everything runs once, in well under 2 minutes on 2 cores: it checks the pipeline, it learns nothing
    "smoke": dict(
        total_env_steps=300, eval_every_steps=150, eval_episodes=2, warmup_episodes=1, offline_episodes=1,
        offline_max_attempts=1, critic_pretrain_steps=20, checkpoint_every=150, time_limit_s=3.0,
        buffer_capacity=10_000, agent=dict(hidden=64, batch_size=32, updates_per_call=10),
    ),
}  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from pld_residual.learning.methods import METHODS

    add = parser.add_argument
    add("--task", default=None, help="pld_sim task (default: pick_cube)")
    add("--method", default=None, choices=sorted(METHODS), help="method (default: pld)")
    add("--base", type=Path, default=None, help="base VLA checkpoint dir (default: runs/base_vla/flow)")
    add("--steps", type=int, default=None, help="online env steps (default: 50000)")
    add("--seed", type=int, default=None, help="run seed (default: 0)")
    add("--out", type=Path, default=None, help="run directory; an existing run there is resumed")
    add("--eval-every", type=int, default=None, help="env steps between evaluations (default: 5000)")
    add("--eval-episodes", type=int, default=None, help="episodes per evaluation (default: 20)")
    add("--budget", choices=sorted(BUDGETS), default="default", help="preset (smoke: < 2 min, checks only)")
    add(
        "--config-file",
        type=Path,
        default=None,
        metavar="YAML",
        help="LearnConfig fields (agent fields under `agent:`), e.g. "
        "src/pld_residual/config/learn_pick_cube.yaml; applied after --budget, before --config",
    )
    add(
        "--config",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="LearnConfig override, JSON value; agent fields as agent.KEY=VALUE (e.g. agent.hidden=128)",
    )
    add("--quiet", action="store_true", help="no progress bar")


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """`KEY=VALUE` items (JSON values, else strings) -> dict; `agent.KEY` goes into the agent dict."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--config expects KEY=VALUE, got {item!r}")
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        if key.startswith("agent."):
            out.setdefault("agent", {})[key.removeprefix("agent.")] = value
        else:
            out[key] = value
    return out


def load_config_file(path: Path) -> dict[str, Any]:
    """A YAML (or JSON) mapping of LearnConfig fields; ValueError naming the file when it is not one."""
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise ValueError(f"cannot read --config-file {path}: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise ValueError(f"--config-file {path} is not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict) or not isinstance(data.get("agent", {}), dict):
        raise ValueError(f"--config-file {path} must hold a mapping of LearnConfig fields (agent: a mapping)")
    return data


def config_from_args(args: argparse.Namespace) -> Any:
    """Budget preset, then the config file, then --config overrides, then the named options."""
    from pld_residual.learning.config import LearnConfig

    values: dict[str, Any] = json.loads(json.dumps(BUDGETS[args.budget]))
    agent = values.pop("agent", {})
    layers = [load_config_file(args.config_file)] if getattr(args, "config_file", None) else []
    layers.append(parse_overrides(args.config))
    for layer in layers:
        agent = {**agent, **layer.pop("agent", {})}
        values.update(layer)
    named = {
        "task": args.task,
        "method": args.method,
        "total_env_steps": args.steps,
        "seed": args.seed,
        "eval_every_steps": args.eval_every,
        "eval_episodes": args.eval_episodes,
        "base_checkpoint": str(args.base) if args.base is not None else None,
    }
    values.update({key: value for key, value in named.items() if value is not None})
    if agent:
        values["agent"] = agent
    return LearnConfig.from_dict(values)


def run(args: argparse.Namespace) -> int:
    from pld_residual.learning.loop import default_out_dir, learn, load_base_backend

    try:
        cfg = config_from_args(args)
    except ValueError as exc:
        raise SystemExit(f"pld learn: {exc}") from exc
    try:
        backend = load_base_backend(cfg.base_checkpoint)
    except FileNotFoundError as exc:
        raise SystemExit(f"pld learn: {exc}") from exc
    out = (args.out or default_out_dir(cfg)).resolve()
    interrupt_on_sigterm()
    print(
        f"pld learn: {cfg.method} on {cfg.task}, {cfg.total_env_steps} env steps "
        f"({args.budget} budget) -> {out}"
    )
    summary = learn(cfg, out, base_backend=backend, progress=not args.quiet)
    final = summary["final_success_rate"]
    if final is not None:
        low, high = summary["final_ci95"]
        print(
            f"success {final:.0%} (95% CI {low:.0%}-{high:.0%}) after {summary['env_steps']} env steps, "
            f"{summary['updates']} updates, {summary['wall_time_s']:.0f} s "
            f"(at 0 steps: {summary['start_success_rate']})"
        )
    for note in summary["notes"]:
        print(f"note: {note}")
    print(f"results: {out}/summary.json, curve.png, policy/")
    return 0 if summary["complete"] else 1
