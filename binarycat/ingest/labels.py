"""Labels in: a file of (source id, survey, label) rows, such as the simulator's ``truth.csv``,
or of (TIC id, label) rows for eclipsing binaries, such as ``lightcurve_truth.csv``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
from astropy.table import Table

from binarycat.catalog.sources import read_table
from binarycat.catalog.store import Catalog
from binarycat.errors import BinarycatError
from binarycat.ingest.surveys import get_survey, sync_survey_table

__all__ = ["LabelImport", "import_eb_labels", "import_labels"]

_ID = ("source_id", "id", "source", "name")
_SURVEY = ("survey",)
_LABEL = ("label", "is_binary_resolved", "binary", "class")
_TIC = ("tic_id", "tic", "ticid")
_KIND = ("kind", "eb_class", "type")


@dataclass
class LabelImport:
    """Counts of a label import."""

    added: int = 0
    changed: int = 0
    unchanged: int = 0


def _column(table: Table, names: tuple[str, ...], what: str) -> str:
    lower = {c.lower(): c for c in table.colnames}
    for n in names:
        if n in lower:
            return lower[n]
    raise BinarycatError(f"The label file has no {what} column (looked for {', '.join(names)}).")


def import_labels(catalog: Catalog, table: Table | str | Path, *, labeller: str | None = None) -> LabelImport:
    """Store labels 0 (single or unresolved) / 1 (resolved visual binary) per source and survey.

    Parameters
    ----------
    catalog : Catalog
    table : Table or path
        CSV or Parquet (any format `read_table` reads) with columns ``source_id``, ``survey``
        and ``label``.
    labeller : str, optional
        Who gave the labels; defaults to the file name. Importing the same labels again
        changes nothing; a new value from the same labeller replaces the old one.

    Raises
    ------
    BinarycatError
        For a missing column, a label other than 0/1, an unknown survey, or a source id that
        is not in the catalogue. Nothing is stored then.
    """
    if not isinstance(table, Table):
        labeller = labeller or Path(table).name
        table = read_table(table)
    labeller = labeller or "python"
    lower = {c.lower() for c in table.colnames}
    if lower & set(_TIC) and not lower & set(_SURVEY):
        return import_eb_labels(catalog, table, labeller=labeller)
    id_c, sv_c, lb_c = _column(table, _ID, "source id"), _column(table, _SURVEY, "survey"), _column(
        table, _LABEL, "label"
    )
    ids = [str(v).strip() for v in table[id_c]]
    surveys = [get_survey(str(s)).name for s in table[sv_c]]
    labels = _zero_one(table, lb_c)
    known = {
        s for (s,) in catalog.sql(
            "select source_id from sources where source_id in (select unnest(?))", [sorted(set(ids))]
        ).fetchall()
    }
    unknown = sorted(set(ids) - known)
    if unknown:
        raise BinarycatError(
            f"{len(unknown)} labelled source id(s) are not in the catalogue (first: {unknown[0]!r}); "
            "import the sources first."
        )
    dup = len(ids) - len(set(zip(ids, surveys)))
    if dup:
        raise BinarycatError(f"The label file repeats {dup} (source, survey) pair(s).")
    sync_survey_table(catalog)
    new = pa.table(
        {"source_id": ids, "survey": surveys, "label": labels, "labeller": [labeller] * len(ids)}
    )
    with catalog.transaction() as con:
        con.register("_new_labels", new)
        counts = con.execute(
            """select count(*) filter (where l.label is null),
                      count(*) filter (where l.label is not null and l.label <> n.label),
                      count(*) filter (where l.label = n.label)
               from _new_labels n left join labels l using (source_id, survey, labeller)"""
        ).fetchone()
        con.execute(
            """insert or replace into labels (source_id, survey, label, labeller)
               select n.source_id, n.survey, n.label, n.labeller from _new_labels n
               left join labels l using (source_id, survey, labeller)
               where l.label is null or l.label <> n.label"""
        )
        con.unregister("_new_labels")
    return LabelImport(added=counts[0], changed=counts[1], unchanged=counts[2])


def _zero_one(table: Table, column: str) -> np.ndarray:
    try:
        labels = np.asarray(table[column], dtype=float)
    except (TypeError, ValueError):
        raise BinarycatError(f"Labels in column {column!r} must be 0 or 1.") from None
    bad = ~np.isin(labels, (0, 1))
    if bad.any():
        i = int(np.argmax(bad))
        raise BinarycatError(f"Row {i + 1} has label {table[column][i]!r}; labels must be 0 or 1.")
    return labels.astype(np.int8)


def import_eb_labels(catalog: Catalog, table: Table | str | Path, *, labeller: str | None = None) -> LabelImport:
    """Store eclipsing-binary labels per star: 1 eclipsing binary, 0 not.

    Parameters
    ----------
    table : Table or path
        Columns ``tic_id`` and ``label``, optionally ``kind`` (EA, EB, EW, or what the star
        is instead). Stars need not have light curves yet.
    labeller : str, optional
        Who gave the labels; defaults to the file name.

    Raises
    ------
    BinarycatError
        For a missing column, a label other than 0/1, a TIC id that is not a positive
        integer, or a repeated TIC id. Nothing is stored then.
    """
    if not isinstance(table, Table):
        labeller = labeller or Path(table).name
        table = read_table(table)
    labeller = labeller or "python"
    tic_c, lb_c = _column(table, _TIC, "TIC id"), _column(table, _LABEL, "label")
    try:
        tics = np.asarray(table[tic_c], dtype=np.float64)
    except (TypeError, ValueError):
        raise BinarycatError(f"TIC ids in column {tic_c!r} must be positive integers.") from None
    if not np.all(np.isfinite(tics) & (tics > 0) & (tics == np.round(tics))):
        raise BinarycatError(f"TIC ids in column {tic_c!r} must be positive integers.")
    tics = tics.astype(np.int64)
    labels = _zero_one(table, lb_c)
    if len(set(tics.tolist())) != len(tics):
        raise BinarycatError(f"The label file repeats {len(tics) - len(set(tics.tolist()))} TIC id(s).")
    lower = {c.lower(): c for c in table.colnames}
    kind_c = next((lower[k] for k in _KIND if k in lower), None)
    kinds = [str(v) for v in table[kind_c]] if kind_c else [None] * len(tics)
    new = pa.table({"tic_id": tics, "label": labels, "kind": pa.array(kinds, pa.string()),
                    "labeller": [labeller] * len(tics)})
    with catalog.transaction() as con:
        con.register("_new_eb_labels", new)
        counts = con.execute(
            """select count(*) filter (where l.label is null),
                      count(*) filter (where l.label is not null and l.label <> n.label),
                      count(*) filter (where l.label = n.label)
               from _new_eb_labels n left join eb_labels l using (tic_id, labeller)"""
        ).fetchone()
        con.execute(
            """insert or replace into eb_labels (tic_id, label, kind, labeller)
               select n.tic_id, n.label, n.kind, n.labeller from _new_eb_labels n
               left join eb_labels l using (tic_id, labeller)
               where l.label is null or l.label <> n.label or l.kind is distinct from n.kind"""
        )
        con.unregister("_new_eb_labels")
    return LabelImport(added=counts[0], changed=counts[1], unchanged=counts[2])
