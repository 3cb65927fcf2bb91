"""Stamp I/O and prediction speed: Parquet store vs one FITS per stamp; predict vs bare model.

Reads every stamp of a catalogue from the Parquet store and from one FITS file per stamp,
and times end-to-end `predict_stamps` against the bare forward of the same model.

Builds a simulated catalogue (``--n-sources`` sources x PanSTARRS, SDSS9, HST by default:
`simulate_sky`, then `ingest_fits`, which stacks each source's per-filter FITS files into one
stamp) or takes an existing one (``--catalog DIR``), and also writes **one FITS file per
stacked stamp** (``astropy.io.fits.writeto`` of the stored array), the seed notebook's way of
keeping stamps. Then, in one run on one machine, with the OS page cache warm for both:

(a) **reading every stamp into a torch tensor**, stamps/s, in interleaved rounds:

    - ``FITS getdata`` / ``FITS open``: for each stamp, ``astropy.io.fits.getdata`` of its file
      (or ``fits.open`` without memory map and the primary HDU's data), converted to a
      native-endian float32 array (the one copy: a byte swap) and ``torch.from_numpy``;
    - ``Parquet``: the ``stamps`` table queried with DuckDB for (shard, row), each shard
      decoded once with pyarrow (`read_array_shard`, one copy of the decoded pixels), each
      stamp a tensor view: on one thread, and with one thread per core (shards in parallel,
      as `predict_stamps` reads them);

    *raw*, no preprocessing, checked against the target Parquet / FITS >= 5x (per round,
    against the faster of the two FITS readers; median over rounds); then *with
    preprocessing*: both paths put what they read through the same `stamps_to_tensor`;

(b) **prediction**, stamps/s: `predict_stamps` end to end (model loading, stamp query,
    Parquet reads, preprocessing, forward, softmax, the ``predictions`` and flag writes) on
    every stamp, against the bare forward of the same model (`load_model`: eval,
    channels-last; ``inference_mode``; bf16 autocast on CUDA) on random tensors already on
    the device, in the same batches (``--batch-size``, same number of stamps), same device,
    same torch threads. Rounds alternate which runs first (ABBA); the ratio is the median
    of the rounds' ratios. Target: >= 0.9. ``--cpu-prefetch`` also times
    ``predict_stamps(prefetch=True)`` (background reader and writer threads) on the CPU.
    ``--views 8`` times a model that averages eight flipped and rotated views of each
    stamp (`binarycat.model.symmetry`, the default of trained models) against the same
    eight forwards bare.

The model is an untrained ResNet34 saved with `save_checkpoint` and recorded in ``models``
like a trained one (throughput does not depend on the weights). Every round's seconds are
printed: on a shared machine the load drifts, and the medians are what to compare.

``OMP_WAIT_POLICY`` is set to ``PASSIVE`` unless the environment sets it (run with
``OMP_WAIT_POLICY=ACTIVE`` for the other way). With OpenMP's default spinning, on a CPU shared
with another busy process, the back-to-back bare forward ran up to 1.7x slower here than the
same forward inside `predict_stamps` (whose pauses between batches, and probably its extra
threads, which make libgomp throttle its spinning, hide the effect), so the ratio flattered
prediction; with passive waiting both forwards took the same time.

Run:  python benchmarks/bench_stamp_io.py [--n-sources 400] [--device cpu|cuda]
      [--input-size 64] [--also-128] [--catalog DIR] [--workdir DIR] [--repeats 5]
      [--io-repeats 9] [--parts ab] [--cpu-prefetch]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")   # before torch loads OpenMP (see the docstring)

import numpy as np  # noqa: E402
import torch  # noqa: E402
from astropy.io import fits  # noqa: E402

from binarycat.catalog.sources import import_sources  # noqa: E402
from binarycat.catalog.store import Catalog  # noqa: E402
from binarycat.ingest.simulate import simulate_sky  # noqa: E402
from binarycat.ingest.stamps import ingest_fits  # noqa: E402
from binarycat.model.checkpoints import save_checkpoint  # noqa: E402
from binarycat.model.device import autocast, configure_cpu, pick_device  # noqa: E402
from binarycat.model.networks import build  # noqa: E402
from binarycat.catalog.arrays import read_array_shard  # noqa: E402
from binarycat.model.predict import as_model_input, load_model, predict_stamps  # noqa: E402
from binarycat.model.symmetry import view_averaged_logits  # noqa: E402
from binarycat.model.preprocess import DEFAULT_INPUT_SCALE_ARCSEC, GEOMETRY, NORMALISATION, stamps_to_tensor  # noqa: E402
from binarycat.pipeline import init_catalog  # noqa: E402

SURVEYS = ["PanSTARRS", "SDSS9", "HST"]
TARGET_IO, TARGET_PREDICT = 5.0, 0.9


def build_catalog(root: Path, n_sources: int, surveys: list[str], seed: int) -> Catalog:
    t = time.perf_counter()
    sim = simulate_sky(root / "sim", n_sources=n_sources, surveys=surveys, seed=seed)
    cat = init_catalog(root / "catalog")
    import_sources(cat, sim.sources_csv)
    for s in surveys:
        ingest_fits(cat, [root / "sim" / s], s)
    print(f"simulated and ingested {sim.n_files} FITS files of {n_sources} sources in "
          f"{time.perf_counter() - t:.0f}s")
    return cat


def stamp_rows(cat: Catalog):
    return cat.sql("select stamp_id, shard, shard_row, pixel_scale_arcsec from stamps "
                   "order by shard, shard_row").fetchall()


def write_fits_per_stamp(cat: Catalog, rows, out: Path) -> list[Path]:
    """One FITS file per stacked stamp, as the seed notebook kept them."""
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for arr, (sid, *_rest) in zip(read_parquet(cat)[0], rows):
        p = out / f"{sid}.fits"
        if not p.exists():
            fits.writeto(p, np.asarray(arr, np.float32))
        paths.append(p)
    return paths


def read_fits(paths) -> list[torch.Tensor]:
    """``fits.getdata`` of each file, as a native float32 tensor."""
    return [torch.from_numpy(np.asarray(fits.getdata(p), dtype=np.float32)) for p in paths]


def read_fits_open(paths) -> list[torch.Tensor]:
    """``fits.open`` (no memory map) of each file, the primary HDU as a native float32 tensor."""
    out = []
    for p in paths:
        with fits.open(p, memmap=False) as hdul:
            out.append(torch.from_numpy(np.asarray(hdul[0].data, dtype=np.float32)))
    return out


def read_parquet(cat: Catalog, pool: ThreadPoolExecutor | None = None) -> tuple[list[torch.Tensor], list]:
    """Stamp rows from DuckDB, then each shard decoded once (by ``pool``'s threads if given)
    into writable arrays, as torch tensors, in the rows' order."""
    rows = stamp_rows(cat)
    by_shard = defaultdict(list)
    for r in rows:
        by_shard[r[1]].append(r[2])

    def read(item):
        shard, shard_rows = item
        return read_array_shard(cat.resolve(shard), shard_rows, use_threads=False, copy=True)

    out = []
    for arrays in (pool.map if pool is not None else map)(read, by_shard.items()):
        out.extend(torch.from_numpy(a) for a in arrays)
    return out, rows


def register_untrained(cat: Catalog, input_size: int, surveys: list[str], views: int = 1) -> str:
    """An untrained ResNet34 saved and recorded like a trained model."""
    model_id = f"bench-resnet34-untrained-{input_size}-views{views}"
    torch.manual_seed(0)
    config = {"arch": "resnet34", "input_size": input_size, "input_scale_arcsec": DEFAULT_INPUT_SCALE_ARCSEC,
              "threshold": 0.5, "temperature": 1.0, "normalisation": NORMALISATION, "geometry": GEOMETRY,
              "surveys": surveys, "views": views}
    checkpoint = f"models/{model_id}.pt"
    save_checkpoint(cat.resolve(checkpoint), build("resnet34", in_channels=1, num_classes=2), config)
    with cat.transaction() as con:
        con.execute("insert or replace into models (model_id, kind, surveys, params, split_seed, metrics, "
                    "checkpoint) values (?, 'stamp_classifier', ?, ?, 0, '{}', ?)",
                    [model_id, surveys, json.dumps(config), checkpoint])
    return model_id


def bare_forward(model, n: int, input_size: int, batch_size: int, dev: torch.device, views: int = 1) -> float:
    """Seconds for the model alone on ``n`` random stamps already on the device, in batches
    (each averaged over ``views`` flipped and rotated copies, as the model predicts)."""
    batches = [as_model_input(torch.rand(min(batch_size, n - i), 1, input_size, input_size), dev)
               for i in range(0, n, batch_size)]
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    layout = (lambda v: as_model_input(v, dev)) if dev.type == "cuda" else None
    sync()
    t = time.perf_counter()
    with torch.inference_mode():
        for xb in batches:
            with autocast(dev):
                view_averaged_logits(model, xb, views, layout).float()
    sync()
    return time.perf_counter() - t


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-sources", type=int, default=400)
    ap.add_argument("--surveys", default=",".join(SURVEYS))
    ap.add_argument("--catalog", type=Path, help="use this catalogue (its stamps) instead of simulating one; "
                    "it gains the benchmark's untrained models and their predictions")
    ap.add_argument("--workdir", type=Path, help="where to put the simulated catalogue and FITS files "
                    "[default: a temporary directory]")
    ap.add_argument("--device", choices=["cpu", "cuda"], help="[default: cuda when present]")
    ap.add_argument("--input-size", type=int, default=64)
    ap.add_argument("--also-128", action="store_true", help="also time prediction at input size 128")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--views", type=int, choices=[1, 8], default=1, help="prediction views per stamp, "
                    "end to end and bare alike (binarycat.model.symmetry) [default: 1]")
    ap.add_argument("--repeats", type=int, default=5, help="rounds of (b)")
    ap.add_argument("--io-repeats", type=int, default=9, help="rounds of (a)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--parts", default="ab", help="a: reading, b: prediction [default: both]")
    ap.add_argument("--cpu-prefetch", action="store_true",
                    help="on the CPU, also time predict_stamps(prefetch=True)")
    args = ap.parse_args(argv)
    surveys = args.surveys.split(",")

    tmp = tempfile.TemporaryDirectory(prefix="bench-stamp-io-") if args.workdir is None else None
    work = Path(tmp.name) if tmp else args.workdir
    work.mkdir(parents=True, exist_ok=True)
    cat = Catalog(args.catalog) if args.catalog else build_catalog(work, args.n_sources, surveys, args.seed)
    dev = pick_device(args.device)
    if dev.type == "cpu":
        configure_cpu()
    rows = stamp_rows(cat)
    n = len(rows)
    shapes = cat.sql("select survey, height, width, count(*) from stamps group by all order by 1").fetchall()
    n_shards = len({r[1] for r in rows})
    fits_paths = write_fits_per_stamp(cat, rows, work / "fits-per-stamp")
    mb_fits = sum(p.stat().st_size for p in fits_paths) / 1e6
    mb_parquet = sum(cat.resolve(s).stat().st_size for s in {r[1] for r in rows}) / 1e6
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count()
    print(f"command: {' '.join(sys.argv)}")
    print(f"{n} stamps ({', '.join(f'{s} {c} x {h}x{w}' for s, h, w, c in shapes)}) in {n_shards} Parquet "
          f"shards ({mb_parquet:.1f} MB) / {n} FITS files ({mb_fits:.1f} MB)")
    print(f"device {dev}{' (' + torch.cuda.get_device_name(dev) + ')' if dev.type == 'cuda' else ''}; "
          f"{cores} CPU cores, torch {torch.__version__} with {torch.get_num_threads()} threads, "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')}; load average {os.getloadavg()[0]:.1f}")

    if "a" in args.parts:
        measure_io(args, cat, rows, fits_paths, cores)
    if "b" in args.parts:
        measure_predict(args, cat, surveys, dev, n)
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    cat.close()
    if tmp:
        tmp.cleanup()


def measure_io(args, cat: Catalog, rows, fits_paths, cores: int) -> None:
    """(a): FITS per stamp against the Parquet store, raw and with preprocessing."""
    n = len(rows)
    fits_t, parquet_t = read_fits(fits_paths), read_parquet(cat)[0]          # warm-up + check
    assert all(torch.equal(a, b) for a, b in zip(fits_t, parquet_t)), "FITS and Parquet arrays differ"
    assert all(torch.equal(a, b) for a, b in zip(read_fits_open(fits_paths), parquet_t))
    scales = [r[3] for r in rows]
    io = defaultdict(list)
    pool = ThreadPoolExecutor(max_workers=cores)
    par = f"Parquet ({cores} threads)"
    for _ in range(args.io_repeats):                    # interleaved: load drifts hit all alike
        io["FITS getdata"].append(timed(lambda: read_fits(fits_paths))[1])
        io["FITS open"].append(timed(lambda: read_fits_open(fits_paths))[1])
        io["Parquet (1 thread)"].append(timed(lambda: read_parquet(cat))[1])
        io[par].append(timed(lambda: read_parquet(cat, pool))[1])
        io["FITS getdata + preprocess"].append(timed(lambda: stamps_to_tensor(
            [t.numpy() for t in read_fits(fits_paths)], args.input_size, scales))[1])
        io["Parquet + preprocess"].append(timed(lambda: stamps_to_tensor(
            [t.numpy() for t in read_parquet(cat, pool)[0]], args.input_size, scales))[1])
    pool.shutdown()
    rate = {k: n / statistics.median(v) for k, v in io.items()}
    # per round, against the faster FITS reader of the round
    fits_raw = [min(a, b) for a, b in zip(io["FITS getdata"], io["FITS open"])]
    ratio = {k: statistics.median(f / p for f, p in zip(fits_raw, io[k])) for k in ("Parquet (1 thread)", par)}
    ratio_pre = statistics.median(f / p for f, p in zip(io["FITS getdata + preprocess"], io["Parquet + preprocess"]))
    print()
    print(f"(a) stamps into tensors, median of {args.io_repeats} interleaved rounds   stamps/s")
    for k in io:
        print(f"  {k:<44} {rate[k]:9.0f}")
    for k, r in ratio.items():
        print(f"  {k + ' / FITS, raw:':<44} {r:6.1f}x   target >= {TARGET_IO:.0f}x: "
              f"{'met' if r >= TARGET_IO else 'NOT met'}")
    print(f"  {'Parquet / FITS getdata, with preprocessing:':<44} {ratio_pre:6.1f}x")


def measure_predict(args, cat: Catalog, surveys: list[str], dev: torch.device, n: int) -> None:
    """(b): `predict_stamps` end to end against the bare forward, rounds in ABBA order."""
    pred = {}
    for size in [args.input_size] + ([128] if args.also_128 and args.input_size != 128 else []):
        model_id = register_untrained(cat, size, surveys, args.views)
        model = load_model(cat.resolve(f"models/{model_id}.pt"), dev)[0]
        predict_stamps(cat, model_id, surveys, device=str(dev), batch_size=args.batch_size)   # warm-up
        bare_forward(model, n, size, args.batch_size, dev, args.views)
        t_pred, t_bare, t_pre = [], [], []

        def run_predict(out=t_pred, prefetch=None):
            res, s = timed(lambda: predict_stamps(cat, model_id, surveys, device=str(dev),
                                                  batch_size=args.batch_size, prefetch=prefetch))
            assert res.n_stamps == n
            out.append(s)

        def run_bare():
            t_bare.append(bare_forward(model, n, size, args.batch_size, dev, args.views))

        runs = [run_predict, run_bare]
        if args.cpu_prefetch and dev.type == "cpu":
            runs.append(lambda: run_predict(t_pre, True))
        for i in range(args.repeats):      # ABBA: a slow drift of the load favours none
            for run in (runs if i % 2 == 0 else runs[::-1]):
                run()
        assert cat.sql("select count(*) from predictions where model_id = ?", [model_id]).fetchone()[0] == n
        pred[size] = (n / statistics.median(t_pred), n / statistics.median(t_bare),
                      statistics.median(b / p for p, b in zip(t_pred, t_bare)), t_pred, t_bare, t_pre)

    print()
    print(f"(b) prediction on {dev}, batch {args.batch_size}, {torch.get_num_threads()} torch threads, "
          f"{args.views} view(s) per stamp, median of {args.repeats} interleaved rounds   stamps/s")
    for size, (p, b, r, t_pred, t_bare, t_pre) in pred.items():
        print(f"  {f'predict_stamps end to end, {size} px':<44} {p:9.1f}")
        print(f"  {f'bare model forward, {size} px':<44} {b:9.1f}")
        print(f"  {f'predict / bare forward, {size} px:':<44} {r:6.2f}    target >= {TARGET_PREDICT}: "
              f"{'met' if r >= TARGET_PREDICT else 'NOT met'}")
        if t_pre:
            r_pre = statistics.median(b / q for q, b in zip(t_pre, t_bare))
            print(f"  {f'predict_stamps(prefetch=True), {size} px':<44} {n / statistics.median(t_pre):9.1f}"
                  f"   ({r_pre:.2f} of bare)")
        print(f"    seconds per round: predict {' '.join(f'{t:.2f}' for t in t_pred)}; "
              f"bare {' '.join(f'{t:.2f}' for t in t_bare)}"
              + (f"; prefetch {' '.join(f'{t:.2f}' for t in t_pre)}" if t_pre else ""))


if __name__ == "__main__":
    main()
