"""What the report and the labelling page read from a catalogue: plain SQL, no plotting.

Candidates are sources with at least one survey whose latest prediction flags a binary
(``binary_flags.flag``). A user filter (``--where``) is a SQL boolean expression over one
row per flagged (source, survey) with the columns listed in `WHERE_COLUMNS`; a source is
selected when any of its flagged rows passes. The filter runs inside a single SELECT
statement: the filter must parse as one SQL expression and the whole text as exactly one
SELECT before it runs, so it cannot change anything even on a read-write connection.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import duckdb
import numpy as np

from binarycat.catalog.store import Catalog
from binarycat.errors import BinarycatError

__all__ = [
    "STAMP_MODEL_KIND",
    "WHERE_COLUMNS",
    "Candidate",
    "StampInfo",
    "ModelEvaluation",
    "table_exists",
    "select_candidates",
    "count_flagged_sources",
    "stamps_of_sources",
    "survey_counts",
    "model_evaluation",
    "sky_positions",
]

#: ``models.kind`` of the stamp classifier (``binarycat.model.train.MODEL_KIND``; not imported
#: here because that module loads torch).
STAMP_MODEL_KIND = "stamp_classifier"

#: Columns a ``--where`` filter may use, one row per flagged (source, survey).
WHERE_COLUMNS = {
    "source_id": "the source",
    "survey": "the survey whose latest prediction flags it",
    "p_binary": "that prediction's probability",
    "model_id": "the model that made it",
    "predicted_at": "when",
    "label": "the latest label of that source and survey (1, 0 or NULL)",
    "ra": "source RA, degrees",
    "dec": "source Dec, degrees",
    "n_surveys": "surveys with a prediction for the source",
    "n_surveys_binary": "surveys flagging it",
    "binary_in": "those surveys, comma-separated, A-Z",
}

_FLAGGED = """
SELECT bf.source_id, bf.survey, bf.p_binary, bf.model_id, bf.predicted_at, ll.label,
       sf.ra, sf.dec, sf.n_surveys, sf.n_surveys_binary, sf.binary_in
FROM binary_flags bf
JOIN source_flags sf USING (source_id)
LEFT JOIN latest_labels ll ON ll.source_id = bf.source_id AND ll.survey = bf.survey
WHERE bf.flag
"""


@dataclass
class Candidate:
    """A source flagged as a binary in at least one survey."""

    source_id: str
    ra: float
    dec: float
    n_surveys: int
    n_surveys_binary: int
    binary_in: str
    max_p: float


@dataclass
class StampInfo:
    """One stamp of a source with the survey's scale and the catalogue's verdicts on it."""

    stamp_id: str
    source_id: str
    survey: str
    height: int
    width: int
    pixel_scale_arcsec: float | None
    fwhm_arcsec: float | None
    p_binary: float | None = None
    flag: bool | None = None
    label: int | None = None
    labeller: str | None = None


@dataclass
class ModelEvaluation:
    """The newest stamp classifier and how it did on its held-out test split."""

    model_id: str
    surveys: list[str]
    created_at: object
    metrics: dict = field(default_factory=dict)
    p_test: np.ndarray = field(default_factory=lambda: np.zeros(0))
    y_test: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))

    @property
    def confusion(self) -> list[list[int]] | None:
        return (self.metrics.get("test") or {}).get("confusion_matrix")


def table_exists(catalog: Catalog, name: str) -> bool:
    """Whether a table or view called ``name`` exists in the catalogue."""
    return bool(catalog.sql(
        "select count(*) from information_schema.tables where table_name = ?", [name]
    ).fetchone()[0])


def _check_filter(where: str) -> None:
    """Refuse anything but one SQL expression (no second statement, no closing parenthesis tricks)."""
    try:
        duckdb.SQLExpression(where)
    except duckdb.Error as exc:
        raise BinarycatError(f"The --where filter is not one valid SQL expression: {_one_line(exc)}") from None


def _one_select(sql: str) -> None:
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise BinarycatError(f"The --where filter is not one valid SQL expression: {_one_line(exc)}") from None
    if len(statements) != 1 or statements[0].type != duckdb.StatementType.SELECT:
        raise BinarycatError("The --where filter must be one boolean expression, not further statements.")


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if text.endswith(".") else text + "."


def select_candidates(catalog: Catalog, where: str | None = None, limit: int | None = None) -> list[Candidate]:
    """Candidates, most flagging surveys first, then the highest ``p_binary``, then source id.

    Parameters
    ----------
    catalog : Catalog
    where : str, optional
        SQL boolean expression over `WHERE_COLUMNS`, e.g. ``"survey = 'HST' and p_binary > 0.9"``.
    limit : int, optional
        At most this many candidates.

    Raises
    ------
    BinarycatError
        When the filter is not one valid boolean expression over those columns.
    """
    condition = "true"
    if where and where.strip():
        _check_filter(where)
        condition = f"(\n{where}\n)"  # newlines: a trailing -- comment cannot swallow the rest
    sql = (f"WITH flagged AS ({_FLAGGED}) "
           "SELECT source_id, any_value(ra), any_value(dec), any_value(n_surveys), any_value(n_surveys_binary), "
           "any_value(binary_in), max(p_binary) AS max_p "
           f"FROM flagged WHERE {condition} GROUP BY source_id "
           "ORDER BY 5 DESC, max_p DESC, source_id")
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    _one_select(sql)
    try:
        rows = catalog.con.cursor().execute(sql).fetchall()
    except duckdb.Error as exc:
        raise BinarycatError(f"The --where filter failed ({_one_line(exc).rstrip('.')}); it may use the columns "
                             f"{', '.join(WHERE_COLUMNS)}.") from None
    return [Candidate(r[0], float(r[1]), float(r[2]), int(r[3]), int(r[4]), r[5] or "", float(r[6])) for r in rows]


def count_flagged_sources(catalog: Catalog) -> int:
    """Sources flagged as binary in at least one survey (before any filter or limit)."""
    return catalog.sql("select count(*) from source_flags where n_surveys_binary > 0").fetchone()[0]


def stamps_of_sources(catalog: Catalog, source_ids: list[str]) -> dict[str, list[StampInfo]]:
    """Every survey's stamp of each source, with scale, PSF, latest prediction and label.

    One stamp per (source, survey): the one the latest prediction is about, else the newest.
    Surveys are in order of PSF FWHM, coarsest first, as in the paper's figures.
    """
    if not source_ids:
        return {}
    has_surveys = table_exists(catalog, "surveys")
    survey_join = ("LEFT JOIN surveys sv ON sv.name = s.survey" if has_surveys
                   else "LEFT JOIN (SELECT NULL::VARCHAR AS name, NULL::DOUBLE AS pixel_scale_arcsec, "
                        "NULL::DOUBLE AS fwhm_arcsec) sv ON false")
    rows = catalog.sql(
        f"""
        SELECT s.stamp_id, s.source_id, s.survey, s.height, s.width,
               coalesce(s.pixel_scale_arcsec, sv.pixel_scale_arcsec), sv.fwhm_arcsec,
               bf.p_binary, bf.flag, ll.label, ll.labeller
        FROM stamps s
        {survey_join}
        LEFT JOIN binary_flags bf ON bf.source_id = s.source_id AND bf.survey = s.survey
        LEFT JOIN latest_labels ll ON ll.source_id = s.source_id AND ll.survey = s.survey
        WHERE s.source_id IN (SELECT unnest(?))
        QUALIFY row_number() OVER (PARTITION BY s.source_id, s.survey
                                   ORDER BY (s.stamp_id = bf.stamp_id) DESC NULLS LAST,
                                            s.created_at DESC, s.stamp_id) = 1
        ORDER BY s.source_id, sv.fwhm_arcsec DESC NULLS LAST, s.survey
        """,
        [list(source_ids)],
    ).fetchall()
    out: dict[str, list[StampInfo]] = {sid: [] for sid in source_ids}
    for r in rows:
        out[r[1]].append(StampInfo(
            stamp_id=r[0], source_id=r[1], survey=r[2], height=int(r[3]), width=int(r[4]),
            pixel_scale_arcsec=r[5], fwhm_arcsec=r[6], p_binary=r[7], flag=r[8],
            label=None if r[9] is None else int(r[9]), labeller=r[10],
        ))
    return out


def survey_counts(catalog: Catalog) -> list[dict]:
    """Per survey: sources with stamps, stamps, predicted, flagged, labels binary / not binary."""
    rows = catalog.sql(
        """
        WITH st AS (SELECT survey, count(DISTINCT source_id) AS sources, count(*) AS stamps
                    FROM stamps GROUP BY survey),
             bf AS (SELECT survey, count(*) AS predicted, count(*) FILTER (WHERE flag) AS flagged
                    FROM binary_flags GROUP BY survey),
             lb AS (SELECT survey, count(*) FILTER (WHERE label = 1) AS lab_binary,
                           count(*) FILTER (WHERE label = 0) AS lab_not
                    FROM latest_labels GROUP BY survey),
             names AS (SELECT survey FROM st UNION SELECT survey FROM bf UNION SELECT survey FROM lb)
        SELECT n.survey, coalesce(st.sources, 0), coalesce(st.stamps, 0), coalesce(bf.predicted, 0),
               coalesce(bf.flagged, 0), coalesce(lb.lab_binary, 0), coalesce(lb.lab_not, 0)
        FROM names n LEFT JOIN st USING (survey) LEFT JOIN bf USING (survey) LEFT JOIN lb USING (survey)
        ORDER BY n.survey
        """
    ).fetchall()
    keys = ("survey", "sources", "stamps", "predicted", "flagged", "labelled_binary", "labelled_not")
    return [dict(zip(keys, r)) for r in rows]


def model_evaluation(catalog: Catalog) -> ModelEvaluation | None:
    """The newest stamp classifier, its stored test metrics and its test-split predictions.

    ``p_test``/``y_test`` pair the model's stored predictions of test-split sources with
    their latest labels (empty when ``binarycat predict`` has not run with that model).
    None when the catalogue holds no stamp classifier.
    """
    row = catalog.sql(
        "select model_id, surveys, metrics, created_at from models where kind = ? "
        "order by created_at desc, model_id desc limit 1", [STAMP_MODEL_KIND],
    ).fetchone()
    if row is None:
        return None
    metrics = row[2]
    if isinstance(metrics, str):
        try:
            metrics = json.loads(metrics)
        except ValueError:
            metrics = {}
    pairs = catalog.sql(
        """
        SELECT p.p_binary, l.label
        FROM predictions p
        JOIN splits s ON s.model_id = p.model_id AND s.source_id = p.source_id AND s.split = 'test'
        JOIN latest_labels l ON l.source_id = p.source_id AND l.survey = p.survey
        WHERE p.model_id = ?
        """,
        [row[0]],
    ).fetchall()
    p = np.array([r[0] for r in pairs], dtype=float)
    y = np.array([r[1] for r in pairs], dtype=int)
    return ModelEvaluation(row[0], list(row[1] or []), row[3], metrics or {}, p, y)


def sky_positions(catalog: Catalog) -> tuple[np.ndarray, np.ndarray]:
    """RA and Dec of every catalogue source (degrees)."""
    t = catalog.sql("select ra, dec from sources").fetchnumpy()
    return np.asarray(t["ra"], dtype=float), np.asarray(t["dec"], dtype=float)
