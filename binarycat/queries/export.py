"""Writing query results as CSV, JSON, Parquet, FITS or VOTable."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from binarycat.errors import BinarycatError

__all__ = ["FORMATS", "BINARY_FORMATS", "format_of_path", "write_result", "to_astropy"]

FORMATS = ("table", "csv", "json", "parquet", "fits", "votable")
BINARY_FORMATS = ("parquet", "fits")
_SUFFIX_FORMATS = {".csv": "csv", ".json": "json", ".parquet": "parquet", ".fits": "fits", ".fit": "fits",
                   ".vot": "votable", ".xml": "votable"}


def format_of_path(path: str | Path) -> str:
    """The output format a file name asks for, from its suffix (``.fits`` -> ``"fits"``).

    Raises
    ------
    BinarycatError
        For a suffix that names none of the formats.
    """
    fmt = _SUFFIX_FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise BinarycatError(f"Cannot tell the format of {str(path)!r} from its suffix; end it in "
                             f"{', '.join(_SUFFIX_FORMATS)}.")
    return fmt


def to_astropy(table: pa.Table):
    """An astropy Table with ICRS units and UCDs on ``ra``/``dec`` (TOPCAT recognises them)."""
    from astropy import units as u
    from astropy.table import Table

    cols = {}
    for name in table.column_names:
        col = table.column(name)
        if pa.types.is_list(col.type) or pa.types.is_large_list(col.type) or pa.types.is_struct(col.type):
            cols[name] = np.array([json.dumps(v) for v in col.to_pylist()])
        elif pa.types.is_timestamp(col.type) or pa.types.is_date(col.type):
            cols[name] = np.array([str(v) for v in col.to_pylist()])
        elif pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            cols[name] = np.array(["" if v is None else v for v in col.to_pylist()])
        elif pa.types.is_boolean(col.type):
            cols[name] = np.array([bool(v) for v in col.to_pylist()])
        else:
            cols[name] = np.ma.masked_invalid(col.to_numpy(zero_copy_only=False).astype(float)) \
                if col.null_count else col.to_numpy(zero_copy_only=False)
    t = Table(cols) if cols else Table()
    for name, ucd in (("ra", "pos.eq.ra;meta.main"), ("dec", "pos.eq.dec;meta.main")):
        if name in t.colnames:
            t[name].unit = u.deg
            t[name].meta["ucd"] = ucd
    for name in t.colnames:
        if name.endswith("_arcsec"):
            t[name].unit = u.arcsec
    return t


def _json_default(v):
    return str(v)


def write_result(table: pa.Table, fmt: str, output: str | Path | None = None) -> None:
    """Write ``table`` in ``fmt`` to ``output`` (a path) or to standard output.

    ``table`` format is rendered by the CLI; here it falls back to CSV.
    """
    fmt = fmt.lower()
    if fmt not in FORMATS:
        raise BinarycatError(f"Unknown format {fmt!r}; use one of {', '.join(FORMATS)}.")
    if fmt in BINARY_FORMATS and output is None:
        raise BinarycatError(f"The {fmt} format is binary; give a file with --output.")
    if fmt in ("table", "csv"):
        buf = io.BytesIO()
        pacsv.write_csv(table, buf)
        data = buf.getvalue()
    elif fmt == "json":
        data = (json.dumps(table.to_pylist(), default=_json_default, indent=1) + "\n").encode()
    elif fmt == "parquet":
        pq.write_table(table, output)
        return
    else:
        t = to_astropy(table)
        if output is not None:
            t.write(output, format="fits" if fmt == "fits" else "votable", overwrite=True)
            return
        buf = io.BytesIO()
        t.write(buf, format="votable")
        data = buf.getvalue()
    if output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        Path(output).write_bytes(data)
