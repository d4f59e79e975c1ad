"""`pld bench reward --json`: held-out precision/recall per task and stage, and inference time per frame.

Accuracy figures come from the test split (`pld reward collect --split test`: episodes and seeds never
seen in training or calibration) at each classifier's calibrated threshold. Inference is timed on this
CPU for one full observation (checks, pooling, network), next to the network alone in the same run.
`--speed-only` times a randomly initialised model of the default config and needs no data.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_NAMES = ("pick_cube", "peg_insertion", "gpu_insertion")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print only the JSON result")
    parser.add_argument("--speed-only", action="store_true", help="inference time of a random model only")
    parser.add_argument(
        "--names",
        nargs="+",
        default=list(DEFAULT_NAMES),
        help="classifiers under runs/reward/<name>/ to evaluate (default: all three)",
    )
    parser.add_argument(
        "--root", type=Path, default=None, help="folder holding <name>/ (default runs/reward)"
    )
    parser.add_argument("--repeats", type=int, default=300, help="timed inferences (default 300)")


def time_inference(classifier: Any, repeats: int) -> dict[str, float]:
    """Median and p90 ms per frame: full `judge` (checks + pooling + net) and the jitted net alone."""
    import jax

    from pld_reward.classifier import logits_function
    from pld_reward.preprocess import frame_input

    cfg = classifier.cfg
    rng = np.random.default_rng(0)
    images = {
        name: rng.integers(0, 256, (cfg.image_size, cfg.image_size, 3), np.uint8) for name in cfg.cameras
    }
    proprio = np.zeros(cfg.proprio_dim, np.float32)
    stage = 0 if cfg.num_stages == 1 else 1
    frame = frame_input(images, cfg)[None]
    prop = np.zeros((1, cfg.proprio_dim if cfg.use_proprio else 0), np.float32)
    index = np.asarray([cfg.stage_index(stage)], np.int32)
    logits = logits_function(cfg)
    for _ in range(5):  # compile and warm up
        classifier.judge(images, proprio, stage)
        jax.block_until_ready(logits(classifier.params, frame, prop, index))
    full, net = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        classifier.judge(images, proprio, stage)
        full.append(time.perf_counter() - start)
        start = time.perf_counter()
        jax.block_until_ready(logits(classifier.params, frame, prop, index))
        net.append(time.perf_counter() - start)
    return {
        "inference_ms_median": round(1e3 * float(np.median(full)), 3),
        "inference_ms_p90": round(1e3 * float(np.percentile(full, 90)), 3),
        "network_only_ms_median": round(1e3 * float(np.median(net)), 3),
    }


def random_classifier() -> Any:
    from pld_reward.classifier import SuccessClassifier
    from pld_reward.config import ClassifierConfig
    from pld_reward.model import init_params

    cfg = ClassifierConfig()
    return SuccessClassifier(cfg, init_params(cfg), {"thresholds": [0.5]})


def evaluate_name(root: Path) -> dict[str, Any]:
    """Test-split metrics of the classifier under `root` (runs/reward/<name>)."""
    from pld_reward.classifier import SuccessClassifier
    from pld_reward.frames import load_frames
    from pld_reward.train import evaluate

    classifier = SuccessClassifier.load(root / "classifier")
    frames, problems = load_frames([root / "frames" / "test"])
    rows = evaluate(classifier.cfg, classifier.params, classifier.thresholds, frames)
    mining = root / "mining" / "mining_report.json"
    rounds = json.loads(mining.read_text())["mining_rounds"] if mining.is_file() else 0
    return {
        "rows": rows,
        "test_episodes": len(frames.metas),
        "unreadable": problems,
        "mining_rounds": rounds,
        "classifier": classifier,
    }


def run(args: argparse.Namespace) -> int:
    from pld_reward.cli import default_root

    result: dict[str, Any] = {}
    timing_source = None
    if not args.speed_only:
        per_task: dict[str, Any] = {}
        per_stage: dict[str, Any] = {}
        for name in args.names:
            root = (args.root / name) if args.root is not None else default_root(name)
            try:
                evaluated = evaluate_name(root)
            except (FileNotFoundError, ValueError) as exc:
                per_task[name] = {"error": str(exc)}
                continue
            classifier = evaluated.pop("classifier")
            timing_source = timing_source or classifier  # the first trained classifier is the one timed
            keys = ("precision", "recall", "accuracy", "frames", "positives", "fp", "fn", "threshold")
            for row in evaluated["rows"]:
                entry = {k: (round(row[k], 4) if isinstance(row[k], float) else row[k]) for k in keys}
                entry.update(
                    test_episodes=evaluated["test_episodes"],
                    mining_rounds=evaluated["mining_rounds"],
                    ambiguous_frames=row["ambiguous_frames"],
                    strict_precision=round(row["strict"]["precision"], 4),
                    strict_recall=round(row["strict"]["recall"], 4),
                )
                (per_stage if row["stage"] > 0 else per_task)[row["task"]] = entry
        result["tasks"] = per_task
        result["stages"] = per_stage
        # flat keys per task, as the issue asks for
        for task, entry in {**per_task, **per_stage}.items():
            if "precision" in entry:
                result[f"precision_{task}"] = entry["precision"]
                result[f"recall_{task}"] = entry["recall"]
    classifier = timing_source or random_classifier()
    result.update(time_inference(classifier, args.repeats))
    result["timed_model"] = "trained" if timing_source is not None else "random (default config)"
    print(json.dumps(result, indent=None if args.json else 1))
    return 0
