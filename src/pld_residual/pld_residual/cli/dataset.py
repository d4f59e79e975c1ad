"""Inspect and check PLD datasets (a directory of episode bags + index.json).

pld dataset info DIR [--json]          per task: episodes, successes, lengths, T_base, provenance mix
pld dataset verify DIR [--fix] [--json]
    decode every message of every bag; a truncated or corrupted bag is reported by name (exit 1).
    --fix moves broken bags to DIR/broken/ and rewrites the index from the good ones (exit 0).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    sub = parser.add_subparsers(dest="dataset_command", metavar="<info|verify>", required=True)
    info = sub.add_parser("info", help="what a dataset holds, per task")
    info.add_argument("dataset", type=Path)
    info.add_argument("--json", action="store_true", help="print JSON instead of a table")
    verify = sub.add_parser("verify", help="decode every bag; report (or --fix) broken ones")
    verify.add_argument("dataset", type=Path)
    verify.add_argument("--fix", action="store_true", help="quarantine broken bags, rebuild the index")
    verify.add_argument("--json", action="store_true", help="print JSON instead of text")


def run(args: argparse.Namespace) -> int:
    from pld_residual.dataset.verify import dataset_info, verify_dataset

    try:
        if args.dataset_command == "info":
            report = dataset_info(args.dataset)
            print(json.dumps(report, indent=2) if args.json else _info_text(report))
            return 0
        report = verify_dataset(args.dataset, fix=args.fix)
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        print(f"pld dataset {args.dataset_command}: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=2) if args.json else _verify_text(report))
    return 1 if report["broken"] and not report["fixed"] else 0


def _info_text(report: dict) -> str:
    lines = [f"{report['dataset']}: {report['episodes']} episodes, {report['bytes'] / 1e6:.1f} MB"]
    header = (
        f"{'task':<16} {'episodes':>8} {'success':>8} {'steps':>7} {'length':>14} {'T_base':>14}  provenance"
    )
    lines.append(header)
    for task, t in report["tasks"].items():
        length = f"{t['length']['mean']:g} ({t['length']['min']}-{t['length']['max']})"
        t_base = f"{t['t_base']['mean']:g} ({t['t_base']['min']}-{t['t_base']['max']})"
        mix = ", ".join(f"{k} {v:.0%}" for k, v in t["provenance"].items())
        counts = f"{t['episodes']:>8} {t['successes']:>8} {t['steps']:>7}"
        lines.append(f"{task:<16} {counts} {length:>14} {t_base:>14}  {mix}")
        lines.append(f"{'':<16} sources: " + ", ".join(f"{k} {v}" for k, v in t["sources"].items()))
    return "\n".join(lines)


def _verify_text(report: dict) -> str:
    lines = [f"{report['dataset']}: {report['ok']} of {report['indexed']} indexed episodes are readable"]
    if "index_error" in report:
        lines.append(f"index: {report['index_error']}")
    for entry in report["broken"]:
        lines.append(f"BROKEN {entry['bag']}: {entry['error']}")
    if report["unindexed"]:
        lines.append(f"bags missing from the index: {', '.join(report['unindexed'])}")
    if report["fixed"]:
        lines.append(f"fixed: broken bags moved to {report['dataset']}/broken/, index rewritten")
    elif report["broken"] or report["unindexed"]:
        lines.append(
            f"run `pld dataset verify --fix {report['dataset']}` to set them aside and rebuild the index"
        )
    return "\n".join(lines)
