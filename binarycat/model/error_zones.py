"""Where a stamp classifier's errors lie against the label rule of a simulated sky.

A simulated stamp is labelled binary when its companion lies at least one FWHM from the primary
and has a peak S/N of at least 5 (`binarycat.ingest.simulate.resolved_label`). Both the CNN and
the baseline make nearly all their errors close to one of those two limits, where the label
turns on a tenth of a FWHM or one unit of S/N, so a report that pools every stamp hides which
method places the limits better. `error_zones` splits each method's errors by zone:

``separation limit``
    a binary whose separation is within ``separation_margin`` (10 %) of the survey's FWHM and
    whose companion S/N is clearly above the label's (by more than ``snr_margin``, 1.5);
``S/N limit``
    a binary whose companion S/N is within ``snr_margin`` of the label's and whose separation is
    clearly beyond one FWHM;
``both limits``
    a binary near both;
``binary, neither limit``
    every other binary (clearly resolved, or clearly not);
``single``
    a single star (``is_binary`` false).

The truth comes from `binarycat simulate`'s ``truth.csv`` (columns ``source_id``, ``survey``,
``is_binary``, ``separation_arcsec``, ``fwhm_arcsec``, ``companion_snr``).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from astropy.table import Table

from binarycat.catalog.sources import read_table
from binarycat.errors import BinarycatError

ZONES = ("separation limit", "S/N limit", "both limits", "binary, neither limit", "single")
TRUTH_COLUMNS = ("source_id", "survey", "is_binary", "separation_arcsec", "fwhm_arcsec", "companion_snr")


def label_zones(is_binary, separation_fwhm, companion_snr, *, label_snr: float = 5.0,
                separation_margin: float = 0.1, snr_margin: float = 1.5) -> np.ndarray:
    """The zone (one of `ZONES`) of each stamp, from its true separation (in FWHM) and S/N.

    Parameters
    ----------
    is_binary : array_like of bool
    separation_fwhm : array_like of float
        Separation over the survey band's FWHM.
    companion_snr : array_like of float
        The companion's peak S/N in the stamp.
    label_snr : float
        The label rule's S/N limit.
    separation_margin, snr_margin : float
        Half-widths of the zones around one FWHM (fractional) and around ``label_snr``.

    Returns
    -------
    numpy.ndarray of str
    """
    binary = np.asarray(is_binary, dtype=bool)
    sep = np.asarray(separation_fwhm, dtype=float) - 1.0
    snr = np.asarray(companion_snr, dtype=float) - label_snr
    near_sep, near_snr = np.abs(sep) <= separation_margin, np.abs(snr) <= snr_margin
    return np.select([~binary, near_sep & near_snr, near_sep & (snr > snr_margin),
                      near_snr & (sep > separation_margin)],
                     [ZONES[4], ZONES[2], ZONES[0], ZONES[1]], default=ZONES[3])


def read_truth(path) -> Table:
    """Read a simulator truth table (any format `read_table` knows) and check its columns."""
    truth = read_table(path)
    missing = [c for c in TRUTH_COLUMNS if c not in truth.colnames]
    if missing:
        raise BinarycatError(f"{path} lacks the column(s) {', '.join(missing)}; give the truth.csv "
                             "that `binarycat simulate` wrote for these sources.")
    return truth


def error_zones(per_stamp: pa.Table, truth: Table, **zone_options) -> list[dict]:
    """Count each method's missed pairs and false alarms per zone and survey.

    Parameters
    ----------
    per_stamp : pyarrow.Table
        `binarycat.model.evaluation.stamp_table` rows (``source_id``, ``survey``, ``label``,
        ``predicted``, ``baseline_predicted``).
    truth : astropy.table.Table
        The simulator's truth, one row per (source, survey), with `TRUTH_COLUMNS` (`read_truth`).
    **zone_options
        Passed to `label_zones`.

    Returns
    -------
    list of dict
        One row per (zone, survey) holding stamps, in `ZONES` order then by survey:
        ``zone``, ``survey``, ``stamps``, ``cnn_missed``, ``cnn_false``, and
        ``baseline_missed``, ``baseline_false`` (None without a baseline).

    Raises
    ------
    BinarycatError
        If ``truth`` has no row for a scored stamp.
    """
    row_of = {(str(s), str(v)): i for i, (s, v) in enumerate(zip(truth["source_id"], truth["survey"]))}
    keys = list(zip(per_stamp.column("source_id").to_pylist(), per_stamp.column("survey").to_pylist()))
    index = np.array([row_of.get(k, -1) for k in keys], dtype=np.int64)
    if (index < 0).any():
        source, survey = keys[int(np.argmax(index < 0))]
        raise BinarycatError(f"The truth table has no row for source {source} in {survey} "
                             f"({int((index < 0).sum())} scored stamps without one).")
    fwhm = np.asarray(truth["fwhm_arcsec"], dtype=float)[index]
    zone = label_zones(np.asarray(truth["is_binary"], dtype=bool)[index],
                       np.asarray(truth["separation_arcsec"], dtype=float)[index] / fwhm,
                       np.asarray(truth["companion_snr"], dtype=float)[index], **zone_options)
    survey = np.asarray(per_stamp.column("survey").to_pylist())
    label = per_stamp.column("label").to_numpy(zero_copy_only=False).astype(int)
    cnn = per_stamp.column("predicted").to_numpy(zero_copy_only=False).astype(int)
    base_col = per_stamp.column("baseline_predicted")
    base = None if base_col.null_count == len(base_col) else base_col.to_numpy(zero_copy_only=False).astype(int)

    rows = []
    for z in ZONES:
        for s in sorted(set(survey[zone == z])):
            sel = (zone == z) & (survey == s)
            row = {"zone": z, "survey": str(s), "stamps": int(sel.sum()),
                   "cnn_missed": int((sel & (label == 1) & (cnn == 0)).sum()),
                   "cnn_false": int((sel & (label == 0) & (cnn == 1)).sum()),
                   "baseline_missed": None, "baseline_false": None}
            if base is not None:
                row["baseline_missed"] = int((sel & (label == 1) & (base == 0)).sum())
                row["baseline_false"] = int((sel & (label == 0) & (base == 1)).sum())
            rows.append(row)
    return rows
