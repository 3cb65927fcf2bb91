"""The light-curve store: TESS sectors as Parquet arrays beside the ``lightcurves`` rows.

Layout and guarantees (the same as the stamp store, `binarycat.catalog.arrays`)
-------------------------------------------------------------------------------
- Arrays live in ``lightcurves/hpx5=NNNNN/<uuid>.parquet``, partitioned by the target's
  HEALPix pixel. A shard row is ``(content_hash, time, flux, flux_err, quality)``: TIME as
  float64 (BTJD days), PDCSAP flux and error as float32, QUALITY as int32, every value as
  read from the file (NaN included), the float columns BYTE_STREAM_SPLIT-encoded and
  zstd-compressed.
- Shards are immutable and written under a temporary name, flushed and renamed before the
  rows that point at them commit.
- One row per (TIC, sector): ``lightcurve_id = 'TIC<tic>-s<sector:04d>'``. Storing a sector
  that is already there adds nothing, so re-running an ingest or a fetch is harmless.

Tying a light curve to a catalogue source
-----------------------------------------
TESS pixels are 21" wide, so the flux of one target holds every star within about a pixel.
A light curve is tied to the nearest catalogue source within ``match_radius_arcsec``
(default `MATCH_RADIUS_ARCSEC` = 10.5", half a pixel: the SPOC target position and a
catalogue position of the same star agree to well under that). ``n_sources_in_pixel`` counts
the catalogue sources within `BLEND_RADIUS_ARCSEC` = 21" (one pixel) of the target, and
``blended`` is true when it is more than one: the eclipse may belong to a neighbour.
"""

from __future__ import annotations

import hashlib
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from binarycat.catalog.arrays import HEALPIX_ORDER, healpix_index, write_table_atomic
from binarycat.catalog.crossmatch import zones_join_sql
from binarycat.catalog.store import Catalog
from binarycat.errors import BinarycatError

__all__ = [
    "BLEND_RADIUS_ARCSEC",
    "LIGHTCURVE_DIR",
    "MATCH_RADIUS_ARCSEC",
    "LightCurveArrays",
    "LightCurveStoreResult",
    "lightcurve_id_for",
    "load_lightcurves",
    "match_lightcurves_to_sources",
    "store_lightcurves",
]

LIGHTCURVE_DIR = "lightcurves"
MATCH_RADIUS_ARCSEC = 10.5  # half a TESS pixel
BLEND_RADIUS_ARCSEC = 21.0  # one TESS pixel

_FLOATS = ("time", "flux", "flux_err")
PARQUET_OPTIONS = dict(
    compression="zstd",
    compression_level=3,
    use_dictionary=False,
    column_encoding={f"{c}.list.element": "BYTE_STREAM_SPLIT" for c in _FLOATS},
    row_group_size=64,
)
_SHARD_SCHEMA = pa.schema(
    [
        ("content_hash", pa.string()),
        ("time", pa.large_list(pa.float64())),
        ("flux", pa.large_list(pa.float32())),
        ("flux_err", pa.large_list(pa.float32())),
        ("quality", pa.large_list(pa.int32())),
    ]
)


@dataclass
class LightCurveArrays:
    """The arrays of one stored light curve."""

    lightcurve_id: str
    time: np.ndarray
    flux: np.ndarray
    flux_err: np.ndarray
    quality: np.ndarray


@dataclass
class LightCurveStoreResult:
    """What `store_lightcurves` did: ids added, ids already present, shards written."""

    added: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    shards: list[str] = field(default_factory=list)


def lightcurve_id_for(tic_id: int, sector: int) -> str:
    """``'TIC<tic>-s<sector:04d>'``, the key of one sector of one target."""
    return f"TIC{int(tic_id)}-s{int(sector):04d}"


def _content_hash(lc) -> str:
    h = hashlib.sha256()
    for name, dtype in (("time", np.float64), ("flux", np.float32), ("flux_err", np.float32),
                        ("quality", np.int32)):
        a = np.ascontiguousarray(getattr(lc, name), dtype=dtype)
        h.update(f"{name}{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _list_array(arrays: Sequence[np.ndarray], dtype) -> pa.LargeListArray:
    offsets = np.zeros(len(arrays) + 1, dtype=np.int64)
    np.cumsum([a.size for a in arrays], out=offsets[1:])
    flat = np.concatenate([np.asarray(a, dtype=dtype) for a in arrays]) if arrays else np.zeros(0, dtype)
    return pa.LargeListArray.from_arrays(pa.array(offsets), pa.array(flat))


def match_lightcurves_to_sources(
    catalog: Catalog, positions: Sequence[tuple[str, float, float]], *,
    match_radius_arcsec: float = MATCH_RADIUS_ARCSEC,
    blend_radius_arcsec: float = BLEND_RADIUS_ARCSEC,
) -> dict[str, tuple[str | None, float | None, int]]:
    """Nearest source within the match radius, and the count within the blend radius.

    Parameters
    ----------
    positions : sequence of (key, ra, dec)
        ICRS degrees.

    Returns
    -------
    dict
        ``key -> (source_id or None, separation in arcsec or None, n_sources_in_pixel)``.
    """
    out: dict[str, tuple[str | None, float | None, int]] = {k: (None, None, 0) for k, _, _ in positions}
    if not positions or catalog.table_count("sources") == 0:
        return out
    radius = max(match_radius_arcsec, blend_radius_arcsec)
    con = catalog.con.cursor()
    try:
        con.execute("create or replace temp table _lc_pos (id varchar, ra double, dec double)")
        con.executemany("insert into _lc_pos values (?, ?, ?)", [(k, float(r), float(d)) for k, r, d in positions])
        rows = con.execute(
            "select left_id, right_id, sep_arcsec from ("
            + zones_join_sql("_lc_pos", "(select source_id as id, ra, dec from sources)", radius)
            + ") order by left_id, sep_arcsec, right_id"
        ).fetchall()
        con.execute("drop table _lc_pos")
    finally:
        con.close()
    grouped: dict[str, list[tuple[str, float]]] = defaultdict(list)
    for key, sid, sep in rows:
        grouped[key].append((sid, sep))
    for key, matches in grouped.items():
        sid, sep = matches[0]
        n_pixel = sum(1 for _, s in matches if s <= blend_radius_arcsec)
        out[key] = (sid, float(sep), n_pixel) if sep <= match_radius_arcsec else (None, None, n_pixel)
    return out


def store_lightcurves(
    catalog: Catalog, lightcurves: Iterable, *, origins: Sequence[str] | None = None,
    match_radius_arcsec: float = MATCH_RADIUS_ARCSEC,
) -> LightCurveStoreResult:
    """Store light curves: arrays to new shards first, then the ``lightcurves`` rows.

    Parameters
    ----------
    lightcurves : iterable
        Objects with the attributes of `binarycat.ingest.tess_fits.TessLightCurve`
        (``tic_id, sector, ra, dec, time, flux, flux_err, quality, tessmag, camera, ccd``).
    origins : sequence of str, optional
        Where each came from (a file or a URL), stored in ``origin``.
    match_radius_arcsec : float
        Radius of the tie to the nearest catalogue source (see the module docstring).

    Returns
    -------
    LightCurveStoreResult
        Sectors already stored (same TIC and sector) are reported in ``existing`` and left
        alone, even when their arrays differ: the first stored version is kept.
    """
    lcs = list(lightcurves)
    origins = list(origins) if origins is not None else [str(getattr(lc, "path", "") or "") for lc in lcs]
    result = LightCurveStoreResult()
    if not lcs:
        return result
    ids = [lightcurve_id_for(lc.tic_id, lc.sector) for lc in lcs]
    present = {
        v for (v,) in catalog.sql(
            "select lightcurve_id from lightcurves where lightcurve_id in (select unnest(?))", [ids]
        ).fetchall()
    }
    todo, seen = [], set()
    for lid, lc, origin in zip(ids, lcs, origins):
        if lid in present or lid in seen:
            result.existing.append(lid)
            continue
        seen.add(lid)
        todo.append((lid, lc, origin))
    if not todo:
        return result

    matches = match_lightcurves_to_sources(
        catalog, [(lid, lc.ra, lc.dec) for lid, lc, _ in todo], match_radius_arcsec=match_radius_arcsec)
    hpx = healpix_index([lc.ra for _, lc, _ in todo], [lc.dec for _, lc, _ in todo])
    by_pixel: dict[int, list[int]] = defaultdict(list)
    for i, p in enumerate(hpx):
        by_pixel[int(p)].append(i)

    rows = []
    for pixel, members in sorted(by_pixel.items()):
        rel = Path(LIGHTCURVE_DIR) / f"hpx{HEALPIX_ORDER}={pixel:05d}" / f"{uuid.uuid4().hex}.parquet"
        chosen = [todo[i][1] for i in members]
        hashes = [_content_hash(lc) for lc in chosen]
        table = pa.Table.from_arrays(
            [pa.array(hashes, pa.string()),
             _list_array([lc.time for lc in chosen], np.float64),
             _list_array([lc.flux for lc in chosen], np.float32),
             _list_array([lc.flux_err for lc in chosen], np.float32),
             _list_array([lc.quality for lc in chosen], np.int32)],
            schema=_SHARD_SCHEMA,
        )
        write_table_atomic(table, catalog.resolve(rel), **PARQUET_OPTIONS)
        result.shards.append(rel.as_posix())
        for shard_row, (i, chash, lc) in enumerate(zip(members, hashes, chosen)):
            lid, _, origin = todo[i]
            sid, sep, n_pixel = matches[lid]
            t = np.asarray(lc.time, dtype=np.float64)
            finite_t = t[np.isfinite(t)]
            n_good = int(np.count_nonzero(
                (np.asarray(lc.quality) == 0) & np.isfinite(t) & np.isfinite(np.asarray(lc.flux, dtype=np.float64))))
            rows.append((
                lid, int(lc.tic_id), int(lc.sector), sid, sep, n_pixel, n_pixel > 1,
                float(lc.ra), float(lc.dec), pixel, _opt(getattr(lc, "tessmag", None)),
                _opt_int(getattr(lc, "camera", None)), _opt_int(getattr(lc, "ccd", None)),
                int(t.size), n_good,
                float(finite_t.min()) if finite_t.size else None,
                float(finite_t.max()) if finite_t.size else None,
                chash, rel.as_posix(), shard_row, origin,
            ))
    with catalog.transaction() as con:
        con.executemany(
            "insert into lightcurves (lightcurve_id, tic_id, sector, source_id, match_sep_arcsec, "
            "n_sources_in_pixel, blended, ra, dec, healpix, tessmag, camera, ccd, n_points, n_good, "
            "time_start, time_stop, content_hash, shard, shard_row, origin) "
            "values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
    result.added.extend(r[0] for r in rows)
    return result


def _opt(value) -> float | None:
    return None if value is None or not np.isfinite(value) else float(value)


def _opt_int(value) -> int | None:
    return None if value is None else int(value)


def load_lightcurves(catalog: Catalog, lightcurve_ids: Sequence[str]) -> list[LightCurveArrays]:
    """The arrays of the given light curves, in the given order, reading each shard once.

    Raises
    ------
    BinarycatError
        For an unknown id, or a shard that is missing or unreadable.
    """
    ids = list(lightcurve_ids)
    rows = catalog.sql(
        "select lightcurve_id, shard, shard_row from lightcurves "
        "where lightcurve_id in (select unnest(?))", [ids]
    ).fetchall()
    where = {lid: (shard, row) for lid, shard, row in rows}
    missing = [i for i in ids if i not in where]
    if missing:
        raise BinarycatError(f"Unknown light curve {missing[0]!r}.")
    by_shard: dict[str, set[int]] = defaultdict(set)
    for lid in ids:
        by_shard[where[lid][0]].add(where[lid][1])
    cache: dict[tuple[str, int], tuple] = {}
    for shard, shard_rows in by_shard.items():
        path = catalog.resolve(shard)
        try:
            table = pq.read_table(path, columns=["time", "flux", "flux_err", "quality"])
        except FileNotFoundError:
            raise BinarycatError(f"Light-curve shard {path} is missing; the catalogue is damaged.") from None
        except (pa.ArrowInvalid, OSError) as exc:
            raise BinarycatError(f"Light-curve shard {path} cannot be read: {exc}.") from None
        wanted = sorted(shard_rows)
        table = table.take(pa.array(wanted, pa.int64()))
        cols = {}
        for name in ("time", "flux", "flux_err", "quality"):
            col = table.column(name).combine_chunks()
            cols[name] = (col.values.to_numpy(zero_copy_only=False), col.offsets.to_numpy())
        for k, r in enumerate(wanted):
            cache[(shard, r)] = tuple(
                values[offsets[k]: offsets[k + 1]] for values, offsets in cols.values())
    return [LightCurveArrays(lid, *cache[where[lid]]) for lid in ids]
