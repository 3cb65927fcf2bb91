import subprocess
import sys
import textwrap

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from binarycat.catalog.arrays import (
    HEALPIX_ORDER, LAYOUTS, StampRecord, content_hash, healpix_index, load_stamp_arrays, orphan_shards,
    read_array_shard, remove_orphan_shards, store_stamps, write_array_shard,
)
from binarycat.catalog.store import Catalog
from binarycat.errors import BinarycatError
from conftest import add_sources


def _bits(shape, seed):
    """Arbitrary float32 bit patterns: NaN payloads, infinities, -0.0, subnormals included."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 2**32, size=shape, dtype=np.uint64).astype(np.uint32).view(np.float32)


@settings(max_examples=25, deadline=None)
@given(h=st.integers(1, 40), w=st.integers(1, 40), n=st.integers(1, 4), seed=st.integers(0, 2**31),
       layout=st.sampled_from(LAYOUTS))
def test_shard_round_trip_is_bit_exact(tmp_path_factory, h, w, n, seed, layout):
    arrays = [_bits((h + i, w), seed + i) for i in range(n)]
    arrays[0].flat[0] = -0.0
    path = tmp_path_factory.mktemp("shard") / "s.parquet"
    write_array_shard(path, [str(i) for i in range(n)], arrays, layout=layout)
    back = read_array_shard(path)
    assert [b.shape for b in back] == [a.shape for a in arrays]
    for a, b in zip(arrays, back):
        assert b.dtype == np.float32
        assert a.tobytes() == b.tobytes()
    subset = read_array_shard(path, [n - 1, 0, n - 1])
    assert [x.tobytes() for x in subset] == [arrays[n - 1].tobytes(), arrays[0].tobytes(),
                                             arrays[n - 1].tobytes()]


def test_shard_stores_each_stamp_as_one_raw_lz4_value(tmp_path):
    path = tmp_path / "s.parquet"
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    write_array_shard(path, ["a"], [a])
    meta = pq.ParquetFile(path).metadata.row_group(0)
    pixels = next(meta.column(i) for i in range(meta.num_columns) if meta.column(i).path_in_schema == "pixels")
    assert pixels.compression == "LZ4"
    assert pq.read_table(path).column("pixels")[0].as_py() == a.astype("<f4").tobytes()


@pytest.mark.parametrize("layout", LAYOUTS)
def test_shard_arrays_are_read_only_views_unless_copied(tmp_path, layout):
    path = tmp_path / "s.parquet"
    write_array_shard(path, ["a", "b"], [np.ones((4, 4), np.float32), np.zeros((2, 3), np.float32)], layout=layout)
    assert not any(a.flags.writeable for a in read_array_shard(path))
    copied = read_array_shard(path, [1], copy=True, use_threads=False)
    assert copied[0].flags.writeable and copied[0].shape == (2, 3)


def test_shard_row_past_the_end_fails_clearly(tmp_path):
    path = tmp_path / "s.parquet"
    write_array_shard(path, ["a"], [np.ones((4, 4), np.float32)])
    with pytest.raises(BinarycatError, match="has 1 rows"):
        read_array_shard(path, [3])


def test_catalogue_with_shards_of_the_earlier_list_layout_still_reads(catalog):
    add_sources(catalog, [("a", 83.8, -5.4)])
    a = _bits((9, 7), 3)
    res = store_stamps(catalog, [StampRecord("a", "HST", a, ra=83.8, dec=-5.4)])
    (shard,) = catalog.sql("select shard from stamps").fetchone()
    write_array_shard(catalog.resolve(shard), [content_hash(a)], [a], layout="list")   # as older versions wrote it
    assert pq.read_schema(catalog.resolve(shard)).field("pixels").type == pa.large_list(pa.float32())
    assert load_stamp_arrays(catalog, res.added)[0].tobytes() == a.tobytes()


def test_store_round_trips_and_partitions_by_healpix(catalog):
    add_sources(catalog, [("a", 83.8, -5.4), ("b", 200.0, 40.0)])
    a, b = _bits((20, 30), 1), _bits((7, 5), 2)
    res = store_stamps(catalog, [StampRecord("a", "HST", a, ra=83.8, dec=-5.4),
                                 StampRecord("b", "HST", b, ra=200.0, dec=40.0)])
    assert len(res.added) == 2 and len(res.shards) == 2
    back = load_stamp_arrays(catalog, res.added[::-1])
    assert back[0].tobytes() == b.tobytes() and back[1].tobytes() == a.tobytes()
    for sid, shard, hpx in catalog.sql("select stamp_id, shard, healpix from stamps").fetchall():
        assert f"hpx{HEALPIX_ORDER}={hpx:05d}/" in shard
        assert (catalog.path / shard).is_file()
    assert int(healpix_index(83.8, -5.4)[0]) != int(healpix_index(200.0, 40.0)[0])


def test_same_stamp_twice_is_stored_once(catalog):
    add_sources(catalog, [("a", 83.8, -5.4), ("b", 83.9, -5.4)])
    data = _bits((16, 16), 3)
    first = store_stamps(catalog, [StampRecord("a", "HST", data), StampRecord("a", "HST", data.copy())])
    assert len(first.added) == 1 and len(first.existing) == 1
    again = store_stamps(catalog, [StampRecord("a", "HST", data)])
    assert again.added == [] and again.shards == []
    # the same pixels for another source get a row but no second copy of the pixels
    other = store_stamps(catalog, [StampRecord("b", "HST", data)])
    assert len(other.added) == 1 and other.shards == []
    assert catalog.table_count("stamps") == 2
    assert len(list((catalog.path / "stamps").rglob("*.parquet"))) == 1
    assert load_stamp_arrays(catalog, other.added)[0].tobytes() == data.tobytes()


def test_failed_commit_leaves_no_rows_and_only_an_orphan(catalog, monkeypatch):
    import binarycat.catalog.arrays as arrays

    add_sources(catalog, [("a", 83.8, -5.4)])
    keep = store_stamps(catalog, [StampRecord("a", "PanSTARRS", _bits((8, 8), 9))])

    def boom(cat, rows):
        raise OSError("disk full")

    monkeypatch.setattr(arrays, "_commit_stamp_rows", boom)
    with pytest.raises(OSError):
        store_stamps(catalog, [StampRecord("a", "HST", _bits((8, 8), 4))])
    assert catalog.table_count("stamps") == 1
    assert len(orphan_shards(catalog)) == 1
    monkeypatch.undo()
    removed = remove_orphan_shards(catalog)
    assert len(removed) == 1 and orphan_shards(catalog) == []
    assert load_stamp_arrays(catalog, keep.added)[0].shape == (8, 8)


def test_kill_between_shard_write_and_commit_leaves_no_dangling_row(tmp_path):
    """A real crash: the process dies (SIGKILL-like os._exit) after the shard rename, before commit."""
    cat_dir = tmp_path / "cat"
    with Catalog(cat_dir) as cat:
        add_sources(cat, [("a", 83.8, -5.4)])
    script = textwrap.dedent(f"""
        import os, numpy as np
        import binarycat.catalog.arrays as arrays
        from binarycat.catalog.store import Catalog
        arrays._commit_stamp_rows = lambda cat, rows: os._exit(9)
        cat = Catalog({str(cat_dir)!r})
        arrays.store_stamps(cat, [arrays.StampRecord("a", "HST", np.arange(64, dtype=np.float32).reshape(8, 8))])
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 9, proc.stderr
    with Catalog(cat_dir) as cat:
        assert cat.table_count("stamps") == 0
        assert len(orphan_shards(cat)) == 1
        assert not any(p.name.startswith(".tmp-") for p in (cat_dir / "stamps").rglob("*"))
        res = store_stamps(cat, [StampRecord("a", "HST", np.arange(64, dtype=np.float32).reshape(8, 8))])
        assert len(res.added) == 1
        for (shard,) in cat.sql("select shard from stamps").fetchall():
            assert (cat_dir / shard).is_file()
        assert len(remove_orphan_shards(cat)) == 1
        assert load_stamp_arrays(cat, res.added)[0][7, 7] == 63


def test_stamp_must_be_2d():
    from binarycat.errors import BinarycatError

    with pytest.raises(BinarycatError, match="2-D"):
        StampRecord("a", "HST", np.zeros((2, 3, 4)))
