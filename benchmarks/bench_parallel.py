"""How much faster the simulator, ingest and the classical baseline run on every core than on one.

Each spreads independent items over processes (`binarycat.parallel`). In one run on the same
machine this times, at ``--workers`` processes against one (the reference):

(a) `simulate_sky` writing the FITS stamps of ``--sources`` Pan-STARRS + SDSS9 + HST sources
    with Moffat PSFs (the slowest PSF to render), and checks the two folders are byte-identical;
(b) `ingest_fits` reading and stacking those files into a fresh catalogue per run (the work of
    `binarycat ingest`), and checks both catalogues hold the same stamps;
(c) `pair_scores` fitting the Moffat-family one- and two-star models to those stamps (the
    baseline `binarycat evaluate --baseline-psf moffat` runs), and checks the scores are equal.

It prints items per second for each and the speed-up ratio; on N free cores the ideal is N, less
about a second per worker of start-up.

Run:  python benchmarks/bench_parallel.py [--sources 300] [--workers 0]    (0: every core)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from binarycat.ingest.fits_io import read_image
from binarycat.catalog.sources import import_sources
from binarycat.catalog.store import Catalog
from binarycat.ingest.simulate import simulate_sky
from binarycat.ingest.stamps import ingest_fits
from binarycat.ingest.stacking import group_by_prefix, stack_images
from binarycat.ingest.surveys import get_survey
from binarycat.model.baseline import pair_scores
from binarycat.parallel import allowed_cores

SURVEYS = ("PanSTARRS", "SDSS9", "HST")


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(folder)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def _stamps(folder: Path):
    """The stacked stamps of a simulated sky, with each one's pixel scale and FWHM."""
    arrays, scales, fwhms = [], [], []
    for name in SURVEYS:
        survey = get_survey(name)
        for group in group_by_prefix(sorted((folder / name).glob("*.fits"))).values():
            data, _ = stack_images([read_image(p) for p in group])
            arrays.append(data)
            scales.append(survey.pixel_scale_arcsec)
            fwhms.append(survey.fwhm_arcsec)
    return arrays, np.array(scales), np.array(fwhms)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sources", type=int, default=300)
    ap.add_argument("--workers", type=int, default=0, help="processes for the parallel runs (0: every core)")
    args = ap.parse_args()
    workers = args.workers or allowed_cores()
    out = {"cores": allowed_cores(), "workers": workers, "sources": args.sources}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        times, results = {}, {}
        for w in (1, workers):
            t0 = time.perf_counter()
            results[w] = simulate_sky(tmp / f"j{w}", n_sources=args.sources, surveys=SURVEYS, seed=3,
                                      psf="moffat", moffat_beta=(2.0, 5.0), workers=w)
            times[w] = time.perf_counter() - t0
        files = results[1].n_files
        out["simulate"] = {"files": files, "files_per_s_1": round(files / times[1], 1),
                           f"files_per_s_{workers}": round(files / times[workers], 1),
                           "speedup": round(times[1] / times[workers], 2),
                           "identical": _digest(tmp / "j1") == _digest(tmp / f"j{workers}")}
        stamp_ids = {}
        for w in (1, workers):
            cat = Catalog(tmp / f"cat{w}", create=True)
            import_sources(cat, tmp / "j1" / "sources.csv")
            t0 = time.perf_counter()
            stored = sum(ingest_fits(cat, [tmp / "j1" / name], name, workers=w).stored for name in SURVEYS)
            times[w] = time.perf_counter() - t0
            stamp_ids[w] = sorted(r[0] for r in cat.sql("select stamp_id from stamps").fetchall())
            cat.close()
        out["ingest"] = {"stamps": stored, "stamps_per_s_1": round(stored / times[1], 1),
                         f"stamps_per_s_{workers}": round(stored / times[workers], 1),
                         "speedup": round(times[1] / times[workers], 2),
                         "identical": stamp_ids[1] == stamp_ids[workers]}
        arrays, scales, fwhms = _stamps(tmp / "j1")
        scores = {}
        for w in (1, workers):
            t0 = time.perf_counter()
            scores[w] = pair_scores(arrays, scales, fwhms, "moffat", workers=w)
            times[w] = time.perf_counter() - t0
        out["baseline_moffat"] = {"stamps": len(arrays), "stamps_per_s_1": round(len(arrays) / times[1], 1),
                                  f"stamps_per_s_{workers}": round(len(arrays) / times[workers], 1),
                                  "speedup": round(times[1] / times[workers], 2),
                                  "identical": bool(np.array_equal(scores[1], scores[workers]))}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
