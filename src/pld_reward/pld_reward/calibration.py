"""Decision thresholds for a target precision, and the metrics reported for them (pure numpy).

A false positive teaches the residual to fake success, so the threshold is the lowest one whose
precision on held-out frames reaches the target (default 99 %): the most recall that precision allows.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def confusion(probs: np.ndarray, labels: np.ndarray, threshold: float) -> dict[str, int]:
    """Counts of true/false positives/negatives when `probs >= threshold` is called success."""
    predicted = np.asarray(probs) >= threshold
    truth = np.asarray(labels).astype(bool)
    return {
        "tp": int(np.sum(predicted & truth)),
        "fp": int(np.sum(predicted & ~truth)),
        "tn": int(np.sum(~predicted & ~truth)),
        "fn": int(np.sum(~predicted & truth)),
    }


def metrics(probs: np.ndarray, labels: np.ndarray, threshold: float) -> dict[str, Any]:
    """Precision, recall, accuracy and the counts behind them (precision is 1.0 when nothing is called)."""
    c = confusion(probs, labels, threshold)
    called, positives, total = c["tp"] + c["fp"], c["tp"] + c["fn"], sum(c.values())
    return {
        "precision": c["tp"] / called if called else 1.0,
        "recall": c["tp"] / positives if positives else 1.0,
        "accuracy": (c["tp"] + c["tn"]) / total if total else 1.0,
        "frames": total,
        "positives": positives,
        "threshold": float(threshold),
        **c,
    }


def choose_threshold(probs: np.ndarray, labels: np.ndarray, target_precision: float) -> tuple[float, bool]:
    """(threshold, target met): the lowest threshold with precision >= target among the observed scores.

    When no threshold reaches the target, the one with the highest precision (then recall) is returned
    with `False`, so callers can report it rather than silently ship it.
    """
    probs = np.asarray(probs, np.float64)
    labels = np.asarray(labels).astype(bool)
    if not labels.any():
        raise ValueError("no success frames in the calibration set: cannot choose a threshold")
    order = np.argsort(-probs, kind="stable")
    sorted_probs, sorted_labels = probs[order], labels[order]
    tp = np.cumsum(sorted_labels)
    called = np.arange(1, len(probs) + 1)
    # thresholds only between distinct scores: the last index of each run of equal scores
    last_of_run = np.r_[sorted_probs[1:] != sorted_probs[:-1], True]
    precision = tp / called
    ok = last_of_run & (precision >= target_precision) & (tp > 0)
    if ok.any():
        index = int(np.flatnonzero(ok)[-1])  # most frames called success while precision holds
        return float(sorted_probs[index]), True
    candidates = np.flatnonzero(last_of_run & (tp > 0))
    best = max(candidates, key=lambda i: (precision[i], tp[i]))
    return float(sorted_probs[best]), False
