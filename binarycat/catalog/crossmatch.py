"""Sky cross-match in DuckDB SQL: a zones join (Gray, Szalay et al. 2004) with RA bins.

The sky is cut into declination zones of height ``h = 4r`` (``r`` the match radius). Zone
``z`` is cut in RA into ``n(z)`` equal bins at least ``4r / cos(dec)`` wide at the zone's
polar edge (``n(z)`` is computed once per zone, in a small table of the zones the left
table reaches), so a bin is about two search diameters wide whatever the declination.
Every row of the *left* table is expanded to the (zone, bin) cells its search circle can
touch, 2.25 on average and at most 2 x 2: the zones from ``dec - r`` to ``dec + r`` and,
in each, the bins that cover
``ra ± alpha`` where ``alpha`` is the exact RA half-width of a circle of radius ``r`` at
that declination (``atan(sin r / sqrt(|cos(dec - r) cos(dec + r)|))``), taken modulo the
bin count so the window wraps across RA = 0/360; within ``r`` of a pole the window is the
whole zone. The right table is keyed by its own (zone, bin). The match is then a plain
equi-join on (zone, bin), which DuckDB runs as a hash join, followed by the exact
great-circle distance (haversine) test. Keying on the zone alone makes every probe scan a
whole zone; the RA bin is what keeps the join fast.

Examples
--------
>>> import duckdb
>>> con = duckdb.connect()
>>> _ = con.execute("create table a as select 'x' as id, 10.0 as ra, 20.0 as dec")
>>> _ = con.execute("create table b as select 'y' as id, 10.0002 as ra, 20.0 as dec")
>>> rel = zones_join(con, "a", "b", radius_arcsec=1.0)
>>> [(r[0], r[1], round(r[-1], 3)) for r in rel.fetchall()]
[('x', 'y', 0.677)]
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import duckdb
from astropy.table import Table

from binarycat.catalog.sources import parse_coordinates, find_columns, read_table
from binarycat.catalog.store import Catalog
from binarycat.errors import BinarycatError

__all__ = ["CrossmatchResult", "crossmatch", "zones_join", "zones_join_sql"]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_BINS = 1 << 20
ZONE_HEIGHT_RADII = 4.0  # zone height in match radii: ~1.5 zones and ~1.5 bins per row


def zones_join_sql(left: str, right: str, radius_arcsec: float, *, nearest: bool = False) -> str:
    """SQL text of the zones join of two relations with columns ``(id, ra, dec)`` in degrees.

    Returns rows ``(left_id, right_id, left_ra, left_dec, right_ra, right_dec, sep_arcsec)``;
    with ``nearest`` only the nearest right row for each left row.
    """
    if not (radius_arcsec > 0):
        raise BinarycatError(f"The match radius must be positive, got {radius_arcsec}.")
    r = float(radius_arcsec) / 3600.0
    h = ZONE_HEIGHT_RADII * r
    n_zones = int(math.floor(180.0 / h)) + 1
    # bins of zone z are >= 2 x ZONE_HEIGHT_RADII/2 windows wide at the zone's polar edge
    # (plus r, for rows reaching in from the next zone); near a pole, one bin per zone
    edge = f"(greatest(abs(-90 + z * {h!r}), abs(-90 + (z + 1) * {h!r})) + 2 * {r!r})"
    nbins = f"""CASE WHEN {edge} >= 90 THEN 1
                     ELSE least({MAX_BINS}, greatest(1,
                          floor(360.0 * cos(radians({edge})) / ({ZONE_HEIGHT_RADII} * {r!r}))::BIGINT)) END"""
    zone = f"least(floor((dec + 90) / {h!r})::BIGINT, {n_zones - 1})"
    alpha = f"""CASE WHEN abs(dec) + {r!r} >= 90 THEN 180.0
                     ELSE degrees(atan(sin(radians({r!r})) / sqrt(abs(
                          cos(radians(dec - {r!r})) * cos(radians(dec + {r!r})))))) END"""
    sep = """degrees(2 * asin(sqrt(least(1.0,
                 pow(sin(radians(r_dec - l_dec) / 2), 2)
                 + cos(radians(l_dec)) * cos(radians(r_dec)) * pow(sin(radians(r_ra - l_ra) / 2), 2)
             )))) * 3600.0"""
    sql = f"""
WITH l AS (
    SELECT id AS l_id, ra AS l_ra, dec AS l_dec, {alpha} AS l_alpha,
           greatest(floor((dec - {r!r} + 90) / {h!r})::BIGINT, 0) AS z_lo,
           least(floor((dec + {r!r} + 90) / {h!r})::BIGINT, {n_zones - 1}) AS z_hi
    FROM {left}
),
zones AS (  -- one row per zone the left table can reach: its RA bin count, computed once
    SELECT z, {nbins} AS n
    FROM range((SELECT coalesce(min(z_lo), 0) FROM l), (SELECT coalesce(max(z_hi), -1) FROM l) + 1) t(z)
),
l_bins AS (
    SELECT l_id, l_ra, l_dec, l_alpha, z, n,
           floor((l_ra - l_alpha) * n / 360.0)::BIGINT AS b_lo,
           floor((l_ra + l_alpha) * n / 360.0)::BIGINT AS b_hi
    FROM (SELECT l_id, l_ra, l_dec, l_alpha, unnest(range(z_lo, z_hi + 1)) AS z FROM l) JOIN zones USING (z)
),
l_cells AS (
    -- bins the window covers, modulo n so it wraps at RA 0/360; all bins when it spans them all
    SELECT l_id, l_ra, l_dec, z, (((b % n) + n) % n) AS bin
    FROM (SELECT l_id, l_ra, l_dec, z, n,
                 unnest(CASE WHEN l_alpha >= 180 OR b_hi - b_lo + 1 >= n THEN range(0, n)
                             ELSE range(b_lo, b_hi + 1) END) AS b
          FROM l_bins)
),
r AS (
    SELECT r_id, r_ra, r_dec, z, least(floor(r_ra * n / 360.0)::BIGINT, n - 1) AS bin
    FROM (SELECT id AS r_id, ra AS r_ra, dec AS r_dec, {zone} AS z FROM {right}) JOIN zones USING (z)
)
SELECT l_id AS left_id, r_id AS right_id, l_ra AS left_ra, l_dec AS left_dec,
       r_ra AS right_ra, r_dec AS right_dec, {sep} AS sep_arcsec
FROM l_cells JOIN r USING (z, bin)
WHERE {sep} <= {float(radius_arcsec)!r}
"""
    if nearest:
        sql += "QUALIFY row_number() OVER (PARTITION BY left_id ORDER BY sep_arcsec, right_id) = 1\n"
    return sql


def zones_join(con: duckdb.DuckDBPyConnection, left: str, right: str, radius_arcsec: float, *,
               nearest: bool = False) -> duckdb.DuckDBPyRelation:
    """The zones join of two relations (tables, views or ``read_parquet(...)``) as a DuckDB relation."""
    return con.sql(zones_join_sql(left, right, radius_arcsec, nearest=nearest))


@dataclass
class CrossmatchResult:
    """Counts of a stored cross-match."""

    name: str
    n_pairs: int
    n_external: int
    n_matched_external: int
    n_matched_sources: int
    radius_arcsec: float
    mode: str


def _external_relation(con, source, id_col, ra_col, dec_col) -> str:
    """Register the external catalogue as a view ``_ext(id, ra, dec)``; Parquet streams from disk."""
    path = Path(source) if not isinstance(source, Table) else None
    if path is not None and path.suffix.lower() in (".parquet", ".pq"):
        if not path.exists():
            raise BinarycatError(f"{path} does not exist.")
        cols = [r[0] for r in con.execute("DESCRIBE SELECT * FROM read_parquet(?)", [str(path)]).fetchall()]
        ident, ra_c, dec_c = find_columns(Table(names=cols, dtype=[float] * len(cols)), id_col, ra_col, dec_col)
        id_expr = f'"{ident}"::VARCHAR' if ident else "(row_number() OVER () - 1)::VARCHAR"
        escaped = str(path).replace("'", "''")
        con.execute(
            f"""CREATE OR REPLACE TEMP VIEW _ext AS
                SELECT {id_expr} AS id, "{ra_c}"::DOUBLE AS ra, "{dec_c}"::DOUBLE AS dec
                FROM read_parquet('{escaped}')"""
        )
        bad = con.execute(
            "SELECT count(*) FROM _ext WHERE ra IS NULL OR dec IS NULL OR NOT isfinite(ra) OR NOT isfinite(dec) "
            "OR ra < 0 OR ra >= 360 OR dec < -90 OR dec > 90"
        ).fetchall()[0][0]
        if bad:
            raise BinarycatError(f"{path}: {bad} row(s) have a missing or out-of-range position.")
        return "_ext"
    table = source if isinstance(source, Table) else read_table(source)
    ident, ra_c, dec_c = find_columns(table, id_col, ra_col, dec_col)
    ra, dec = parse_coordinates(table, ra_c, dec_c)
    ids = [str(v).strip() for v in table[ident]] if ident else [str(i) for i in range(len(table))]
    import pyarrow as pa

    con.register("_ext_arrow", pa.table({"id": ids, "ra": ra, "dec": dec}))
    con.execute("CREATE OR REPLACE TEMP VIEW _ext AS SELECT id, ra, dec FROM _ext_arrow")
    return "_ext"


def crossmatch(
    catalog: Catalog,
    external,
    radius_arcsec: float,
    *,
    name: str = "external",
    nearest: bool = False,
    id_col: str | None = None,
    ra_col: str | None = None,
    dec_col: str | None = None,
) -> CrossmatchResult:
    """Match an external catalogue against ``sources`` and store the pairs.

    Pairs land in the table ``crossmatches`` (``name, source_id, external_id, ra, dec,
    external_ra, external_dec, sep_arcsec``), replacing an earlier match of the same name,
    and the run in ``crossmatch_runs``.

    Parameters
    ----------
    catalog : Catalog
    external : path or astropy Table
        Any format `read_table` reads; a Parquet file is streamed by DuckDB.
    radius_arcsec : float
        Match radius.
    name : str
        Name of this match (a plain identifier), for joins: ``where name = 'gaia'``.
    nearest : bool
        Keep only the nearest catalogue source for each external row (default: all pairs).
    """
    if not _NAME.match(name):
        raise BinarycatError(f"Cross-match name {name!r} must be a plain identifier (letters, digits, _).")
    con = catalog.con.cursor()
    try:
        ext = _external_relation(con, external, id_col, ra_col, dec_col)
        n_ext = con.execute(f"SELECT count(*) FROM {ext}").fetchall()[0][0]
        pair_sql = zones_join_sql(ext, "(SELECT source_id AS id, ra, dec FROM sources)", radius_arcsec,
                                  nearest=nearest)
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute("DELETE FROM crossmatches WHERE name = ?", [name])
            con.execute("DELETE FROM crossmatch_runs WHERE name = ?", [name])
            con.execute(
                f"""INSERT INTO crossmatches (name, source_id, external_id, ra, dec, external_ra,
                                               external_dec, sep_arcsec)
                    SELECT ?, right_id, left_id, right_ra, right_dec, left_ra, left_dec, sep_arcsec
                    FROM ({pair_sql})""",
                [name],
            )
            stats = con.execute(
                "SELECT count(*), count(DISTINCT external_id), count(DISTINCT source_id) "
                "FROM crossmatches WHERE name = ?", [name]
            ).fetchall()[0]
            con.execute(
                "INSERT INTO crossmatch_runs (name, origin, radius_arcsec, mode, n_external, n_pairs) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [name, str(external) if not isinstance(external, Table) else "table", float(radius_arcsec),
                 "nearest" if nearest else "all", n_ext, stats[0]],
            )
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    finally:
        con.close()
    return CrossmatchResult(name, stats[0], n_ext, stats[1], stats[2], float(radius_arcsec),
                            "nearest" if nearest else "all")
