"""A small real catalogue for the report and labelling tests: stamps, a model row, predictions, labels.

Sources ``S01``..``S{n-1}`` and, first, one id with spaces and a slash (to exercise file names
and escaping) each get a 2MASS, a PanSTARRS and an HST stamp (Gaussian stars plus noise); every
second source has a companion 1" away with a fifth of the primary's flux. A stamp-classifier
``models`` row with a test confusion matrix, a split, predictions of every stamp (binaries
get p_binary 0.8-0.95 in PanSTARRS and HST, 0.3 in 2MASS; singles 0.05-0.45) and simulator
labels for the first half of the sources complete it.
"""

from __future__ import annotations

import json

from binarycat.catalog.arrays import StampRecord, store_stamps
from binarycat.catalog.flags import rebuild_binary_flags
from binarycat.catalog.store import Catalog
from binarycat.ingest.surveys import sync_survey_table
from conftest import add_sources, star_image

MODEL_ID = "stamp-test-model"
ODD_ID = "J0535-05 a/b"
SURVEYS = {"2MASS": (1.0, 2.7, 10), "PanSTARRS": (0.25, 1.1, 40), "HST": (0.05, 0.08, 120)}


def source_ids(n: int) -> list[str]:
    return [ODD_ID] + [f"S{i:02d}" for i in range(1, n)]


def is_binary(i: int) -> bool:
    return i % 2 == 0


def p_binary(i: int, survey: str) -> float:
    if is_binary(i):
        return 0.3 if survey == "2MASS" else 0.8 + 0.015 * (i % 10)
    return 0.05 + 0.04 * (i % 10)


def build(cat: Catalog, n: int = 8, *, model: bool = True, labels: bool = True, predictions: bool = True) -> list[str]:
    """Fill ``cat``; returns the source ids (the first is `ODD_ID`, a binary)."""
    sync_survey_table(cat)
    ids = source_ids(n)
    add_sources(cat, [(sid, 83.8 + 0.01 * i, -5.4 + 0.01 * i) for i, sid in enumerate(ids)])
    records = []
    for i, sid in enumerate(ids):
        for k, (survey, (scale, fwhm, npix)) in enumerate(SURVEYS.items()):
            offsets = ((0.0, 0.0, 3000.0), (0.9, 0.5, 600.0)) if is_binary(i) else ((0.0, 0.0, 3000.0),)
            img = star_image(npix, scale, fwhm, offsets, seed=100 * i + k)
            records.append(StampRecord(sid, survey, img, ["x"], scale, origin="test"))
    store_stamps(cat, records)
    if model:
        metrics = {"test": {"confusion_matrix": [[3, 1], [0, 4]], "accuracy": 0.875,
                            "macro avg": {"f1": 0.87, "precision": 0.9, "recall": 0.875, "support": 8}},
                   "n_test": 8}
        cat.sql("insert into models (model_id, kind, surveys, params, split_seed, metrics, checkpoint) "
                "values (?, 'stamp_classifier', ?, '{}', 0, ?, 'models/none.pt')",
                [MODEL_ID, list(SURVEYS), json.dumps(metrics)])
        cat.con.executemany("insert into splits values (?, ?, ?)",
                            [(MODEL_ID, sid, "test" if i < n // 2 else "train") for i, sid in enumerate(ids)])
    if predictions:
        rows = cat.sql("select stamp_id, source_id, survey from stamps").fetchall()
        index = {sid: i for i, sid in enumerate(ids)}
        cat.con.executemany(
            "insert into predictions (stamp_id, model_id, source_id, survey, p_binary, flag, threshold) "
            "values (?, ?, ?, ?, ?, ?, 0.5)",
            [(st, MODEL_ID, src, sv, p_binary(index[src], sv), p_binary(index[src], sv) >= 0.5)
             for st, src, sv in rows],
        )
        rebuild_binary_flags(cat)
    if labels:
        cat.con.executemany(
            "insert into labels (source_id, survey, label, labeller) values (?, ?, ?, 'simulator')",
            [(sid, sv, int(is_binary(i) and sv != "2MASS")) for i, sid in enumerate(ids[: n // 2]) for sv in SURVEYS],
        )
    return ids


def candidates(ids: list[str]) -> list[str]:
    """The source ids `build` flags as binary."""
    return [sid for i, sid in enumerate(ids) if is_binary(i)]
