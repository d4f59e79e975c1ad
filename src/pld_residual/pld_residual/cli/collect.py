"""`pld collect`: PLD stage 2 in sim. Roll out a data source and keep its successes as a PLD dataset.

  pld collect --specialist runs/<learn run> [--source pld|rl_expert] [--episodes 50] [--alpha A] [--out DIR]
  pld collect --source base [--task pick_cube] [--base DIR]        # the base's own successes
  pld collect --source scripted_expert [--task pick_cube]          # noisy scripted expert ("human")

The dataset (one rosbag2 MCAP per episode + index.json, see `pld dataset info`) goes to --out (default
runs/<time>-collect-<task>-<source>/). Re-running the same command resumes: finished episodes stay, the
interrupted one is redone on the same seed. The specialist's run fixes the task, base VLA, camera size,
chunk execution and residual inputs, so the collected data match what the specialist was trained on.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from pathlib import Path
from typing import Any

from pld_residual.cli.interrupts import interrupt_on_sigterm


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from pld_residual.collection import SOURCES

    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    add = parser.add_argument
    add("--specialist", type=Path, default=None, help="a `pld learn` run directory (summary.json + policy/)")
    add("--source", choices=SOURCES, default="pld", help="data source (default: %(default)s)")
    add("--episodes", type=int, default=50, help="successful episodes to keep (default: %(default)s)")
    add("--max-attempts", type=int, default=None, help="attempts at most (default: 4 x episodes)")
    add("--alpha", type=float, default=None, help="probing: T_base ~ U{0..alpha*T} (default: the run's)")
    add("--task", default=None, help="task for --source base without a run (default: pick_cube)")
    add(
        "--base",
        type=Path,
        default=None,
        help="base VLA checkpoint (default: the run's, else runs/base_vla/flow)",
    )
    add(
        "--reward",
        choices=("predicate", "classifier"),
        default=None,
        help="success judge (default: the run's)",
    )
    add("--reward-checkpoint", type=Path, default=None, help="classifier directory for --reward classifier")
    add("--seed", type=int, default=0, help="collection seed (default: %(default)s)")
    add(
        "--policy",
        choices=("best", "final"),
        default="best",
        help="the run's best-evaluated actor (best_policy/, when there is one) or its last (policy/)",
    )
    add("--stochastic", action="store_true", help="sample the specialist's actions instead of its mean")
    add(
        "--expert-noise", type=float, default=0.05, help="scripted_expert action noise (default: %(default)s)"
    )
    add("--keep-failures", action="store_true", help="also write failed attempts (success false)")
    add("--out", type=Path, default=None, help="dataset directory; an existing collection there is resumed")
    add("--quiet", action="store_true", help="no progress bar")


def _learn_run(path: Path) -> dict[str, Any]:
    summary = path / "summary.json"
    if not summary.is_file() or not (path / "policy").is_dir():
        raise FileNotFoundError(f"{path} is not a finished `pld learn` run (no summary.json and policy/)")
    return json.loads(summary.read_text())


def run(args: argparse.Namespace) -> int:
    from pld_residual.agent.policy import ResidualPolicy
    from pld_residual.collection import CollectConfig, Specialist, collect
    from pld_residual.learning.base_env import BaseGuidedEnv
    from pld_residual.learning.config import LearnConfig
    from pld_residual.learning.loop import default_env_factory, load_base_backend
    from pld_residual.learning.rewards import make_reward_source

    try:
        specialist, summary = None, None
        if args.specialist is not None:
            summary = _learn_run(args.specialist)
            learn_cfg = LearnConfig.from_dict(summary["config"])
            policy_dir, xi = args.specialist / "policy", float(summary["xi"])
            best = summary.get("best")
            if args.policy == "best" and best and (args.specialist / best["policy"]).is_dir():
                policy_dir, xi = (
                    args.specialist / best["policy"],
                    float(best["xi"]),
                )  # its own curve point's xi
            policy = ResidualPolicy.load(policy_dir)
            guided = bool(summary.get("method_spec", {}).get("guided", True))
            specialist = Specialist(policy=policy, xi=xi, guided=guided)
        elif args.source in ("pld", "rl_expert"):
            raise ValueError(f"--source {args.source} needs --specialist (a `pld learn` run directory)")
        else:
            learn_cfg = LearnConfig(task=args.task or "pick_cube")
        if args.task and args.task != learn_cfg.task:
            raise ValueError(f"--task {args.task} differs from the specialist's task {learn_cfg.task}")
        cfg = CollectConfig(
            task=learn_cfg.task,
            source=args.source,
            episodes=args.episodes,
            max_attempts=args.max_attempts,
            probing_alpha=args.alpha if args.alpha is not None else learn_cfg.probing_alpha,
            seed=args.seed,
            deterministic=not args.stochastic,
            keep_failures=args.keep_failures,
            expert_noise=args.expert_noise,
        )
        backend = load_base_backend(args.base or learn_cfg.base_checkpoint)
        reward_name = args.reward or learn_cfg.reward
        checkpoint = args.reward_checkpoint or learn_cfg.reward_checkpoint
        reward = make_reward_source(reward_name, checkpoint=str(checkpoint or ""), task=cfg.task)
    except (FileNotFoundError, ValueError) as exc:
        raise SystemExit(f"pld collect: {exc}") from exc
    env = BaseGuidedEnv(
        default_env_factory(learn_cfg, backend)(),
        backend,
        learn_cfg.execute_steps,
        learn_cfg.observation,
        reward,
    )
    interrupt_on_sigterm()  # also when started with SIGINT ignored (nohup, a test runner)
    out = (args.out or _default_out(cfg)).resolve()
    what = f"{cfg.episodes} {cfg.source} episodes of {cfg.task} (alpha {cfg.probing_alpha})"
    print(f"pld collect: {what} -> {out}")
    extra = {"specialist": str(policy_dir.resolve()) if specialist is not None else None}
    result = collect(cfg, env, out, specialist, progress=not args.quiet, extra=extra)
    (out / "collect_summary.json").write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"kept {result['kept']} of {result['attempts']} attempts in {result['wall_time_s']:.0f} s; "
        f"`pld dataset info {out}`"
    )
    return 0 if result["complete"] else 1


def _default_out(cfg: Any) -> Path:
    from pld_residual.cli.workspace import workspace_root

    root = workspace_root() or Path.cwd()
    return root / "runs" / f"{datetime.now():%Y%m%d-%H%M%S}-collect-{cfg.task}-{cfg.source}"
