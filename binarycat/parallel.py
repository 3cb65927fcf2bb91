"""Spreading independent CPU work over processes: simulated stamps, FITS reads, baseline fits.

Each is a pure Python/numpy loop over items that do not talk to each other, so threads would
serialise on the GIL; `map_chunks` hands contiguous chunks of the items to a pool of
``spawn``-started processes (safe beside torch's threads, and the same on every platform) and
returns the results in the items' order, so the output does not depend on the number of workers;
`iter_chunks` yields them chunk by chunk, for output too large to hold at once.
Below `worker_count`'s minimum of items per worker it stays in this process: starting a worker
costs about a second of imports.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import TypeVar

__all__ = ["allowed_cores", "worker_count", "map_chunks", "iter_chunks"]

T = TypeVar("T")
R = TypeVar("R")


def allowed_cores() -> int:
    """Cores this process should use: ``OMP_NUM_THREADS`` if set, else every core it may run on.

    A batch scheduler (SLURM, PBS) or a parallel test run sets ``OMP_NUM_THREADS`` to the cores
    it gave this process; taking every core of a shared node instead would oversubscribe it.
    """
    requested = os.environ.get("OMP_NUM_THREADS", "").strip()
    if requested.isdigit() and int(requested) > 0:
        return int(requested)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def worker_count(requested: int | None, n_items: int, min_per_worker: int = 1) -> int:
    """How many processes to use for ``n_items`` items.

    Parameters
    ----------
    requested : int or None
        A number of workers; None or 0 means `allowed_cores`.
    n_items : int
        Items to process.
    min_per_worker : int
        Fewest items worth a process of their own.

    Returns
    -------
    int
        At least 1, at most ``requested`` and at most ``n_items // min_per_worker``.
    """
    if requested is not None and requested < 0:
        raise ValueError(f"The number of workers cannot be negative ({requested}).")
    wanted = requested or allowed_cores()
    return max(1, min(wanted, n_items // max(1, min_per_worker)))


def map_chunks(fn: Callable[[list[T]], list[R]], items: Sequence[T], workers: int,
               chunk_size: int | None = None, done: Callable[[list[R]], object] | None = None) -> list[R]:
    """``fn`` applied to consecutive chunks of ``items``, results concatenated in order.

    Parameters
    ----------
    fn : callable
        A module-level function (it is pickled by name) taking a list of items and returning
        one result per item.
    items : sequence
        Picklable items.
    workers : int
        Processes; 1 runs every chunk in this process.
    chunk_size : int, optional
        Items per chunk; by default about four chunks per worker, so a slow chunk does not
        leave the others idle.
    done : callable, optional
        Called with each chunk's results as they are collected, in order (for progress).

    Returns
    -------
    list
        ``fn(items[0:k]) + fn(items[k:2k]) + ...``.
    """
    out: list[R] = []
    for results in iter_chunks(fn, items, workers, chunk_size):
        out.extend(results)
        if done is not None:
            done(results)
    return out


def iter_chunks(fn: Callable[[list[T]], list[R]], items: Sequence[T], workers: int,
                chunk_size: int | None = None) -> Iterator[list[R]]:
    """Yield ``fn(chunk)`` for consecutive chunks of ``items``, in order, as each is ready.

    The streaming form of `map_chunks` (same arguments): the caller can store each chunk's
    results and let them go before the next arrives, so memory holds a few chunks, not the
    whole output. Workers run ahead of the caller by at most two chunks each.
    """
    items = list(items)
    if not items:
        return
    size = chunk_size or max(1, -(-len(items) // (4 * max(1, workers))))
    chunks = [items[i : i + size] for i in range(0, len(items), size)]
    if workers <= 1:
        for chunk in chunks:
            yield fn(chunk)
        return
    ahead = 2 * workers
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = deque(pool.submit(fn, chunk) for chunk in chunks[:ahead])
        pending = iter(chunks[ahead:])
        try:
            while futures:
                results = futures.popleft().result()
                nxt = next(pending, None)
                if nxt is not None:
                    futures.append(pool.submit(fn, nxt))
                yield results
        finally:
            for future in futures:
                future.cancel()
