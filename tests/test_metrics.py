import numpy as np
import pytest

from binarycat.model.metrics import (
    classification_report, format_report, macro_f1_at_thresholds, macro_f1_difference_interval, paired_disagreement,
)


def test_report_matches_hand_computation():
    y_true = [0, 0, 0, 0, 1, 1, 1, 1, 1, 1]
    y_pred = [0, 0, 0, 1, 1, 1, 1, 1, 0, 0]
    r = classification_report(y_true, y_pred)
    # binary: tp=4, fp=1, fn=2 -> precision 0.8, recall 4/6
    assert r["binary"]["precision"] == pytest.approx(0.8)
    assert r["binary"]["recall"] == pytest.approx(4 / 6)
    assert r["binary"]["f1"] == pytest.approx(2 * 0.8 * (4 / 6) / (0.8 + 4 / 6))
    # not binary: tp=3, fp=2, fn=1
    assert r["not binary"]["precision"] == pytest.approx(0.6)
    assert r["not binary"]["recall"] == pytest.approx(0.75)
    assert r["accuracy"] == pytest.approx(0.7)
    assert r["macro avg"]["f1"] == pytest.approx((r["binary"]["f1"] + r["not binary"]["f1"]) / 2)
    assert r["weighted avg"]["recall"] == pytest.approx(0.7)
    assert r["confusion_matrix"] == [[3, 1], [2, 4]]
    assert "macro avg" in format_report(r)


def test_zero_division_is_zero():
    r = classification_report([0, 0], [0, 0])
    assert r["binary"]["precision"] == 0.0 and r["binary"]["support"] == 0


@pytest.mark.parametrize("inclusive", [True, False])
def test_macro_f1_at_many_thresholds_equals_one_report_each(inclusive):
    rng = np.random.default_rng(3)
    for _ in range(100):
        n = int(rng.integers(1, 30))
        scores = rng.integers(0, 5, n).astype(float)    # many ties, to test >= against >
        labels = rng.integers(0, 2, n)
        cuts = np.concatenate([np.unique(scores), np.unique(scores) + 0.5, [-9.0, 9.0]])
        got = macro_f1_at_thresholds(scores, labels, cuts, inclusive=inclusive)
        for t, f1 in zip(cuts, got):
            pred = (scores >= t) if inclusive else (scores > t)
            assert f1 == pytest.approx(classification_report(labels, pred.astype(int))["macro avg"]["f1"])


def test_paired_bootstrap_interval_of_a_macro_f1_difference():
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, 600)
    good, bad = y.copy(), y.copy()
    bad[:90] = 1 - bad[:90]                                      # 15 % wrong
    good[90:93] = 1 - good[90:93]                                # 0.5 % wrong
    f1 = lambda p: classification_report(y, p)["macro avg"]["f1"]
    d, low, high = macro_f1_difference_interval(y, good, bad)
    assert d == pytest.approx(f1(good) - f1(bad)) and 0 < low < d < high
    swapped = macro_f1_difference_interval(y, bad, good)
    assert swapped[0] == -d and swapped[2] < 0 and swapped[1] == pytest.approx(-high, abs=0.01)
    assert macro_f1_difference_interval(y, good, good) == (0.0, 0.0, 0.0)
    # one more error than the other on 600 stamps (two new, one fixed): they cannot be told apart
    near = good.copy()
    near[[90, 100, 101]] = 1 - near[[90, 100, 101]]
    d, low, high = macro_f1_difference_interval(y, near, good)
    assert d < 0 < high and low < d
    assert macro_f1_difference_interval(y, near, good) == (d, low, high)    # seeded: reproducible
    assert macro_f1_difference_interval([], [], []) == (0.0, 0.0, 0.0)


def test_paired_disagreement_counts_the_stamps_one_classifier_alone_gets_right():
    y = np.zeros(200, dtype=int)
    y[:50] = 1
    a, b = y.copy(), y.copy()
    a[[0, 1]] = 0                     # a misses two pairs b finds
    b[[60, 61, 62, 63, 64, 65]] = 1   # b calls six singles binary that a does not
    a[70] = b[70] = 1                 # both wrong on one stamp: it ranks neither
    got = paired_disagreement(y, a, b)
    assert (got["only_a"], got["only_b"]) == (6, 2)
    # exact two-sided binomial: P(X <= 2) + P(X >= 6) for X ~ Bin(8, 1/2)
    assert got["p_value"] == pytest.approx((1 + 8 + 28 + 28 + 8 + 1) / 256)
    assert paired_disagreement(y, b, a) == {"only_a": 2, "only_b": 6, "p_value": got["p_value"]}
    assert paired_disagreement(y, a, a) == {"only_a": 0, "only_b": 0, "p_value": 1.0}
    lone = y.copy()
    lone[[60, 61, 62, 63, 64, 65]] = 1
    assert paired_disagreement(y, y, lone)["p_value"] == pytest.approx(2 / 64)
