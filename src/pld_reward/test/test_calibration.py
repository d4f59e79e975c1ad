import numpy as np
import pytest

from pld_reward.calibration import choose_threshold, confusion, metrics


def test_threshold_is_the_lowest_that_keeps_the_target_precision() -> None:
    probs = np.array([0.95, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    labels = np.array([1, 1, 1, 0, 1, 0, 0])
    threshold, met = choose_threshold(probs, labels, 0.99)
    assert met and threshold == 0.8  # one step lower lets the 0.7 failure in
    threshold, met = choose_threshold(probs, labels, 0.75)
    assert met and threshold == 0.6  # 4 of 5 called are successes
    m = metrics(probs, labels, 0.6)
    assert m["precision"] == pytest.approx(0.8) and m["recall"] == 1.0 and m["fp"] == 1


def test_ties_are_never_split() -> None:
    probs = np.array([0.9, 0.9, 0.9])
    labels = np.array([1, 0, 1])
    threshold, met = choose_threshold(probs, labels, 0.99)
    assert not met and threshold == 0.9  # the best on offer, reported as missing the target


def test_without_success_frames_there_is_no_threshold() -> None:
    with pytest.raises(ValueError, match="no success frames"):
        choose_threshold(np.array([0.1, 0.2]), np.array([0, 0]), 0.99)


def test_confusion_counts() -> None:
    c = confusion(np.array([0.1, 0.6, 0.7, 0.2]), np.array([1, 1, 0, 0]), 0.5)
    assert c == {"tp": 1, "fp": 1, "tn": 1, "fn": 1}
    assert metrics(np.array([0.1]), np.array([0]), 0.5)["precision"] == 1.0  # nothing called
