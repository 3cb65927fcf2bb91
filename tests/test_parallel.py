"""Spreading work over processes: how many, in what order, and what happens to an error."""

import pytest

from binarycat.parallel import allowed_cores, iter_chunks, map_chunks, worker_count


def test_allowed_cores_follows_omp_num_threads(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert allowed_cores() == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "lots")
    assert allowed_cores() >= 1


@pytest.mark.parametrize("requested, n_items, per_worker, expected", [
    (4, 100, 1, 4),     # as asked
    (4, 3, 1, 3),       # never more workers than items
    (8, 100, 30, 3),    # nor fewer than per_worker items each
    (8, 10, 30, 1),     # too little work: stay in this process
    (1, 1000, 1, 1),
])
def test_worker_count(requested, n_items, per_worker, expected):
    assert worker_count(requested, n_items, per_worker) == expected


def test_worker_count_zero_means_every_allowed_core(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "5")
    assert worker_count(0, 100) == worker_count(None, 100) == 5
    with pytest.raises(ValueError, match="negative"):
        worker_count(-1, 100)


@pytest.mark.parametrize("workers", [1, 2])
def test_chunks_come_back_in_order(workers):
    seen = []
    # sorted() sorts within a chunk only, so the result shows the chunking and the order
    out = map_chunks(sorted, [5, 4, 3, 2, 1, 0, 9], workers, chunk_size=3, done=seen.append)
    assert out == [3, 4, 5, 0, 1, 2, 9]
    assert seen == [[3, 4, 5], [0, 1, 2], [9]]
    assert map_chunks(sorted, [], workers) == []


def test_an_error_in_a_worker_reaches_the_caller():
    with pytest.raises(TypeError):
        map_chunks(sorted, [1, "a", 2, 3], 2, chunk_size=2)


def test_more_chunks_than_the_workers_run_ahead_keep_their_order():
    items = list(range(23, 0, -1))  # 12 chunks of 2 against 2 workers, who run at most 4 chunks ahead
    expected = [x for i in range(0, len(items), 2) for x in sorted(items[i : i + 2])]
    assert map_chunks(sorted, items, 2, chunk_size=2) == expected
    assert [len(c) for c in iter_chunks(sorted, items, 2, chunk_size=2)] == [2] * 11 + [1]
