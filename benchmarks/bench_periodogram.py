"""GLS periodogram speed on CALNet's 1,000 periods: fast paths against the per-period loop.

Simulates ``--n`` TESS-like light curves (``--points`` points at 2-min cadence with a 1-d
mid-sector gap, an eclipsing binary of random period and depth, white noise with unequal
errors) and times, in one run on one machine, the GLS power of each on ``CALNET_PERIODS``:

- ``loop``: one period at a time in Python, like the CALNet reference (the reference here);
- ``direct``: the ZK09 sums vectorised over chunks of periods (numpy; the accuracy reference);
- ``finufft``: one type-3 NUFFT per time block (`gls_power` on CPU);
- ``torch cpu`` / ``torch cuda``: the batched direct sums in torch (``--batch`` curves a call),
  CUDA only where present.

For each it prints seconds per curve, light curves per second, the speed-up over the loop
(target >= 30x for finufft) and the errors against ``direct``: max |p - direct| / max(direct)
and the max relative error where direct >= 1e-6. It also times `preprocess_lightcurve` on
simulated raw sectors (19,584 cadences with flagged points, the gap, spikes).

OpenBLAS is held to one thread (``OPENBLAS_NUM_THREADS=1`` unless set): the loop's
18,864-element dot products gain nothing from threads, and on a loaded machine OpenBLAS
threads spin against each other and make the loop 10-20x slower, which would flatter the
speed-up. Torch keeps its own thread pool.

Run:  python benchmarks/bench_periodogram.py [--n 20] [--points 18864] [--batch 8]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")   # before numpy loads OpenBLAS

import numpy as np  # noqa: E402
import torch  # noqa: E402

from binarycat.ingest.lightcurve_prep import preprocess_lightcurve  # noqa: E402
from binarycat.model.periodogram import (  # noqa: E402
    CALNET_PERIODS, gls_direct, gls_loop, gls_power, gls_power_batch,
)

CADENCE = 2.0 / 1440.0


def star(rng, t):
    """An eclipsing binary of random period, depths and width seen at ``t``: (y, dy)."""
    period = 10 ** rng.uniform(-0.7, 1.0)
    phase = ((t - t[0] - rng.uniform(0, period)) / period) % 1.0
    width = rng.uniform(0.01, 0.04)
    y = (1.0 - rng.uniform(0.01, 0.3) * np.exp(-0.5 * ((phase - 0.5) / width) ** 2)
         - rng.uniform(0.005, 0.2) * np.exp(-0.5 * (np.minimum(phase, 1 - phase) / width) ** 2))
    dy = 10 ** rng.uniform(-3.5, -2.5) * (1.0 + 0.5 * rng.random(t.size))
    return y + dy * rng.standard_normal(t.size), dy


def simulate(rng, n_points: int):
    """One TESS-like (t, y, dy) of exactly ``n_points`` points around a 1-d mid-sector gap."""
    t0 = rng.uniform(1400, 3000)
    t = t0 + np.arange(n_points + 800) * CADENCE
    mid = t0 + 0.5 * (n_points + 720) * CADENCE
    t = t[(t < mid - 0.5) | (t >= mid + 0.5)][:n_points]
    return (t, *star(rng, t))


def raw_sector(rng, n_cadences: int = 19_584):
    """One raw sector as (time, flux, quality, flux_err) in e-/s, with NaNs in the gap, flags, spikes."""
    time_ = 1600.0 + np.arange(n_cadences) * CADENCE
    y, dy = star(rng, time_)
    flux, err = 1e4 * y, 1e4 * dy
    flux[(time_ > 1613.2) & (time_ < 1614.2)] = np.nan
    quality = np.zeros(n_cadences, np.int32)
    quality[rng.choice(n_cadences, 300, replace=False)] = 128
    flux[rng.choice(n_cadences, 40, replace=False)] *= 1.05
    return time_, flux, quality, err


def errors(p, ref):
    big = ref >= 1e-6
    return np.abs(p - ref).max() / ref.max(), (np.abs(p - ref)[big] / ref[big]).max()


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20, help="light curves")
    ap.add_argument("--points", type=int, default=18_864, help="points per light curve")
    ap.add_argument("--batch", type=int, default=8, help="light curves per torch call")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-torch-cpu", action="store_true", help="skip the (slow) torch CPU path")
    args = ap.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    curves = [simulate(rng, args.points) for _ in range(args.n)]
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count()
    print(f"command: {' '.join(sys.argv)}")
    print(f"{args.n} TESS-like light curves x {args.points} points, {CALNET_PERIODS.size} CALNet periods; "
          f"{cores} CPU cores, OpenBLAS threads {os.environ['OPENBLAS_NUM_THREADS']}, "
          f"torch {torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f}, "
          f"CUDA: {torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'}")

    direct, loop, fast, t_direct, t_loop, t_fast = [], [], [], [], [], []
    gls_power(*curves[0], method="finufft")                          # load finufft, warm caches
    for c in curves:                                                 # interleaved: load hits all alike
        p, s = timed(lambda: gls_loop(*c, CALNET_PERIODS))
        loop.append(p), t_loop.append(s)
        p, s = timed(lambda: gls_direct(*c, CALNET_PERIODS))
        direct.append(p), t_direct.append(s)
        p, s = timed(lambda: gls_power(*c, CALNET_PERIODS, method="finufft"))
        fast.append(p), t_fast.append(s)
    rows = [("loop (reference)", np.array(loop), np.sum(t_loop)),
            ("direct (numpy)", np.array(direct), np.sum(t_direct)),
            ("finufft", np.array(fast), np.sum(t_fast))]
    devices = ([] if args.no_torch_cpu else ["cpu"]) + (["cuda"] if torch.cuda.is_available() else [])
    for dev in devices:
        gls_power_batch(curves[: min(2, args.n)], method="torch", device=dev, batch_size=args.batch)   # warm-up
        if dev == "cuda":
            torch.cuda.synchronize()
        p, s = timed(lambda: gls_power_batch(curves, method="torch", device=dev, batch_size=args.batch))
        rows.append((f"torch {dev} (batch {args.batch})", p, s))

    ref = rows[0][2] / args.n
    print(f"{'method':<24} {'s/curve':>9} {'curves/s':>9} {'vs loop':>8} {'max|d|/max':>11} {'max rel (p>=1e-6)':>18}")
    for name, p, total in rows:
        per = total / args.n
        e_abs, e_rel = np.max([errors(pi, di) for pi, di in zip(p, direct)], axis=0)
        print(f"{name:<24} {per:9.4f} {1 / per:9.1f} {ref / per:7.1f}x {e_abs:11.1e} {e_rel:18.1e}")
    print(f"finufft per-curve times: median {np.median(t_fast) * 1e3:.1f} ms, loop median "
          f"{np.median(t_loop) * 1e3:.0f} ms: median speed-up {np.median(t_loop) / np.median(t_fast):.1f}x "
          f"(target >= 30x)")

    sectors = [raw_sector(rng) for _ in range(args.n)]
    preprocess_lightcurve(*sectors[0])
    t_prep = [timed(lambda: preprocess_lightcurve(*s))[1] for s in sectors]
    print(f"preprocess_lightcurve: {np.mean(t_prep) * 1e3:.1f} ms per sector (median "
          f"{np.median(t_prep) * 1e3:.1f} ms, {len(sectors[0][0])} cadences), {1 / np.mean(t_prep):.1f} sectors/s")


if __name__ == "__main__":
    main()
