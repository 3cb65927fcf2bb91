import pytest

from binarycat.errors import BinarycatError
from binarycat.ingest.labels import import_labels
from conftest import add_sources


def _write(path, rows):
    path.write_text("source_id,survey,label\n" + "".join(f"{a},{b},{c}\n" for a, b, c in rows))
    return path


def test_import_is_idempotent_and_updates_changed_labels(catalog, tmp_path):
    add_sources(catalog, [("00001", 1, 1), ("00002", 2, 2)])
    f = _write(tmp_path / "l.csv", [("00001", "ps1", 1), ("00002", "HST", 0)])
    assert import_labels(catalog, f).added == 2
    res = import_labels(catalog, f)
    assert (res.added, res.changed, res.unchanged) == (0, 0, 2)
    assert catalog.table_count("labels") == 2
    _write(f, [("00001", "ps1", 0), ("00002", "HST", 0)])
    res = import_labels(catalog, f)
    assert (res.added, res.changed, res.unchanged) == (0, 1, 1)
    rows = catalog.sql("select source_id, survey, label from latest_labels order by 1").fetchall()
    assert rows == [("00001", "PanSTARRS", 0), ("00002", "HST", 0)]


@pytest.mark.parametrize("rows,match", [
    ([("00001", "PS1", 2)], "0 or 1"),
    ([("00009", "PS1", 1)], "not in the catalogue"),
    ([("00001", "Gaia", 1)], "known surveys"),
    ([("00001", "PS1", 1), ("00001", "PanSTARRS", 0)], "repeats"),
])
def test_bad_label_files_store_nothing(catalog, tmp_path, rows, match):
    add_sources(catalog, [("00001", 1, 1)])
    with pytest.raises(BinarycatError, match=match):
        import_labels(catalog, _write(tmp_path / "l.csv", rows))
    assert catalog.table_count("labels") == 0
