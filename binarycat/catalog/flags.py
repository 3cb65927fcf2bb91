"""The ``binary_flags`` table: the latest prediction per source and survey, kept at write time.

Every prediction that is written also updates ``binary_flags`` in the same transaction, so
queries read one row per (source, survey) instead of ranking the whole prediction history.
"Latest" is the prediction written last; among predictions written together, the newest
``created_at``, then the highest model id, then the lowest stamp id.
"""

from __future__ import annotations

from binarycat.catalog.store import Catalog

__all__ = ["rebuild_binary_flags", "update_binary_flags"]

_LATEST = """
SELECT p.source_id, p.survey, s.ra, s.dec, p.flag, p.p_binary, p.model_id, p.stamp_id, p.created_at
FROM predictions p JOIN sources s USING (source_id)
{where}
QUALIFY row_number() OVER (PARTITION BY p.source_id, p.survey
                           ORDER BY p.created_at DESC, p.model_id DESC, p.stamp_id) = 1
"""


def update_binary_flags(con, model_id: str, stamp_ids: list[str]) -> None:
    """Make the given new predictions of ``model_id`` the flags of their (source, survey).

    Call inside the transaction that inserted the predictions.
    """
    con.execute(
        "INSERT OR REPLACE INTO binary_flags "
        + _LATEST.format(where="WHERE p.model_id = ? AND p.stamp_id IN (SELECT unnest(?))"),
        [model_id, list(stamp_ids)],
    )


def rebuild_binary_flags(catalog: Catalog) -> int:
    """Recompute ``binary_flags`` from the whole prediction history (after bulk loads or deletes)."""
    with catalog.transaction() as con:
        con.execute("DELETE FROM binary_flags")
        con.execute("INSERT INTO binary_flags " + _LATEST.format(where=""))
    return catalog.table_count("binary_flags")
