"""Source catalogues in and out: CSV, FITS, VOTable and Parquet tables of id, RA and Dec.

Columns are found by common names (``ra``, ``RAJ2000``, ``RA_ICRS``...), or named
explicitly. Sexagesimal strings are parsed by astropy. Every other column is kept, as JSON in
``sources.properties`` (query it with ``properties->>'name'``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.table import Table

from binarycat.catalog.arrays import healpix_index
from binarycat.catalog.store import Catalog
from binarycat.errors import BinarycatError

__all__ = [
    "ImportResult", "find_columns", "import_sources", "parse_coordinates", "read_table", "source_positions",
]

ID_NAMES = ("source_id", "id", "name", "objid", "obj_id", "object", "source", "designation",
            "tic", "ticid", "seq", "recno")
RA_NAMES = ("ra", "raj2000", "ra_icrs", "radeg", "ra_deg", "_raj2000", "ra_j2000", "alpha", "ra2000")
DEC_NAMES = ("dec", "dej2000", "de_icrs", "decdeg", "dec_deg", "_dej2000", "dec_j2000", "delta",
             "decl", "de2000", "dec2000")

_FORMATS = {
    ".csv": "ascii.csv", ".txt": "ascii", ".dat": "ascii", ".tsv": "ascii.tab", ".ecsv": "ascii.ecsv",
    ".fits": "fits", ".fit": "fits", ".fts": "fits", ".vot": "votable", ".xml": "votable",
    ".votable": "votable", ".parquet": "parquet", ".pq": "parquet",
}


def read_table(path: str | Path, *, format: str | None = None) -> Table:
    """Read a table file with astropy, choosing the reader from the extension.

    Identifier-like text columns (``00222``) stay text: CSV columns are read as strings
    first and converted to numbers only where every value is a number without leading zeros.
    """
    path = Path(path)
    if not path.exists():
        raise BinarycatError(f"{path} does not exist.")
    fmt = format or _FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise BinarycatError(
            f"{path}: unknown table format {path.suffix!r}; use one of {', '.join(sorted(_FORMATS))}."
        )
    try:
        if fmt.startswith("ascii"):
            table = Table.read(path, format=fmt, converters={"*": [_as_str()]})
            for name in table.colnames:
                table[name] = _maybe_numeric(table[name])
        elif fmt == "parquet":
            table = _read_parquet(path)
        else:
            table = Table.read(path, format=fmt)
    except Exception as exc:  # astropy raises many types for a bad file
        raise BinarycatError(f"{path} cannot be read as {fmt}: {_one_line(exc)}") from None
    if len(table) == 0:
        raise BinarycatError(f"{path} holds no rows.")
    return table


def _read_parquet(path: Path) -> Table:
    """Parquet through pyarrow (astropy's reader needs pandas)."""
    import pyarrow.parquet as pq

    arrow = pq.read_table(path)
    cols = {}
    for name in arrow.column_names:
        values = arrow.column(name).to_numpy(zero_copy_only=False)
        if values.dtype == object:
            values = np.array(["" if v is None else str(v) for v in values])
        cols[name] = values
    return Table(cols)


def _as_str():
    from astropy.io.ascii import convert_numpy

    return convert_numpy(str)


def _maybe_numeric(col):
    values = [str(v) for v in col]
    if any(len(v) > 1 and v.startswith("0") and v[1].isdigit() for v in values):
        return col
    try:
        ints = np.array([int(v) for v in values])
        return ints
    except ValueError:
        pass
    try:
        return np.array([float(v) if v.strip() else np.nan for v in values])
    except ValueError:
        return col


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _find(table: Table, names: tuple[str, ...], explicit: str | None, what: str) -> str:
    if explicit:
        if explicit not in table.colnames:
            raise BinarycatError(
                f"No column {explicit!r} for {what}; the columns are {', '.join(table.colnames)}."
            )
        return explicit
    lower = {c.lower(): c for c in table.colnames}
    for n in names:
        if n in lower:
            return lower[n]
    raise BinarycatError(
        f"Cannot find the {what} column among {', '.join(table.colnames)}; "
        f"name it with --{what.split()[0].lower()}-col."
    )


def find_columns(table: Table, id_col=None, ra_col=None, dec_col=None) -> tuple[str | None, str, str]:
    """Names of the id, RA and Dec columns (id is None when none is found: row numbers are used)."""
    ra = _find(table, RA_NAMES, ra_col, "RA")
    dec = _find(table, DEC_NAMES, dec_col, "Dec")
    try:
        ident = _find(table, ID_NAMES, id_col, "id")
    except BinarycatError:
        if id_col:
            raise
        ident = None
    return ident, ra, dec


def parse_coordinates(table: Table, ra_col: str, dec_col: str) -> tuple[np.ndarray, np.ndarray]:
    """ICRS degrees from two columns: numbers (degrees, or any angle unit the column carries) or
    sexagesimal strings (RA in hours); every value checked for range and finiteness."""
    ra, dec = table[ra_col], table[dec_col]
    if ra.dtype.kind in "fiu" and dec.dtype.kind in "fiu":
        ra_deg = np.asarray(ra.quantity.to_value(u.deg) if ra.unit and ra.unit.physical_type == "angle"
                            else ra, dtype=float)
        dec_deg = np.asarray(dec.quantity.to_value(u.deg) if dec.unit and dec.unit.physical_type == "angle"
                             else dec, dtype=float)
        if hasattr(ra, "mask") and np.any(ra.mask) or hasattr(dec, "mask") and np.any(dec.mask):
            raise BinarycatError(f"Some rows have no {ra_col}/{dec_col} value.")
    else:
        ra_s = np.array([str(v).strip() for v in ra], dtype=object)
        dec_s = np.array([str(v).strip() for v in dec], dtype=object)
        # sexagesimal RA is in hours; a plain number is degrees (rows may mix both)
        sexagesimal = np.array([any(ch in v for ch in ": hms") for v in ra_s])
        ra_deg = np.empty(len(ra_s))
        dec_deg = np.empty(len(ra_s))
        for mask, ra_unit in ((sexagesimal, u.hourangle), (~sexagesimal, u.deg)):
            if not mask.any():
                continue
            try:
                c = SkyCoord(list(ra_s[mask]), list(dec_s[mask]), unit=(ra_unit, u.deg), frame="icrs")
            except Exception as exc:
                raise BinarycatError(
                    f"Cannot parse coordinates in {ra_col}/{dec_col}: {_one_line(exc)}"
                ) from None
            ra_deg[mask], dec_deg[mask] = c.ra.deg, c.dec.deg
    bad = ~np.isfinite(ra_deg) | ~np.isfinite(dec_deg)
    if bad.any():
        raise BinarycatError(f"Row {int(np.argmax(bad)) + 1} has a missing or non-finite position.")
    bad = (ra_deg < 0) | (ra_deg >= 360)
    if bad.any():
        i = int(np.argmax(bad))
        raise BinarycatError(f"Row {i + 1} has RA {ra_deg[i]} outside [0, 360) degrees.")
    bad = np.abs(dec_deg) > 90
    if bad.any():
        i = int(np.argmax(bad))
        raise BinarycatError(f"Row {i + 1} has Dec {dec_deg[i]} outside [-90, 90] degrees.")
    return ra_deg, dec_deg


def _json_value(v):
    if isinstance(v, (bytes, np.bytes_)):
        return v.decode(errors="replace")
    if np.ma.is_masked(v):
        return None
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, np.ndarray):
        return v.tolist()
    return v


@dataclass
class ImportResult:
    """Counts of an import: rows added and rows whose id was already in the catalogue."""

    added: int = 0
    existing: int = 0
    columns: dict = field(default_factory=dict)


def import_sources(
    catalog: Catalog,
    table: Table | str | Path,
    *,
    id_col: str | None = None,
    ra_col: str | None = None,
    dec_col: str | None = None,
    origin: str | None = None,
) -> ImportResult:
    """Add the rows of a source table to ``sources``; ids already present are left as they are.

    Parameters
    ----------
    catalog : Catalog
    table : Table or path
        The source list; a path is read with `read_table`.
    id_col, ra_col, dec_col : str, optional
        Column names, when the common names do not find them.
    origin : str, optional
        Recorded in ``sources.origin``; defaults to the file name.
    """
    if not isinstance(table, Table):
        origin = origin or str(table)
        table = read_table(table)
    ident, ra_c, dec_c = find_columns(table, id_col, ra_col, dec_col)
    ra, dec = parse_coordinates(table, ra_c, dec_c)
    if ident is None:
        ids = [f"{i:05d}" for i in range(len(table))]
    else:
        col = table[ident]
        if hasattr(col, "mask") and np.any(col.mask):
            raise BinarycatError(f"Some rows have no {ident} value.")
        ids = [(_json_value(v) if not isinstance(v, str) else v) for v in col]
        ids = [str(v).strip() for v in ids]
    seen: dict[str, int] = {}
    for i, sid in enumerate(ids):
        if sid in seen:
            raise BinarycatError(
                f"Source id {sid!r} appears twice (rows {seen[sid] + 1} and {i + 1}); ids must be unique."
            )
        seen[sid] = i
    others = [c for c in table.colnames if c not in (ident, ra_c, dec_c)]
    props = [
        json.dumps({c: _json_value(table[c][i]) for c in others}) if others else None
        for i in range(len(table))
    ]
    hpx = healpix_index(ra, dec)
    existing = {
        s for (s,) in catalog.sql(
            "select source_id from sources where source_id in (select unnest(?))", [ids]
        ).fetchall()
    }
    rows = [
        (sid, float(r), float(d), int(h), origin, p)
        for sid, r, d, h, p in zip(ids, ra, dec, hpx, props)
        if sid not in existing
    ]
    if rows:
        import pyarrow as pa

        arrow = pa.table(
            {
                "source_id": [r[0] for r in rows], "ra": [r[1] for r in rows], "dec": [r[2] for r in rows],
                "healpix": [r[3] for r in rows], "origin": [r[4] for r in rows],
                "properties": [r[5] for r in rows],
            }
        )
        with catalog.transaction() as con:
            con.register("_new_sources", arrow)
            con.execute(
                "insert into sources (source_id, ra, dec, healpix, origin, properties) "
                "select source_id, ra, dec, healpix, origin, properties::JSON from _new_sources"
            )
            con.unregister("_new_sources")
    return ImportResult(
        added=len(rows), existing=len(existing), columns={"id": ident, "ra": ra_c, "dec": dec_c}
    )


def source_positions(catalog: Catalog) -> tuple[list[str], np.ndarray, np.ndarray]:
    """All source ids with their RA and Dec (degrees)."""
    rows = catalog.sql("select source_id, ra, dec from sources order by source_id").fetchall()
    if not rows:
        return [], np.empty(0), np.empty(0)
    ids, ra, dec = zip(*rows)
    return list(ids), np.asarray(ra, float), np.asarray(dec, float)


def id_range_condition(spec: str, column: str = "s.source_id") -> str:
    """An SQL condition selecting sources whose id, read as an integer, is in some ranges.

    Source ids are strings, so ``source_id < '100000'`` compares them as text and
    ``'10001' > '100000'``; this compares their numeric values instead.

    Parameters
    ----------
    spec : str
        Comma-separated ranges ``FROM-TO`` (both ends included) or single ids,
        e.g. ``"6000-8999,10000-14499"``.
    column : str
        The id column the condition tests.

    Returns
    -------
    str
        A condition such as ``(try_cast(s.source_id as bigint) between 6000 and 8999)``.
        Ids that are not integers never match.

    Raises
    ------
    BinarycatError
        If a range is not two non-negative integers in order.
    """
    terms = []
    for part in (p.strip() for p in spec.split(",")):
        lo, sep, hi = part.partition("-")
        try:
            first, last = int(lo), int(hi if sep else lo)
        except ValueError:
            first = last = -1
        if first < 0 or last < first:
            raise BinarycatError(f"--ids takes ranges FROM-TO of whole numbers, lowest first "
                                 f"(e.g. 6000-8999,10000-14499), not {part!r}.")
        terms.append(f"try_cast({column} as bigint) between {first} and {last}")
    return "(" + " or ".join(terms) + ")"
