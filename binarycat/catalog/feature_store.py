"""Prepared model inputs of light curves, kept so a light curve is prepared once per recipe.

Preparing a TESS sector for CALNet (spline fits and a periodogram) costs tens of
milliseconds; training, predicting and evaluating all need the same inputs. They are kept in
``features/<recipe>/<uuid>.parquet`` (rows ``lightcurve_id, lc, periodogram, scalars``,
float32) and
indexed by ``lightcurve_features (lightcurve_id, recipe)``, written like every other shard:
file first (atomically), then the rows. A light curve's id names one (TIC, sector) whose
arrays never change once stored, so an entry stays valid until the recipe changes, and the
recipe is part of the key.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from pathlib import Path
from typing import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from binarycat.catalog.arrays import write_table_atomic
from binarycat.catalog.store import Catalog
from binarycat.errors import BinarycatError

__all__ = ["FEATURE_DIR", "load_features", "store_features"]

FEATURE_DIR = "features"
_OPTIONS = dict(compression="zstd", compression_level=3, use_dictionary=False,
                column_encoding={"lc.list.element": "BYTE_STREAM_SPLIT",
                                 "periodogram.list.element": "BYTE_STREAM_SPLIT",
                                 "scalars.list.element": "BYTE_STREAM_SPLIT"})


def _safe(recipe: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in recipe)


def store_features(catalog: Catalog, recipe: str, lightcurve_ids: Sequence[str], lc: np.ndarray,
                   periodogram: np.ndarray, scalars: np.ndarray, best_period: Sequence[float]) -> int:
    """Keep prepared inputs; ids already kept for ``recipe`` are skipped. Returns rows added."""
    have = {v for (v,) in catalog.sql(
        "select lightcurve_id from lightcurve_features where recipe = ? and lightcurve_id in (select unnest(?))",
        [recipe, list(lightcurve_ids)]).fetchall()}
    keep = [i for i, lid in enumerate(lightcurve_ids) if lid not in have]
    if not keep:
        return 0
    rel = Path(FEATURE_DIR) / _safe(recipe) / f"{uuid.uuid4().hex}.parquet"
    lists = {name: pa.FixedSizeListArray.from_arrays(
        pa.array(np.ascontiguousarray(arr[keep], dtype=np.float32).ravel()), arr.shape[1])
        for name, arr in (("lc", lc), ("periodogram", periodogram), ("scalars", scalars))}
    table = pa.table({"lightcurve_id": pa.array([lightcurve_ids[i] for i in keep], pa.string()), **lists})
    write_table_atomic(table, catalog.resolve(rel), **_OPTIONS)
    with catalog.transaction() as con:
        con.executemany(
            "insert or ignore into lightcurve_features (lightcurve_id, recipe, shard, shard_row, best_period_days) "
            "values (?, ?, ?, ?, ?)",
            [(lightcurve_ids[i], recipe, rel.as_posix(), row, float(best_period[i])) for row, i in enumerate(keep)])
    return len(keep)


def load_features(catalog: Catalog, recipe: str, lightcurve_ids: Sequence[str]
                  ) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, float]]:
    """``lightcurve_id -> (lc, periodogram, scalars, best_period)`` for the ids kept for ``recipe``."""
    rows = catalog.sql(
        "select lightcurve_id, shard, shard_row, best_period_days from lightcurve_features "
        "where recipe = ? and lightcurve_id in (select unnest(?))", [recipe, list(lightcurve_ids)]).fetchall()
    by_shard: dict[str, list[tuple[str, int, float]]] = defaultdict(list)
    for lid, shard, row, period in rows:
        by_shard[shard].append((lid, row, period))
    out = {}
    for shard, members in by_shard.items():
        try:
            table = pq.read_table(catalog.resolve(shard), columns=["lc", "periodogram", "scalars"])
        except (FileNotFoundError, pa.ArrowInvalid, OSError):
            raise BinarycatError(f"Feature shard {catalog.resolve(shard)} cannot be read; "
                                 "the catalogue is damaged (run `binarycat init`).") from None
        lc, pg, sc = (np.asarray(table.column(c).combine_chunks().flatten()).reshape(table.num_rows, -1)
                      for c in ("lc", "periodogram", "scalars"))
        for lid, row, period in members:
            out[lid] = (lc[row], pg[row], sc[row], period)
    return out
