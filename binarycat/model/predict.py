"""Predicting with a trained stamp classifier and writing ``predictions`` rows.

`predict_stamps` streams the stamps through the model in batches of ``batch_size``:

1. **read + preprocess**: the shards a batch needs are decoded from the Parquet store
   (`binarycat.catalog.arrays.read_array_shard`, views into pyarrow's buffers) and turned into model inputs
   (`stamps_to_tensor`: one vectorised pass and one resampling call per stamp shape) by a
   pool of threads, one shard each;
2. **model**, on the calling thread, in ``torch.inference_mode``, channels-last: on CUDA
   under bf16 autocast, with the raw stamps copied through pinned memory and normalised on
   the GPU, and each batch's probabilities copied back while the next batch runs; on the
   CPU on every core (`configure_cpu`);
3. **write**: a transaction inserts the ``predictions`` rows of whole shards (one Arrow
   insert) and updates their flags (`update_binary_flags`) once `COMMIT_ROWS` predicted
   stamps or `COMMIT_SECONDS` have gathered, and at the end.

On CUDA (``prefetch``, the default there) reading runs a few batches ahead of the model in
a background thread and writing in another, so the GPU never waits for the CPU; the first
batch is short, to start the GPU early. On the CPU the model already keeps every core busy,
and a background reader or writer only takes cores from it (with OpenMP, a preempted
thread stalls its whole team at the next barrier): measured on 2 shared cores
(``benchmarks/bench_stamp_io.py --cpu-prefetch``), prediction was 4% slower with them under
``OMP_WAIT_POLICY=PASSIVE`` and 10-30% slower with OpenMP's default spinning. There the
batch's shards are read, with all cores, just before the batch runs, and commits happen in
line. Either way the network is built in a helper thread while the first shards are read.

Rows and flags are those of the shard-by-shard loop this replaced (``p_binary`` to float
rounding, since a batch may now span shards): an interrupted prediction keeps every
transaction it committed, and predicting again with the same model replaces its rows
(``insert or replace``), never duplicates them. Stamps of one shard always commit
together; shards committed together share a ``created_at``, so among several stamps of one
(source, survey) in one transaction the lowest stamp id becomes the flag, as
`binarycat.catalog.flags` describes.

``p_binary`` is ``softmax(logits / T)[:, 1]`` with ``T`` the checkpoint's ``"temperature"``
(temperature scaling; 1.0 when the checkpoint has none) and the logits averaged over the
checkpoint's ``"views"`` flips and rotations of each stamp (`binarycat.model.symmetry`;
1 when it names none).
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections import defaultdict, deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pyarrow as pa
import torch

from binarycat.catalog.arrays import read_array_shard
from binarycat.catalog.flags import update_binary_flags
from binarycat.catalog.store import Catalog
from binarycat.errors import BinarycatError
from binarycat.model.checkpoints import load_checkpoint
from binarycat.model.device import autocast, configure_cpu, cpu_threads, pick_device
from binarycat.model.networks import stamp_logits, survey_indices
from binarycat.model.preprocess import NORMALISATION, stamps_to_tensor
from binarycat.model.symmetry import view_averaged_logits, views_of
from binarycat.model.thresholds import FIXED_THRESHOLD, stamp_thresholds, threshold_table
from binarycat.model.train import MODEL_KIND

__all__ = [
    "PredictResult", "as_model_input", "latest_model_id", "load_model", "model_row", "predict_stamps",
    "prepare_model", "temperature_of",
]

PREFETCH_BATCHES = 4       # preprocessed batches waiting for the model
FIRST_BATCH = 32           # stamps in the first batch read in the background, to start early
PENDING_WRITES = 8         # commits asked for and not yet done
COMMIT_ROWS = 2048         # a commit when this many predicted stamps wait...
COMMIT_SECONDS = 5.0       # ...or this long after the last one
_PREDICTION_COLUMNS = "stamp_id, model_id, source_id, survey, p_binary, flag, threshold"


@dataclass
class PredictResult:
    model_id: str
    n_stamps: int
    n_binary: int
    seconds: float


def model_row(catalog: Catalog, model_id: str | None = None, *, kind: str = MODEL_KIND) -> dict:
    """The ``models`` row of ``model_id``, or of the newest model of ``kind``."""
    if model_id is None:
        row = catalog.sql(
            "select * from models where kind = ? order by created_at desc limit 1", [kind]
        ).fetchone()
        if row is None:
            command = "eb train" if kind != MODEL_KIND else "train"
            raise BinarycatError(f"No trained model in the catalogue; run `binarycat {command}` first.")
    else:
        row = catalog.sql("select * from models where model_id = ?", [model_id]).fetchone()
        if row is None:
            raise BinarycatError(f"No model {model_id!r} in the catalogue.")
    cols = [d[0] for d in catalog.con.description]
    out = dict(zip(cols, row))
    for key in ("params", "metrics"):
        if isinstance(out.get(key), str):
            out[key] = json.loads(out[key])
    return out


def latest_model_id(catalog: Catalog) -> str:
    return model_row(catalog)["model_id"]


def temperature_of(config: dict) -> float:
    """The softmax temperature a checkpoint's config asks for (1.0 when it names none)."""
    t = config.get("temperature", 1.0)
    t = 1.0 if t is None else float(t)
    if not np.isfinite(t) or t <= 0:
        raise BinarycatError(f"The model's temperature must be a positive number, got {t!r}.")
    return t


def _views(config: dict) -> int:
    try:
        return views_of(config)
    except ValueError as exc:
        raise BinarycatError(f"The model's config is unusable: {exc}") from None


def prepare_model(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """The model as prediction runs it: eval mode, on ``device``, channels-last.

    Channels-last suits cuDNN's tensor-core kernels on CUDA and oneDNN's on the CPU (about
    20% faster for ResNet34 on 64-pixel stamps on a 2-core x86 machine).
    """
    return model.to(device).eval().to(memory_format=torch.channels_last)


def load_model(path: Path, device: torch.device, *,
               schema_version: int | None = None) -> tuple[torch.nn.Module, dict]:
    """`load_checkpoint` for prediction: (`prepare_model`'s model, config), loaded faster.

    `load_checkpoint` itself, with all its checks (``schema_version`` included), builds the
    network on the meta device (its architecture, no weights); the network is then handed
    the memory-mapped checkpoint's tensors, already channels-last, instead of initialising
    weights that are overwritten at once and converting them after (half a second for
    ResNet34 on a CPU). Anything unusual falls back to `load_checkpoint` on ``device``.
    """
    opened = _open_checkpoint(path, device, schema_version)
    return _network(opened, path, device, schema_version), opened[2]


def _open_checkpoint(path: Path, device: torch.device, schema_version: int | None):
    """(the network on the meta device or None, the checkpoint's tensors or None, config).

    Raises `load_checkpoint`'s errors (missing or unreadable file, another schema version,
    unknown architecture, weights that do not fit).
    """
    try:
        with torch.device("meta"):
            meta, config = load_checkpoint(path, "meta", schema_version=schema_version)
    except BinarycatError:
        raise
    except Exception:  # an architecture that cannot be built without memory: the slow way
        model, config = load_checkpoint(path, device, schema_version=schema_version)
        return model, None, config
    try:
        state = torch.load(path, map_location=device, weights_only=True, mmap=True)["state_dict"]
    except Exception:
        state = None
    return meta, state, config


def _network(opened, path: Path, device: torch.device, schema_version: int | None) -> torch.nn.Module:
    model, state, _ = opened
    if state is None and not any(t.is_meta for t in (*model.parameters(), *model.buffers())):
        return prepare_model(model, device)
    try:
        model.load_state_dict({k: v.contiguous(memory_format=torch.channels_last) if v.dim() == 4 else v
                               for k, v in state.items()}, assign=True)
        if any(t.is_meta for t in (*model.parameters(), *model.buffers())):
            raise ValueError("not every tensor is in the checkpoint")
    except Exception:
        model, _ = load_checkpoint(path, device, schema_version=schema_version)
    return prepare_model(model, device)


def as_model_input(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A batch on ``device`` in the channels-last layout `prepare_model` uses."""
    return x.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)


# --- the stream ------------------------------------------------------------------------------


@dataclass
class _Batch:
    x: torch.Tensor                                     # (B, 1, S, S) on the device
    shards: list[tuple[str, list[tuple]]] = field(default_factory=list)  # shards ending in it
    survey: torch.Tensor | None = None                  # (B,) survey indices, conditioned models only


def _conditioning(config: dict) -> list[str] | None:
    """The surveys a checkpoint's network is conditioned on (`binarycat.model.networks`), or None."""
    surveys = config.get("arch_kwargs", {}).get("surveys")
    return list(surveys) if surveys else None


def _shard_inputs(catalog: Catalog, shard: str, rows: list[tuple], config: dict,
                  device: torch.device) -> torch.Tensor:
    arrays = read_array_shard(catalog.resolve(shard), [r[4] for r in rows], use_threads=False)
    return stamps_to_tensor(arrays, config["input_size"], [r[5] for r in rows],
                            config.get("input_scale_arcsec"), device=device,
                            normalisation=config.get("normalisation", NORMALISATION))


def _batches(catalog: Catalog, by_shard: dict[str, list[tuple]], config: dict, batch_size: int,
             device: torch.device, first_batch: int | None = None,
             pool: ThreadPoolExecutor | None = None) -> Iterator[_Batch]:
    """Batches of model inputs, shard after shard, each naming the shards it completes.

    Batches are full but for the last, and the first when ``first_batch`` makes it smaller
    (for a model waiting on a background reader, to start it after a shard or two). The
    shards a batch needs are read and preprocessed together, by ``pool``'s threads if given,
    and only when the batch is asked for. For a survey-conditioned model each batch also
    carries its stamps' survey indices.
    """
    known = _conditioning(config)
    todo = list(by_shard.items())
    parts: list[torch.Tensor] = []
    surveys: list[torch.Tensor] = []
    n_parts = 0
    ending: deque[tuple[int, str, list[tuple]]] = deque()   # (row count at its end, shard, rows)
    emitted = total = 0
    size = min(batch_size, first_batch or batch_size)
    i = 0
    while i < len(todo):
        j, need = i, size - n_parts
        while j < len(todo) and need > 0:     # the shards that complete the next batch
            need -= len(todo[j][1])
            j += 1
        group, i = todo[i:j], j
        work = (lambda item: _shard_inputs(catalog, item[0], item[1], config, device))
        for (shard, rows), x in zip(group, (pool.map if pool is not None else map)(work, group)):
            parts.append(x)
            if known is not None:
                surveys.append(survey_indices(known, [r[2] for r in rows]))
            n_parts += len(x)
            total += len(x)
            ending.append((total, shard, rows))
        while n_parts >= size:
            flat = torch.cat(parts) if len(parts) > 1 else parts[0]
            flat_survey = torch.cat(surveys) if known is not None else None
            emitted += size
            done = []
            while ending and ending[0][0] <= emitted:
                done.append(ending.popleft()[1:])
            yield _Batch(flat[:size], done, flat_survey[:size] if known is not None else None)
            rest = flat[size:]
            parts, n_parts = ([rest] if len(rest) else []), len(rest)
            surveys = [flat_survey[size:]] if known is not None and len(rest) else []
            size = batch_size
    if n_parts:
        yield _Batch(torch.cat(parts) if len(parts) > 1 else parts[0], [e[1:] for e in ending],
                     torch.cat(surveys) if known is not None else None)


_END = object()


class _Prefetch:
    """Iterate ``make()``: in a daemon thread ``depth`` items ahead (``background``), or in line."""

    def __init__(self, make: Callable[[], Iterator], depth: int, *, background: bool = True):
        self._make = make
        self._thread = None
        if not background:
            return
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="binarycat-predict-read", daemon=True)
        self._thread.start()

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            for item in self._make():
                if not self._put((True, item)):
                    return
            self._put((True, _END))
        except BaseException as exc:  # handed to the consumer
            self._put((False, exc))

    def __iter__(self):
        if self._thread is None:
            yield from self._make()
            return
        while True:
            ok, item = self._queue.get()
            if not ok:
                raise item
            if item is _END:
                return
            yield item

    def close(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()


def _one_torch_thread() -> None:
    """Preprocessing threads run their torch ops (resampling, copies) on their own core.

    With OpenMP every calling thread brings a team of ``torch.get_num_threads()``; several
    such teams on the same cores preempt each other at every barrier. The setting is this
    thread's, but torch also keeps it as the default of threads that start later, so
    `predict_stamps` puts that back when done; a thread that already ran torch ops (the
    caller's, which the model runs on) keeps its own.
    """
    torch.set_num_threads(1)


def _write_predictions(catalog: Catalog, model_id: str, rows: list[tuple], p: np.ndarray,
                       threshold: np.ndarray) -> tuple[int, int]:
    """``predictions`` rows and their flags in one transaction: (rows written, flagged).

    ``threshold`` holds each row's decision threshold.
    """
    p64 = np.asarray(p, dtype=np.float64)
    threshold = np.asarray(threshold, dtype=np.float64)
    flag = p64 >= threshold
    n = len(rows)
    table = pa.table({
        "stamp_id": pa.array([r[0] for r in rows], pa.string()),
        "model_id": pa.array([model_id] * n, pa.string()),
        "source_id": pa.array([r[1] for r in rows], pa.string()),
        "survey": pa.array([r[2] for r in rows], pa.string()),
        "p_binary": pa.array(p64, pa.float64()),
        "flag": pa.array(flag, pa.bool_()),
        "threshold": pa.array(threshold, pa.float64()),
    })
    with catalog.transaction() as con:
        con.register("_binarycat_new_predictions", table)
        try:
            con.execute(f"insert or replace into predictions ({_PREDICTION_COLUMNS}) "
                        f"select {_PREDICTION_COLUMNS} from _binarycat_new_predictions")
        finally:
            con.unregister("_binarycat_new_predictions")
        update_binary_flags(con, model_id, [r[0] for r in rows])
    return n, int(flag.sum())


class _Writer:
    """Commits predicted shards, in order, in a background thread (``background``) or in line.

    Shards wait until `COMMIT_ROWS` stamps or `COMMIT_SECONDS` have gathered since the last
    commit; then one transaction writes every shard waiting (a writer thread that falls
    behind the model so writes bigger transactions, never a queue of small ones). A shard is
    never split between two transactions.
    """

    def __init__(self, catalog: Catalog, model_id: str, thresholds: Callable[[list[str]], np.ndarray],
                 total: int, progress: Callable[[int, int], None] | None, *, background: bool):
        self._args = (catalog, model_id)
        self._thresholds = thresholds
        self._pool = (ThreadPoolExecutor(max_workers=1, thread_name_prefix="binarycat-predict-write")
                      if background else None)
        self._lock = threading.Lock()
        self._waiting: list[tuple[list[tuple], np.ndarray]] = []
        self._n_waiting = 0
        self._last = time.perf_counter()
        self._futures: deque[Future] = deque()
        self._total, self._progress = total, progress
        self.done = self.n_binary = 0

    def add(self, rows: list[tuple], p: np.ndarray) -> None:
        with self._lock:
            self._waiting.append((rows, p))
            self._n_waiting += len(rows)
            due = self._n_waiting >= COMMIT_ROWS or time.perf_counter() - self._last >= COMMIT_SECONDS
        if due:
            self._request()
        self.collect(block=False)

    def flush(self) -> None:
        """Commit whatever waits and wait for every commit."""
        if self._waiting:
            self._request()
        self.collect(block=True)

    def _request(self) -> None:
        self._last = time.perf_counter()
        if self._pool is not None:
            self._futures.append(self._pool.submit(self._commit))
        else:
            done: Future = Future()
            done.set_result(self._commit())
            self._futures.append(done)

    def _commit(self) -> tuple[int, int]:
        with self._lock:
            items, self._waiting, self._n_waiting = self._waiting, [], 0
        if not items:
            return 0, 0
        rows = [r for rs, _ in items for r in rs]
        p = np.concatenate([pi for _, pi in items])
        return _write_predictions(*self._args, rows, p, self._thresholds([r[2] for r in rows]))

    def collect(self, block: bool) -> None:
        """Account for finished commits (raising their errors); with ``block``, wait for all."""
        while self._futures and (block or self._futures[0].done() or len(self._futures) > PENDING_WRITES):
            n, b = self._futures.popleft().result()
            if n:
                self.done += n
                self.n_binary += b
                if self._progress:
                    self._progress(self.done, self._total)

    def close(self) -> None:
        """Wait for the commit under way; drop the rest (after an error or an interrupt)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)


def predict_stamps(
    catalog: Catalog,
    model_id: str | None = None,
    surveys: list[str] | None = None,
    *,
    threshold: float | None = None,
    batch_size: int = 256,
    device: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    prefetch: bool | None = None,
) -> PredictResult:
    """Predict every stored stamp of ``surveys`` (default: the model's) and store the results.

    Stamps stream from the Parquet store through the model (see the module docstring);
    ``p_binary`` is the softmax probability of the binary class at the model's temperature
    and ``flag`` is ``p_binary >= threshold``: the given one for every stamp, or by default
    the model's decision threshold of the stamp's survey (`binarycat.model.thresholds`, fitted
    on its validation split; the model's fixed threshold, 0.5, for a survey or a model without
    one). Each row keeps the threshold it was flagged with. Whole shards commit
    together with their flags (`COMMIT_ROWS` stamps or `COMMIT_SECONDS` a transaction);
    ``progress(done, total)`` is called after each commit. Predicting again with the same
    model replaces its earlier rows.

    ``prefetch``: read and write in background threads (default: on CUDA only; on a CPU
    that torch already keeps busy on every core, see the module docstring).
    """
    t0 = time.perf_counter()
    if batch_size < 1:
        raise BinarycatError("batch_size must be at least 1.")
    row = model_row(catalog, model_id)
    model_id = row["model_id"]
    dev = pick_device(device)
    if dev.type == "cpu":
        configure_cpu()
    checkpoint = catalog.resolve(row["checkpoint"])
    opened = _open_checkpoint(checkpoint, dev, catalog.schema_version)
    config = opened[2]
    temperature = temperature_of(config)
    views = _views(config)
    layout = (lambda v: v.contiguous(memory_format=torch.channels_last)) if dev.type == "cuda" else None
    if threshold is None:
        table = threshold_table((row["metrics"] or {}).get("thresholds"))
        default = float(config.get("threshold", FIXED_THRESHOLD))
    else:
        table, default = {}, float(threshold)
    surveys = surveys or list(row["surveys"])
    survey_indices(_conditioning(config), surveys)   # a survey the model cannot classify fails here
    stamps = catalog.sql(
        "select stamp_id, source_id, survey, shard, shard_row, pixel_scale_arcsec from stamps "
        "where survey in (select unnest(?)) order by shard, shard_row",
        [surveys],
    ).fetchall()
    by_shard: dict[str, list[tuple]] = defaultdict(list)
    for r in stamps:
        by_shard[r[3]].append(r)

    probs: deque[np.ndarray] = deque()              # probabilities not yet handed to the writer
    inflight: deque[tuple[torch.Tensor, object, list]] = deque()   # batches not yet on the host

    def take(n: int) -> np.ndarray:
        out = []
        while n:
            head = probs.popleft()
            if len(head) > n:
                head, rest = head[:n], head[n:]
                probs.appendleft(rest)
            out.append(head)
            n -= len(head)
        return np.concatenate(out) if len(out) != 1 else out[0]

    def finish(writer: _Writer) -> None:
        p, event, shards = inflight.popleft()
        if event is not None:
            event.synchronize()
        probs.append(p.numpy())
        if shards:
            rows = [r for _, rs in shards for r in rs]
            writer.add(rows, take(len(rows)))

    background = dev.type != "cpu" if prefetch is None else bool(prefetch)
    first = FIRST_BATCH if background else None
    threads = torch.get_num_threads()      # (also settles this thread's torch thread count)
    workers = ThreadPoolExecutor(max_workers=cpu_threads() if dev.type == "cpu" else min(8, cpu_threads()),
                                 thread_name_prefix="binarycat-predict-prep", initializer=_one_torch_thread)
    reader = _Prefetch(lambda: _batches(catalog, by_shard, config, batch_size, dev, first, workers),
                       PREFETCH_BATCHES, background=background)
    writer = _Writer(catalog, model_id, lambda names: stamp_thresholds(table, names, default), len(stamps),
                     progress, background=background)
    builder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="binarycat-predict-model")
    try:
        # the network is built while the first shards are read
        pending_model = builder.submit(_network, opened, checkpoint, dev, catalog.schema_version)
        del opened
        model = None
        with torch.inference_mode():
            for batch in reader:
                if model is None:
                    model = pending_model.result()
                with autocast(dev):
                    logits = view_averaged_logits(partial(stamp_logits, model, survey=batch.survey),
                                                  as_model_input(batch.x, dev), views, layout)
                # in float64, like binarycat.model.calibration.probabilities
                p = torch.softmax(logits.double() / temperature, dim=1)[:, 1]
                if dev.type == "cuda":   # copied back while the next batch runs
                    host = torch.empty(p.shape, dtype=p.dtype, pin_memory=True)
                    host.copy_(p, non_blocking=True)
                    event = torch.cuda.Event()
                    event.record()
                    inflight.append((host, event, batch.shards))
                else:
                    inflight.append((p, None, batch.shards))
                while len(inflight) > (1 if dev.type == "cuda" else 0):
                    finish(writer)
            while inflight:
                finish(writer)
        if model is None:          # no stamps: still report a checkpoint that cannot be used
            pending_model.result()
        writer.flush()
    finally:
        reader.close()
        builder.shutdown(wait=True)
        workers.shutdown(wait=True, cancel_futures=True)
        writer.close()
        torch.set_num_threads(threads)     # the process-wide default, see _one_torch_thread
    return PredictResult(model_id, writer.done, writer.n_binary, time.perf_counter() - t0)
