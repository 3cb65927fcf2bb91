"""Per-survey decision thresholds fitted on validation stamps (`binarycat.model.thresholds`)."""

import numpy as np
import pytest

from binarycat.errors import BinarycatError
from binarycat.model.metrics import classification_report
from binarycat.model.thresholds import (
    THRESHOLD_RULE, best_threshold, fit_survey_thresholds, stamp_thresholds, threshold_table,
)


def _macro_f1(p, y, t):
    return classification_report(y, (np.asarray(p) >= t).astype(int))["macro avg"]["f1"]


def test_a_threshold_stays_at_one_half_unless_validation_shows_a_strict_gain():
    rng = np.random.default_rng(0)
    singles, binaries = rng.uniform(0.0, 0.1, 50), rng.uniform(0.9, 1.0, 20)
    p, y = np.concatenate([singles, binaries]), np.r_[np.zeros(50, int), np.ones(20, int)]
    assert best_threshold(p, y) == 0.5                 # every cut in (0.1, 0.9) is as good
    assert best_threshold([], []) == 0.5


def test_a_network_that_scores_binaries_too_low_gets_a_lower_threshold():
    rng = np.random.default_rng(1)
    singles, binaries = rng.uniform(0.0, 0.2, 60), rng.uniform(0.3, 0.45, 15)   # all binaries below 0.5
    p, y = np.concatenate([singles, binaries]), np.r_[np.zeros(60, int), np.ones(15, int)]
    t = best_threshold(p, y)
    assert singles.max() < t <= binaries.min()
    assert _macro_f1(p, y, t) == 1.0 and _macro_f1(p, y, 0.5) < 0.6


def test_among_equally_good_thresholds_the_one_nearest_one_half_wins():
    # one binary at 0.2 among singles up to 0.3: no cut fixes it without two new false alarms,
    # so the best cuts lie above 0.3 and below the other binaries (0.7 and up), 0.5 included
    p = np.array([0.05, 0.1, 0.2, 0.25, 0.3, 0.7, 0.8, 0.9, 0.95])
    y = np.array([0, 0, 1, 0, 0, 1, 1, 1, 1])
    assert best_threshold(p, y) == 0.5
    # without 0.5 among the best, the nearest midpoint wins: here 0.55 (between 0.5 and 0.6)
    p = np.array([0.1, 0.2, 0.5, 0.6, 0.7, 0.8])
    y = np.array([0, 0, 0, 1, 1, 1])
    assert best_threshold(p, y) == pytest.approx(0.55)


def test_each_survey_gets_its_own_threshold_from_its_own_stamps():
    rng = np.random.default_rng(2)
    p_low = np.r_[rng.uniform(0.0, 0.1, 40), rng.uniform(0.2, 0.4, 20)]   # survey A: binaries score low
    p_high = np.r_[rng.uniform(0.55, 0.7, 40), rng.uniform(0.8, 1.0, 20)]  # survey B: singles score high
    y = np.r_[np.zeros(40, int), np.ones(20, int)]
    fitted = fit_survey_thresholds(np.r_[p_low, p_high], np.r_[y, y], ["A"] * 60 + ["B"] * 60)
    assert fitted["rule"] == THRESHOLD_RULE
    assert 0.1 < fitted["per_survey"]["A"] <= 0.2 and 0.7 < fitted["per_survey"]["B"] <= 0.8
    for name in ("A", "B"):
        v = fitted["validation"][name]
        assert v["n"] == 60 and v["macro_f1_fitted"] == 1.0 > v["macro_f1_fixed"]
    table = threshold_table(fitted)
    at = stamp_thresholds(table, ["B", "A", "C"], default=0.5)
    assert at.tolist() == [table["B"], table["A"], 0.5]


@pytest.mark.parametrize("bad", [{"per_survey": {"HST": "x"}}, {"per_survey": {"HST": 1.5}},
                                 {"per_survey": {"HST": float("nan")}}, {"per_survey": {"HST": None}}])
def test_stored_thresholds_that_are_not_probabilities_are_refused(bad):
    with pytest.raises(BinarycatError, match="between 0 and 1"):
        threshold_table(bad)


def test_mismatched_lengths_are_one_sentence():
    with pytest.raises(BinarycatError, match="one label and one survey per probability"):
        fit_survey_thresholds([0.1, 0.9], [0, 1], ["A"])
