"""``binary_flags`` and ``source_flags``: the latest predictions, kept at write time.

Every prediction that is written also updates, in the same transaction,

- ``binary_flags``: one row per (source, survey), the latest prediction;
- ``source_flags``: one row per source, how many surveys flag it, which, and a map of the
  latest ``p_binary`` per survey,

so queries read one row per (source, survey) or per source instead of ranking the whole
prediction history.

Eclipsing-binary predictions (``eb_predictions``, one per TESS sector) become the row of
survey ``'TESS'``: of the latest model's predictions for the source's light curves, the
most probable one (an eclipse seen in any sector makes the star an eclipsing binary);
``stamp_id`` then holds that prediction's ``lightcurve_id``. "Latest" is the prediction written last; among predictions written
together, the newest ``created_at``, then the highest model id, then the lowest stamp id.
"""

from __future__ import annotations

from binarycat.catalog.store import Catalog

__all__ = ["rebuild_binary_flags", "update_binary_flags", "update_eb_flags"]

_LATEST = """
SELECT p.source_id, p.survey, s.ra, s.dec, p.flag, p.p_binary, p.model_id, p.stamp_id, p.created_at
FROM predictions p JOIN sources s USING (source_id)
{where}
QUALIFY row_number() OVER (PARTITION BY p.source_id, p.survey
                           ORDER BY p.created_at DESC, p.model_id DESC, p.stamp_id) = 1
"""

_SUMMARY = """
SELECT source_id, any_value(ra), any_value(dec), count(*), count(*) FILTER (WHERE flag),
       coalesce(array_to_string(list_sort(list(survey) FILTER (WHERE flag)), ','), ''),
       map_from_entries(list(struct_pack(k := survey, v := p_binary)))
FROM binary_flags
{where}
GROUP BY source_id
"""


_LATEST_EB = """
WITH m AS (  -- the latest model of each source
    SELECT source_id, model_id, max(created_at) AS t FROM eb_predictions
    WHERE source_id IS NOT NULL {where}
    GROUP BY source_id, model_id
    QUALIFY row_number() OVER (PARTITION BY source_id ORDER BY t DESC, model_id DESC) = 1
)
SELECT e.source_id, 'TESS', s.ra, s.dec, e.flag, e.p_binary, e.model_id, e.lightcurve_id, e.created_at
FROM eb_predictions e JOIN m USING (source_id, model_id) JOIN sources s USING (source_id)
QUALIFY row_number() OVER (PARTITION BY e.source_id ORDER BY e.p_binary DESC, e.lightcurve_id) = 1
"""


def update_eb_flags(con, model_id: str, lightcurve_ids: list[str]) -> None:
    """Make ``model_id``'s predictions the TESS flags of the sources of ``lightcurve_ids``.

    Call inside the transaction that inserted the predictions.
    """
    sources = ("SELECT DISTINCT source_id FROM eb_predictions WHERE model_id = ? "
               "AND lightcurve_id IN (SELECT unnest(?)) AND source_id IS NOT NULL")
    con.execute(
        "INSERT OR REPLACE INTO binary_flags " + _LATEST_EB.format(
            where=f"AND model_id = ? AND source_id IN ({sources})"),
        [model_id, model_id, list(lightcurve_ids)],
    )
    con.execute(
        "INSERT OR REPLACE INTO source_flags " + _SUMMARY.format(where=f"WHERE source_id IN ({sources})"),
        [model_id, list(lightcurve_ids)],
    )


def update_binary_flags(con, model_id: str, stamp_ids: list[str]) -> None:
    """Make the given new predictions of ``model_id`` the flags of their (source, survey).

    Call inside the transaction that inserted the predictions.
    """
    con.execute(
        "INSERT OR REPLACE INTO binary_flags "
        + _LATEST.format(where="WHERE p.model_id = ? AND p.stamp_id IN (SELECT unnest(?))"),
        [model_id, list(stamp_ids)],
    )
    con.execute(
        "INSERT OR REPLACE INTO source_flags "
        + _SUMMARY.format(where="WHERE source_id IN (SELECT DISTINCT source_id FROM predictions "
                                "WHERE model_id = ? AND stamp_id IN (SELECT unnest(?)))"),
        [model_id, list(stamp_ids)],
    )


def rebuild_binary_flags(catalog: Catalog) -> int:
    """Recompute both tables from the whole prediction history (after bulk loads or deletes)."""
    with catalog.transaction() as con:
        con.execute("DELETE FROM binary_flags")
        con.execute("INSERT INTO binary_flags " + _LATEST.format(where=""))
        con.execute("INSERT INTO binary_flags " + _LATEST_EB.format(where=""))
        con.execute("DELETE FROM source_flags")
        con.execute("INSERT INTO source_flags " + _SUMMARY.format(where=""))
    return catalog.table_count("binary_flags")
