"""`pld demo` (= `make demo`): the whole PLD pipeline on the simulated robot, from a fresh checkout.

Stages, each an ordinary `pld` command writing its own directory under the run:
  1. base     `pld pretrain` (default budget: reuse runs/base_vla when it is complete, it is the cache)
  2. learn    `pld learn`: the residual RL specialist on the frozen base
  3. collect  `pld collect`: probing rollouts (base prefix, then the specialist), successes as bags
  4. distill  `pld distill`: SFT of the base on the collected dataset
  5. eval     `pld eval`: base and distilled VLA on the same seeds, in distribution and on
              pick_cube_cluttered, with 95 % intervals and end-effector paths
With `--compare` (the paper's data-source comparison), before the evaluation: as many episodes as the PLD
collection from the scripted expert, the RL expert without probing and the base's own successes, each
distilled into the same base, and all of them evaluated beside base and PLD;
then `summary.json` and `report.md` (with the plots). Re-running the same command skips finished stages and
resumes the interrupted one (every stage resumes on its own); a stage whose command changed (e.g. the
evaluation after adding `--compare`) runs again and reuses its finished parts. `--budget smoke` runs every
stage at a toy size in about a minute: it checks files, shapes and resumption, and claims nothing.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from pld_residual.cli.interrupts import interrupt_on_sigterm
from pld_residual.cli.workspace import workspace_root

COMPARED = ("scripted_expert", "rl_expert", "base")  # data sources distilled beside PLD with --compare
STATE = "stages.json"
BUDGETS: dict[str, dict[str, Any]] = {
    "default": {
        "learn": ["--steps", "20000"],
        "collect": ["--episodes", "200"],
        "distill": ["--steps", "2000"],
        "eval": ["--episodes", "50", "--tasks", "{task}", "{task}_cluttered"],
    },
    "smoke": {  # toy sizes: the random-ish base succeeds nowhere, so failures are collected and trained on
        "base": ["--budget", "smoke", "--heads", "flow", "--no-eval", "--workers", "1"],
        "learn": ["--budget", "smoke"],
        "collect": ["--episodes", "1", "--max-attempts", "2", "--keep-failures"],
        "distill": ["--steps", "5", "--batch-size", "8", "--include-failures"],
        "eval": ["--episodes", "2", "--tasks", "{task}"],
    },
}


def default_out_dir(name: str) -> Path:
    root = workspace_root() or Path.cwd()
    return root / "runs" / f"{datetime.now():%Y%m%d-%H%M%S}-{name}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    add = parser.add_argument
    add("--budget", choices=sorted(BUDGETS), default="default", help="default: the real run; smoke: CI")
    add("--task", default="pick_cube", choices=("pick_cube", "peg_insertion"), help="default: %(default)s")
    add("--out", type=Path, default=None, help="run directory (default: runs/<time>-demo); re-run to resume")
    add("--compare", action="store_true", help="also distil equal amounts of the other data sources")
    add("--quiet", action="store_true", help="no progress bars")


def _learn_config_file(task: str) -> Path | None:
    """The shipped settings for `task` (src/pld_residual/config/learn_<task>.yaml), when there are any."""
    candidates = [Path(__file__).resolve().parents[2] / "config" / f"learn_{task}.yaml"]
    root = workspace_root()
    if root is not None:
        candidates.append(root / "src" / "pld_residual" / "config" / f"learn_{task}.yaml")
    return next((path for path in candidates if path.is_file()), None)


def _base_dir(args: argparse.Namespace, out: Path) -> Path:
    if args.budget == "smoke":
        return out / "base_vla"
    return (workspace_root() or Path.cwd()) / "runs" / "base_vla"  # the shared cache of `pld pretrain`


def stage_commands(args: argparse.Namespace, out: Path) -> dict[str, list[str]]:
    """The `pld` command line of each stage, in order."""
    budget = {k: [part.format(task=args.task) for part in v] for k, v in BUDGETS[args.budget].items()}
    base = _base_dir(args, out)
    quiet = ["--quiet"] if args.quiet else []
    learn = ["learn", "--task", args.task, "--base", str(base / "flow"), "--out", str(out / "learn")]
    config = _learn_config_file(args.task)
    if config is not None:
        learn += ["--config-file", str(config)]
    stages = {
        "base": ["pretrain", "--out", str(base), *budget.get("base", []), *quiet],
        "learn": [*learn, *budget["learn"], *quiet],
        "collect": ["collect", "--specialist", str(out / "learn"), "--out", str(out / "collect"),
                    *budget["collect"], *quiet],
        "distill": ["distill", "--data", str(out / "collect"), "--base", str(base / "flow"),
                    "--out", str(out / "distill"), *budget["distill"], *quiet],
    }  # fmt: skip
    models = {"base": base / "flow", "pld": out / "distill" / "model"}
    if args.compare:
        for source in COMPARED:
            where = out / "compare" / source
            spec = ["--specialist", str(out / "learn")] if source == "rl_expert" else ["--task", args.task]
            stages[f"collect_{source}"] = [
                "collect",
                "--source",
                source,
                *spec,
                "--base",
                str(base / "flow"),
                "--out",
                str(where / "data"),
                *budget["collect"],
                *quiet,
            ]
            stages[f"distill_{source}"] = [
                "distill",
                "--data",
                str(where / "data"),
                "--base",
                str(base / "flow"),
                "--out",
                str(where / "distill"),
                *budget["distill"],
                *quiet,
            ]
            models[f"{source}_data"] = where / "distill" / "model"
    stages["eval"] = [
        "eval",
        "--vla",
        *map(str, models.values()),
        "--label",
        *models,
        "--trajectories",
        str(out / "collect"),
        "--out",
        str(out / "eval"),
        *budget["eval"],
        *quiet,
    ]
    return stages  # fmt: skip


def _base_is_complete(base: Path) -> bool:
    summary = base / "summary.json"
    return summary.is_file() and bool(json.loads(summary.read_text()).get("complete"))


def run(args: argparse.Namespace) -> int:
    from pld_residual.cli.main import main

    interrupt_on_sigterm()  # also when started with SIGINT ignored (nohup, a test runner)
    out = (args.out or default_out_dir("demo")).resolve()
    out.mkdir(parents=True, exist_ok=True)
    state_path = out / STATE
    state: dict[str, Any] = json.loads(state_path.read_text()) if state_path.exists() else {}
    if state.get("budget", args.budget) != args.budget or state.get("task", args.task) != args.task:
        raise SystemExit(
            f"pld demo: {out} holds a {state['budget']} run of {state['task']}; use another --out"
        )
    state.update(budget=args.budget, task=args.task)
    state.setdefault("stages", {})
    commands = stage_commands(args, out)
    print(f"pld demo: {args.task}, {args.budget} budget -> {out}")
    for number, name in enumerate(commands, 1):
        previous = state["stages"].get(name, {})
        # a finished stage counts when it ran this very command; another one (e.g. eval with more models
        # after adding --compare) runs again, and the stage's own resumption reuses what still fits
        done = previous.get("status") == "done" and previous.get("command") == ["pld", *commands[name]]
        if name == "base" and args.budget == "default" and _base_is_complete(_base_dir(args, out)):
            done = True  # the cached base
        if done:
            print(f"[{number}/{len(commands)}] {name}: done")
            continue
        print(f"[{number}/{len(commands)}] {name}: pld {' '.join(commands[name])}")
        start = time.perf_counter()
        code = main(commands[name])
        entry = state["stages"].setdefault(name, {"wall_time_s": 0.0})
        entry["wall_time_s"] = round(entry["wall_time_s"] + time.perf_counter() - start, 1)
        entry["command"] = ["pld", *commands[name]]
        # an incomplete collection (too few successes) still gives a dataset; smoke runs rely on that
        ok = code == 0 or (name.startswith("collect") and code == 1 and args.budget == "smoke")
        entry["status"] = "done" if ok else ("interrupted" if code == 130 else f"failed ({code})")
        state_path.write_text(json.dumps(state, indent=2) + "\n")
        if not ok:
            print(f"pld demo: stage {name} {entry['status']}; re-run the same command to resume")
            return code or 1
    summary = write_report(out, state)
    print(json.dumps(summary["headline"], indent=2))
    print(f"results: {out}/summary.json, report.md")
    return 0


def write_report(out: Path, state: dict[str, Any]) -> dict[str, Any]:
    """summary.json (every stage's key numbers) and report.md (the same, with the plots)."""
    learn = json.loads((out / "learn" / "summary.json").read_text())
    collect = json.loads((out / "collect" / "collect_summary.json").read_text())
    distill = json.loads((out / "distill" / "distill.json").read_text())
    results = json.loads((out / "eval" / "eval.json").read_text())["results"]
    by = {(r["model"], r["task"]): r for r in results}
    task = state["task"]
    headline = {
        "task": task,
        "base": _rate(by.get(("base", task))),
        "pld_distilled": _rate(by.get(("pld", task))),
        "specialist_final": learn.get("final_success_rate"),
        "collected_episodes": collect["kept"],
        "collect_attempts": collect["attempts"],
        "wall_time_s": round(sum(s["wall_time_s"] for s in state["stages"].values()), 1),
        "success_by_model": {
            model: {r["task"]: r["success_rate"] for r in results if r["model"] == model}
            for model in dict.fromkeys(r["model"] for r in results)
        },
    }
    summary = {
        "headline": headline,
        "budget": state["budget"],
        "stages": state["stages"],
        "learn": {
            k: learn.get(k) for k in ("final_success_rate", "final_ci95", "best_success_rate", "env_steps")
        },
        "collect": collect,
        "distill": {k: distill[k] for k in ("model_id", "episodes", "samples", "loss_first", "loss_last")},
        "eval": results,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    rows = "\n".join(
        f"| {r['model']} | {r['task']} | {r['successes']}/{r['episodes']} | {r['success_rate']:.0%} "
        f"| {r['ci95'][0]:.0%}-{r['ci95'][1]:.0%} |"
        for r in results
    )
    stages = "\n".join(
        f"| {name} | {s['status']} | {s['wall_time_s']:.0f} s |" for name, s in state["stages"].items()
    )
    specialist = "no evaluation"
    if learn.get("final_success_rate") is not None:
        low, high = learn["final_ci95"]
        episodes = learn.get("config", {}).get("eval_episodes", "?")
        specialist = (
            f"{learn['final_success_rate']:.0%} at its last evaluation (95 % CI {low:.0%}-{high:.0%}, "
            f"{episodes} episodes) after {learn['env_steps']} env steps"
        )
    compare = ""
    if len(headline["success_by_model"]) > 2:
        compare = (
            "\nData-source comparison: the same base distilled on equal numbers of successful episodes "
            "from each source (`*_data` rows; `pld` = PLD probing data), evaluated on the same seeds.\n"
        )
    smoke = (
        "\n**Smoke budget: toy sizes, these numbers claim nothing.**\n" if state["budget"] == "smoke" else ""
    )
    report = f"""# PLD demo: {task}
{smoke}
| model | task | successes | rate | 95 % CI |
| --- | --- | --- | --- | --- |
{rows}
{compare}
- Specialist (stage 1): {specialist}.
- Collection: {collect["kept"]} successful PLD episodes of {collect["attempts"]} attempts
  ({collect["kept"] / max(collect["attempts"], 1):.0%}, probing prefix included).
- Distillation: {distill["episodes"]} episodes, loss {distill["loss_first"]:.3f} -> {distill["loss_last"]:.3f}

![success before and after](eval/success.png)

![specialist learning curve](learn/curve.png)

![end-effector paths](eval/trajectories.png)

| stage | status | wall time |
| --- | --- | --- |
{stages}
"""
    (out / "report.md").write_text(report)
    return summary


def _rate(result: dict[str, Any] | None) -> dict[str, Any] | None:
    if result is None:
        return None
    return {"success_rate": result["success_rate"], "ci95": result["ci95"], "episodes": result["episodes"]}
