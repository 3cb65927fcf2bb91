"""How long `binarycat report` takes for 1,000 candidates, against a naive matplotlib loop.

Builds a catalogue from the sky simulator: ``--sources`` Orion-like stars (60 % binaries),
one stamp per covered survey among 2MASS, PanSTARRS, SDSS9 and HST (one band per survey,
rendered by `render_stamp` at the survey's native pixel scale and PSF, turned into a S/N map
as ingest does), simulator-truth labels for 60 % of the stamps, and predictions that follow
the truth with noise, so that about two thirds of the sources are flagged in some survey. A
stamp-classifier ``models`` row with a test split makes the confusion matrix and reliability
diagram real.

Then it times `build_report` end to end (SQL, reading the Parquet shards, every mosaic and peak
plot, the pages) for ``--candidates`` candidates, and, as the reference measured in the same
run on the same stamps, the same number of mosaics drawn the naive way: a fresh
``plt.subplots`` + ``imshow`` + ``savefig`` + ``plt.close`` per candidate at the same size and
dpi. It prints both and their ratio, plus the report's own mosaic-only time in one process.

Run:  python benchmarks/bench_report.py [--sources 2400] [--candidates 1000] [--workers 0]
      [--keep DIR]     (keep the catalogue and the report in DIR, e.g. for screenshots)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from binarycat.catalog.arrays import StampRecord, healpix_index, load_stamp_arrays, store_stamps
from binarycat.catalog.flags import rebuild_binary_flags
from binarycat.catalog.store import Catalog
from binarycat.ingest.simulate import footprint_covers, render_stamp, resolved_label, simulate_sources
from binarycat.ingest.surveys import get_survey, sync_survey_table
from binarycat.report import build_report
from binarycat.report.data import select_candidates, stamps_of_sources
from binarycat.report.plots import FIELD_ARCSEC, MosaicRenderer, StampPanel, display_norm

SURVEYS = ("2MASS", "PanSTARRS", "SDSS9", "HST")
MODEL_ID = "bench-stamp-model"


def build_catalog(path: Path, n_sources: int, seed: int = 0) -> dict:
    """The simulated catalogue described in the module docstring; returns counts and seconds."""
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    sources = simulate_sources(n_sources, seed=seed, binary_fraction=0.6)
    records, truth = [], []
    for k, name in enumerate(SURVEYS):
        survey = get_survey(name)
        band = survey.filters[len(survey.filters) // 2].name
        covered = footprint_covers(survey, np.asarray(sources["ra"]), np.asarray(sources["dec"]))
        for row, cov in zip(sources, covered):
            if not cov:
                continue
            img, hdr, snr = render_stamp(row, survey, band, seed=seed)
            img = (img - hdr["SKYLEV"]) / hdr["SKYSIG"]
            records.append(StampRecord(row["source_id"], name, img, [band], survey.pixel_scale_arcsec,
                                       float(row["ra"]), float(row["dec"]), "bench_report"))
            label = resolved_label(row["is_binary"], row["separation_arcsec"], survey.fwhm_arcsec, snr)
            truth.append((row["source_id"], name, int(label)))
    with Catalog(path, create=True) as cat:
        sync_survey_table(cat)
        hpx = healpix_index(np.asarray(sources["ra"]), np.asarray(sources["dec"]))
        with cat.transaction() as con:
            con.executemany("insert into sources (source_id, ra, dec, healpix) values (?, ?, ?, ?)",
                            [(r["source_id"], float(r["ra"]), float(r["dec"]), int(h)) for r, h in zip(sources, hpx)])
        store_stamps(cat, records)
        stamp_of = {(s, v): i for i, s, v in cat.sql("select stamp_id, source_id, survey from stamps").fetchall()}
        labels = np.array([t[2] for t in truth])
        p = np.clip(0.5 + np.where(labels == 1, 0.3, -0.3) + rng.normal(0, 0.2, len(truth)), 0.001, 0.999)
        p_of = {(s, v): float(pi) for (s, v, _), pi in zip(truth, p)}
        ids = sorted({t[0] for t in truth})
        test = {s for s in ids if rng.random() < 0.15}
        y_test = [lab for (s, _, lab) in truth if s in test]
        pred_test = [int(p_of[(s, v)] >= 0.5) for (s, v, _) in truth if s in test]
        cm = np.zeros((2, 2), int)
        np.add.at(cm, (np.array(y_test), np.array(pred_test)), 1)
        acc = float(np.trace(cm) / cm.sum())
        metrics = {"test": {"confusion_matrix": cm.tolist(), "accuracy": acc, "macro avg": {"f1": acc}},
                   "n_test": len(y_test)}
        with cat.transaction() as con:
            con.execute("insert into models (model_id, kind, surveys, params, split_seed, metrics, checkpoint) "
                        "values (?, 'stamp_classifier', ?, '{}', 0, ?, 'models/none.pt')",
                        [MODEL_ID, list(SURVEYS), json.dumps(metrics)])
            con.executemany("insert into splits values (?, ?, ?)",
                            [(MODEL_ID, s, "test" if s in test else "train") for s in ids])
            con.executemany(
                "insert into predictions (stamp_id, model_id, source_id, survey, p_binary, flag, threshold) "
                "values (?, ?, ?, ?, ?, ?, 0.5)",
                [(stamp_of[(s, v)], MODEL_ID, s, v, p_of[(s, v)], p_of[(s, v)] >= 0.5) for (s, v, _) in truth])
            labelled = [t for t in truth if rng.random() < 0.6]
            con.executemany("insert into labels (source_id, survey, label, labeller) values (?, ?, ?, 'simulator')",
                            labelled)
        rebuild_binary_flags(cat)
        flagged = cat.sql("select count(*) from source_flags where n_surveys_binary > 0").fetchone()[0]
    return {"sources": n_sources, "stamps": len(records), "flagged": flagged, "labelled": len(labelled),
            "seconds": time.perf_counter() - t0}


def panels_for(cat: Catalog, n: int) -> list[list[StampPanel]]:
    """The first ``n`` candidates' stamps as panels (cut to the report's field), in report order."""
    cands = select_candidates(cat, None, n)
    stamps = stamps_of_sources(cat, [c.source_id for c in cands])
    ids = [s.stamp_id for c in cands for s in stamps[c.source_id]]
    arrays = dict(zip(ids, load_stamp_arrays(cat, ids)))
    return [[StampPanel(s.survey, arrays[s.stamp_id], s.pixel_scale_arcsec, s.fwhm_arcsec, s.p_binary, s.flag,
                        s.label).cropped(FIELD_ARCSEC) for s in stamps[c.source_id]] for c in cands]


def naive_mosaics(all_panels, out: Path, dpi: int, inches: float) -> float:
    """The reference: a new pyplot figure per candidate, imshow per survey, savefig, close."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    for i, panels in enumerate(all_panels):
        fig, axes = plt.subplots(1, len(panels), figsize=(inches * len(panels), inches + 0.42), squeeze=False)
        for ax, p in zip(axes[0], panels):
            ax.imshow(p.data, origin="lower", cmap="magma", norm=display_norm(p.data), extent=p.extent())
            ax.set_title(p.caption(), fontsize=6.5)
            ax.set_xticks([])
            ax.set_yticks([])
        fig.savefig(out / f"{i}.png", dpi=dpi)
        plt.close(fig)
    return time.perf_counter() - t0


def ours_mosaics(all_panels, out: Path, dpi: int) -> float:
    """The report's renderer, mosaics only, in this one process."""
    out.mkdir(parents=True, exist_ok=True)
    r = MosaicRenderer(dpi=dpi)
    t0 = time.perf_counter()
    for i, panels in enumerate(all_panels):
        r.mosaic(panels, out / f"{i}.png", title=f"candidate {i}")
    return time.perf_counter() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sources", type=int, default=2400)
    ap.add_argument("--candidates", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=0, help="report worker processes (0: automatic)")
    ap.add_argument("--dpi", type=int, default=80)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", type=Path, help="keep the catalogue (DIR/cat) and the report (DIR/report) here")
    args = ap.parse_args(argv)

    tmp = None
    if args.keep:
        root = args.keep
        root.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="bench-report-")
        root = Path(tmp.name)
    cat_dir = root / "cat"
    if not (cat_dir / "catalog.duckdb").exists():
        built = build_catalog(cat_dir, args.sources, args.seed)
        print(f"catalogue: {built['sources']} sources, {built['stamps']} stamps, {built['flagged']} flagged sources, "
              f"{built['labelled']} labels, built in {built['seconds']:.1f}s")
    print(f"machine: {os.cpu_count()} CPUs, python {sys.version.split()[0]}")

    with Catalog(cat_dir, create=False, read_only=True) as cat:
        res = build_report(cat, root / "report", limit=args.candidates, dpi=args.dpi, workers=args.workers or None)
        print(f"report: {res.n_candidates} candidates, {len(res.pages)} pages, {res.n_images} images in "
              f"{res.seconds:.1f}s ({res.n_candidates / res.seconds:.1f} candidates/s) -> {res.index}")
        all_panels = panels_for(cat, args.candidates)
    inches = MosaicRenderer().panel_inches
    with tempfile.TemporaryDirectory(prefix="bench-mosaics-") as d:
        t_ours = ours_mosaics(all_panels, Path(d) / "ours", args.dpi)
        t_naive = naive_mosaics(all_panels, Path(d) / "naive", args.dpi, inches)
    n = len(all_panels)
    print(f"mosaics only, one process: report renderer {t_ours:.1f}s ({1000 * t_ours / n:.0f} ms each), "
          f"naive plt.subplots/savefig/close {t_naive:.1f}s ({1000 * t_naive / n:.0f} ms each): "
          f"{t_naive / t_ours:.2f}x faster")
    print(f"whole report (mosaics + {res.n_images - n - 3} peak plots + pages) vs naive mosaics alone: "
          f"ratio {res.seconds / t_naive:.2f}")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
