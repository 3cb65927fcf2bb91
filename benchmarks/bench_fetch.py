"""Fetch throughput against the loopback hips2fits stand-in with injected faults.

Starts ``tests/hips_server.py`` on 127.0.0.1 with a failure rate (HTTP 500) and a corrupt
rate (truncated FITS or HTML with status 200), fetches every source of a simulated
Orion-like catalogue from one survey, and prints stamps/s, requests per stored stamp and per
cutout, and the ratio to a fault-free run measured in the same process (the reference).

Run:  python benchmarks/bench_fetch.py [--sources 100] [--fail-rate 0.2] [--corrupt-rate 0.05]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from hips_server import HipsServer  # noqa: E402

from binarycat.catalog.sources import import_sources  # noqa: E402
from binarycat.catalog.store import Catalog  # noqa: E402
from binarycat.ingest.fetch import fetch_stamps  # noqa: E402
from binarycat.ingest.simulate import simulate_sources  # noqa: E402


def run(sky, filters, workers, fail_rate, corrupt_rate, backoff):
    with tempfile.TemporaryDirectory() as d, Catalog(Path(d) / "cat") as cat:
        import_sources(cat, sky["source_id", "ra", "dec"])
        with HipsServer(sky, fail_rate=fail_rate, corrupt_rate=corrupt_rate, fault_seed=1) as srv:
            rep = fetch_stamps(cat, "PanSTARRS", filters=filters, server=srv.url, workers=workers,
                               max_rps=None, retries=8, backoff=backoff)
            counts = srv.counts()
    assert rep.ok and rep.stored == len(sky), rep
    return rep, counts


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sources", type=int, default=100)
    ap.add_argument("--filters", default="g,r,i")
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--fail-rate", type=float, default=0.2)
    ap.add_argument("--corrupt-rate", type=float, default=0.05)
    ap.add_argument("--backoff", type=float, default=0.05, help="first retry delay, s (production default 0.5)")
    args = ap.parse_args(argv)
    filters = args.filters.split(",")
    sky = simulate_sources(args.sources, seed=4)
    print(f"command: {' '.join(sys.argv)}")
    ref, _ = run(sky, filters, args.workers, 0.0, 0.0, args.backoff)
    rep, counts = run(sky, filters, args.workers, args.fail_rate, args.corrupt_rate, args.backoff)
    n_cutouts = rep.stored * len(filters)
    for label, r in (("no faults (reference)", ref), (f"{args.fail_rate:.0%} failures + {args.corrupt_rate:.0%} corrupt", rep)):
        print(f"{label:<32} {r.stored} stamps in {r.seconds:6.2f} s = {r.stored / r.seconds:6.1f} stamps/s; "
              f"{r.requests / r.stored:.2f} requests per stamp ({r.requests / n_cutouts:.2f} per cutout)")
    print(f"faulty/reference throughput: {(rep.stored / rep.seconds) / (ref.stored / ref.seconds):.2f}; "
          f"server outcomes: {dict(counts)}")


if __name__ == "__main__":
    main()
