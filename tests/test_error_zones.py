"""Errors counted by where a stamp lies against the simulated label rule."""

import numpy as np
import pyarrow as pa
import pytest
from astropy.table import Table

from binarycat.errors import BinarycatError
from binarycat.model.error_zones import ZONES, error_zones, label_zones, read_truth


def test_zones_follow_the_label_rule_limits():
    #                 single  sep lim  S/N lim  both    clear   unresolved  faint, far
    is_binary = [False, True, True, True, True, True, True]
    sep_fwhm = [0.0, 1.05, 3.0, 0.95, 3.0, 0.5, 3.0]
    snr = [0.0, 40.0, 5.5, 4.0, 40.0, 40.0, 1.0]
    assert list(label_zones(is_binary, sep_fwhm, snr)) == [
        "single", "separation limit", "S/N limit", "both limits", "binary, neither limit",
        "binary, neither limit", "binary, neither limit"]
    # the margins are parameters: a pair 1.15 FWHM apart is at the limit only with a wider one
    assert label_zones([True], [1.15], [40.0])[0] == "binary, neither limit"
    assert label_zones([True], [1.15], [40.0], separation_margin=0.2)[0] == "separation limit"


def _scored(rows):
    source, survey, label, cnn, base = zip(*rows)
    return pa.table({"source_id": list(source), "survey": list(survey), "label": pa.array(label, pa.int8()),
                     "predicted": pa.array(cnn, pa.int8()), "baseline_predicted": pa.array(base, pa.int8())})


def _truth():
    return Table({"source_id": ["001", "002", "003", "004", "004"],
                  "survey": ["PanSTARRS", "PanSTARRS", "PanSTARRS", "HST", "PanSTARRS"],
                  "is_binary": [1, 1, 0, 1, 1],
                  "separation_arcsec": [1.15, 1.0, 0.0, 1.0, 1.0],
                  "fwhm_arcsec": [1.1, 1.1, 1.1, 0.09, 1.1],
                  "companion_snr": [30.0, 30.0, 0.0, 5.2, 30.0]})


def test_missed_pairs_and_false_alarms_are_counted_per_zone_and_survey():
    scored = _scored([("001", "PanSTARRS", 1, 0, 1),   # separation limit: CNN misses it
                      ("002", "PanSTARRS", 0, 1, 1),   # separation limit (0.91 FWHM): both call it binary
                      ("003", "PanSTARRS", 0, 0, 0),   # single, right
                      ("004", "HST", 1, 1, 0)])        # S/N limit: the baseline misses it
    rows = error_zones(scored, _truth())
    by = {(r["zone"], r["survey"]): r for r in rows}
    assert by[("separation limit", "PanSTARRS")] == {
        "zone": "separation limit", "survey": "PanSTARRS", "stamps": 2, "cnn_missed": 1, "cnn_false": 1,
        "baseline_missed": 0, "baseline_false": 1}
    assert by[("S/N limit", "HST")]["baseline_missed"] == 1 and by[("S/N limit", "HST")]["cnn_missed"] == 0
    assert by[("single", "PanSTARRS")]["stamps"] == 1
    assert [r["zone"] for r in rows] == sorted((r["zone"] for r in rows), key=ZONES.index)
    assert sum(r["stamps"] for r in rows) == scored.num_rows


def test_without_a_baseline_its_counts_are_none():
    scored = _scored([("001", "PanSTARRS", 1, 0, 0)]).set_column(4, "baseline_predicted", pa.nulls(1, pa.int8()))
    (row,) = error_zones(scored, _truth())
    assert row["cnn_missed"] == 1 and row["baseline_missed"] is None


def test_a_stamp_without_truth_and_a_truth_without_columns_are_refused(tmp_path):
    with pytest.raises(BinarycatError, match="no row for source 009 in SDSS9"):
        error_zones(_scored([("009", "SDSS9", 0, 0, 0)]), _truth())
    t = _truth()
    t.remove_column("companion_snr")
    t.write(tmp_path / "truth.csv")
    with pytest.raises(BinarycatError, match="lacks the column.*companion_snr"):
        read_truth(tmp_path / "truth.csv")
    _truth().write(tmp_path / "ok.csv")
    assert np.array_equal(read_truth(tmp_path / "ok.csv")["companion_snr"], _truth()["companion_snr"])
