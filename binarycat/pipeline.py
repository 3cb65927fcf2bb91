"""Whole workflows as plain functions a notebook can call; the CLI is a thin layer over these.

This module sits between ``cli`` and the packages (``cli -> pipeline -> queries, model,
ingest -> catalog``); nothing but the CLI imports it.

Examples
--------
>>> from binarycat.pipeline import run_demo
>>> result = run_demo("my-catalog", "my-demo-data", n_sources=120, epochs=3)   # doctest: +SKIP
>>> result.candidates.to_pandas().head()                                       # doctest: +SKIP
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pyarrow as pa

from binarycat.catalog.sources import import_sources
from binarycat.catalog.store import Catalog
from binarycat.ingest.labels import import_eb_labels, import_labels
from binarycat.ingest.lightcurves import ingest_lightcurve_files, ingest_lightcurves
from binarycat.ingest.simulate import read_sources, simulate_sky
from binarycat.ingest.simulate_lightcurves import field_targets, select_tess_targets, simulate_lightcurves
from binarycat.ingest.stamps import ingest_fits
from binarycat.ingest.surveys import get_survey, sync_survey_table
from binarycat.model.predict import predict_stamps
from binarycat.model.train import TrainConfig, train_stamp_classifier
from binarycat.queries.runner import run_query

__all__ = ["DemoResult", "DEMO_SURVEYS", "init_catalog", "run_demo"]

DEMO_SURVEYS = ("2MASS", "PanSTARRS", "SDSS9", "HST")


def init_catalog(path: str | Path) -> Catalog:
    """Create (or open) a catalogue directory and write the survey registry into it."""
    cat = Catalog(path, create=True)
    sync_survey_table(cat)
    return cat


@dataclass
class DemoResult:
    """Where the demo put things, what it measured, and the candidates query's result."""

    catalog_dir: Path
    data_dir: Path
    model_id: str = ""
    report: dict = field(default_factory=dict)
    eb_model_id: str = ""
    eb_report: dict = field(default_factory=dict)
    triples: pa.Table | None = None
    per_survey: dict = field(default_factory=dict)
    candidates: pa.Table | None = None
    counts: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)
    problems: list = field(default_factory=list)


def run_demo(
    catalog_dir: str | Path,
    data_dir: str | Path,
    *,
    n_sources: int = 240,
    seed: int = 0,
    surveys=DEMO_SURVEYS,
    epochs: int = 20,
    input_size: int = 64,
    lightcurves: int = 300,
    eb_epochs: int = 15,
    device: str | None = None,
    step: Callable[[str], None] | None = None,
    progress_factory: Callable[[str], Callable] | None = None,
) -> DemoResult:
    """The whole road on simulated data: simulate, import, ingest, label, train, predict, query.

    Parameters
    ----------
    catalog_dir, data_dir : path
        Where the catalogue and the simulated FITS files go.
    n_sources, seed : int
        Size and seed of the simulated sky.
    surveys : sequence of str
        Surveys to simulate and train on.
    epochs, input_size : int
        Training settings (see `TrainConfig`).
    lightcurves : int
        Size of the labelled TESS training sample (field stars of known class, as CALNet
        trains on known EBs) simulated beside the light curves of the catalogue's bright
        sources; 0 skips the eclipsing-binary part.
    eb_epochs : int
        Most CALNet training epochs.
    step : callable, optional
        Called with a one-line description as each stage starts.
    progress_factory : callable, optional
        ``progress_factory(stage)`` returns a ``progress(done, total, ...)`` callable.
    """
    step = step or (lambda msg: None)
    prog = progress_factory or (lambda stage: None)
    names = [get_survey(s).name for s in surveys]
    result = DemoResult(Path(catalog_dir), Path(data_dir))
    t = time.perf_counter()

    step(f"Simulating {n_sources} Orion-like sources in {', '.join(names)} (seed {seed})")
    sim = simulate_sky(data_dir, n_sources=n_sources, surveys=names, seed=seed,
                       progress=prog("simulate"))
    result.timings["simulate"] = time.perf_counter() - t

    with init_catalog(catalog_dir) as cat:
        step(f"Importing the source list {sim.sources_csv}")
        imported = import_sources(cat, sim.sources_csv)
        result.counts["sources_added"] = imported.added

        t = time.perf_counter()
        for name in names:
            step(f"Ingesting and stacking {name} cutouts from {Path(data_dir) / name}")
            rep = ingest_fits(cat, [Path(data_dir) / name], name, progress=prog(f"ingest {name}"))
            result.counts[f"stamps_{name}"] = rep.stored + rep.already_present
            result.problems.extend(rep.problems)
        result.timings["ingest"] = time.perf_counter() - t

        step(f"Importing labels from the simulator's truth {sim.truth_csv}")
        import_labels(cat, sim.truth_csv, labeller="simulator")

        t = time.perf_counter()
        step(f"Training ResNet34 from scratch on {', '.join(names)} ({epochs} epochs at most)")
        config = TrainConfig(epochs=epochs, input_size=input_size, seed=seed, split_seed=seed,
                             patience=max(3, epochs // 2))
        trained = train_stamp_classifier(cat, names, config, device=device, progress=prog("train"))
        result.timings["train"] = time.perf_counter() - t
        result.model_id = trained.model_id
        result.report = trained.report
        result.per_survey = trained.per_survey
        result.counts.update(n_train=trained.n_train, n_validation=trained.n_validation,
                             n_test=trained.n_test)

        t = time.perf_counter()
        step("Predicting every stamp and writing per-survey flags")
        pred = predict_stamps(cat, trained.model_id, names, device=device, progress=prog("predict"))
        result.timings["predict"] = time.perf_counter() - t
        result.counts.update(predicted=pred.n_stamps, flagged=pred.n_binary)

    if lightcurves:
        _demo_eclipsing(result, catalog_dir, data_dir, sim.sources_csv, lightcurves, eb_epochs, seed,
                        device, step, prog)

    step("Running the named query `candidates`")
    result.candidates = run_query(catalog_dir, "candidates")
    if lightcurves:
        result.triples = run_query(catalog_dir, "candidate_triples")
    return result


def _demo_eclipsing(result: DemoResult, catalog_dir, data_dir, sources_csv, n_field: int, epochs: int,
                    seed: int, device, step, prog) -> None:
    """The eclipsing-binary road of the demo: TESS light curves in, CALNet trained, flags out."""
    from binarycat.eb_pipeline import lightcurve_features, predict_eb, train_eb
    from binarycat.model.eb_train import EBTrainConfig

    t = time.perf_counter()
    targets = select_tess_targets(read_sources(sources_csv), seed=seed)
    tess_dir = Path(data_dir) / "tess"
    step(f"Simulating TESS light curves of the {len(targets)} catalogue sources brighter than r = 16 "
         f"(SPOC FITS in {tess_dir}) and of {n_field} labelled field stars")
    on_sky = simulate_lightcurves(targets, seed=seed, out_dir=tess_dir, keep_arrays=False,
                                  progress=prog("light curves"))
    sample = simulate_lightcurves(field_targets(n_field, seed=seed), seed=seed + 1)
    result.timings["simulate light curves"] = time.perf_counter() - t

    t = time.perf_counter()
    with Catalog(catalog_dir) as cat:
        step(f"Ingesting the SPOC light curves from {tess_dir} and the labelled sample")
        rep = ingest_lightcurve_files(cat, [tess_dir], progress=prog("ingest TESS"))
        result.problems.extend(rep.failed)
        ingest_lightcurves(cat, sample.lightcurves)
        import_eb_labels(cat, on_sky.truth, labeller="simulator")
        import_eb_labels(cat, sample.truth, labeller="simulator")
        result.counts["lightcurves"] = cat.table_count("lightcurves")
        result.timings["ingest light curves"] = time.perf_counter() - t

        t = time.perf_counter()
        step(f"Preprocessing, GLS periodograms and CALNet training ({epochs} epochs at most)")
        config = EBTrainConfig(epochs=epochs, seed=seed, split_seed=seed, patience=max(3, epochs // 2))
        features, _ = lightcurve_features(cat, progress=prog("prepare"))
        trained, _ = train_eb(cat, config, device=device, features=features, progress=prog("train CALNet"))
        result.eb_model_id, result.eb_report = trained.model_id, trained.report
        result.counts.update(eb_n_test=trained.n_test)
        step("Predicting every light curve and writing the TESS flags")
        pred, _ = predict_eb(cat, trained.model_id, device=device, features=features)
        result.counts.update(eb_predicted=pred.n_lightcurves, eb_flagged=pred.n_eclipsing)
        result.timings["eclipsing binaries"] = time.perf_counter() - t
