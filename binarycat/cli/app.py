"""The ``binarycat`` command line: options in, plain functions called, results rendered."""

from __future__ import annotations

import inspect
import json
import time
from pathlib import Path
from typing import List, Optional

import typer

from binarycat.catalog.store import Catalog, default_catalog_dir
from binarycat.errors import BinarycatError
from binarycat.cli import render
from binarycat.cli.render import Bars, console, err_console

app = typer.Typer(
    name="binarycat",
    help="Find binary stars in survey stamps and keep every result in a DuckDB catalogue.\n\n"
         "Start with:  binarycat demo",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
sources_app = typer.Typer(help="Source catalogues: import from files or VizieR.", no_args_is_help=True)
label_app = typer.Typer(help="Labels for training: import from files.", no_args_is_help=True)
app.add_typer(sources_app, name="sources")
app.add_typer(label_app, name="label")


def _catalog_dir(ctx: typer.Context) -> Path:
    return ctx.obj["catalog"]


_IDS_OPTION = typer.Option(None, "--ids", help="Only sources whose id, read as a whole number, is in these "
                           "ranges, e.g. 6000-8999,10000-14499 (text ids in --where compare as text: "
                           "'10001' > '100000').")


def _where(where: str | None, ids: str | None) -> str | None:
    """--where and --ids as one SQL condition on sources (alias s)."""
    from binarycat.catalog.sources import id_range_condition

    conds = ([f"({where})"] if where else []) + ([id_range_condition(ids)] if ids else [])
    return " and ".join(conds) or None


def _open(ctx: typer.Context, *, create: bool = False) -> Catalog:
    from binarycat.ingest.surveys import sync_survey_table

    cat = Catalog(_catalog_dir(ctx), create=create)
    if create:
        sync_survey_table(cat)
    return cat


@app.callback()
def root(
    ctx: typer.Context,
    catalog: Optional[Path] = typer.Option(
        None, "--catalog", "-c", envvar="BINARYCAT_CATALOG", metavar="DIR",
        help="Catalogue directory \\[default: ./binarycat-catalog].",
    ),
):
    """Find binary stars in survey stamps and keep every result in a DuckDB catalogue."""
    ctx.obj = {"catalog": catalog or default_catalog_dir()}


# -- catalogue -------------------------------------------------------------------------------
@app.command()
def init(ctx: typer.Context):
    """Create a catalogue directory, or bring an existing one up to date.

    On an existing catalogue this also removes stamp shards that no row points at (left by
    an ingest that was killed between writing a shard and committing its rows).

    Example: [cyan]binarycat --catalog orion-cat init[/]
    """
    from binarycat.catalog.arrays import remove_orphan_shards

    with _open(ctx, create=True) as cat:
        removed = remove_orphan_shards(cat)
        console.print(f"Catalogue ready at [bold]{cat.path}[/] (schema v{cat.schema_version}).")
        if removed:
            console.print(f"Removed {len(removed)} unreferenced shard file(s) left by an interrupted write.")


@app.command()
def surveys(
    fmt: str = typer.Option("table", "--format", "-f", help="table, csv or json."),
):
    """List the survey registry: aperture, pixel scale, PSF FWHM, diffraction limit, coverage.

    Example: [cyan]binarycat surveys --format csv[/]
    """
    import pyarrow as pa

    from binarycat.ingest.surveys import survey_rows
    from binarycat.queries.export import write_result

    rows = survey_rows()
    cols = ["name", "aperture_m", "bands", "pixel_scale_arcsec", "fwhm_arcsec",
            "diffraction_limit_arcsec", "sky", "coverage", "aliases"]
    table = pa.table({c: [r[c] if not isinstance(r[c], list) else ",".join(map(str, r[c])) for r in rows]
                      for c in cols})
    if fmt == "table":
        console.print(render.arrow_table(table, max_rows=100))
    else:
        write_result(table, fmt)


# -- the main job ----------------------------------------------------------------------------
@app.command()
def demo(
    ctx: typer.Context,
    data_dir: Path = typer.Option(Path("binarycat-demo"), "--data-dir", help="Where the simulated FITS files go."),
    n_sources: int = typer.Option(240, "--sources", "-n", min=30, help="Simulated sources."),
    seed: int = typer.Option(0, help="Seed of the simulated sky, the split and the training."),
    epochs: int = typer.Option(20, help="Training epochs at most (early stopping on validation F1)."),
    lightcurves: int = typer.Option(300, min=0, help="Labelled TESS field stars simulated to train CALNet "
                                                     "(0: no eclipsing-binary part)."),
    eb_epochs: int = typer.Option(15, min=1, help="CALNet training epochs at most."),
    device: Optional[str] = typer.Option(None, help="cpu or cuda \\[default: cuda when present]."),
):
    """Run the whole road on simulated data and show the binary candidates.

    Simulates an Orion-like catalogue seen by 2MASS, Pan-STARRS, SDSS9 and HST, ingests and
    stacks the per-filter FITS stamps, labels them from the simulator's truth, trains a
    ResNet34, predicts every stamp and runs the named query `candidates`. Then the same for
    eclipsing binaries: TESS light curves of the bright sources (SPOC FITS) plus a labelled
    field sample, CALNet trained and run, and the query `candidate_triples`.

    Example: [cyan]binarycat --catalog demo-cat demo --sources 300 --epochs 15[/]
    """
    from binarycat.model.metrics import format_report
    from binarycat.pipeline import run_demo

    t0 = time.perf_counter()
    cat_dir = _catalog_dir(ctx)
    with Bars() as bars:
        result = run_demo(
            cat_dir, data_dir, n_sources=n_sources, seed=seed, epochs=epochs, lightcurves=lightcurves,
            eb_epochs=eb_epochs, device=device,
            step=lambda msg: err_console.print(f"[bold cyan]>[/] {msg}", highlight=False),
            progress_factory=bars.factory,
        )
    wall = time.perf_counter() - t0
    console.print()
    console.print(f"[bold]Test-split classification report[/] (model {result.model_id}, "
                  f"{result.counts['n_test']} test stamps)")
    console.print(format_report(result.report), highlight=False)
    console.print()
    console.print(render.arrow_table(result.candidates, title="Binary candidates across surveys", max_rows=15))
    console.print()
    if result.eb_model_id:
        console.print(f"[bold]Eclipsing binaries: test-split report[/] (CALNet {result.eb_model_id}, "
                      f"{result.counts['eb_n_test']} test light curves)")
        console.print(format_report(result.eb_report), highlight=False)
        console.print()
        console.print(render.arrow_table(result.triples, title="Candidate triples: visual pair and eclipsing",
                                         max_rows=10))
        console.print()
    console.print("[bold]Where everything went[/]")
    console.print(f"  simulated FITS, sources.csv, truth.csv  {result.data_dir.resolve()}")
    console.print(f"  catalogue (DuckDB + Parquet)            {result.catalog_dir.resolve()}")
    console.print(f"  model checkpoint                        "
                  f"{(result.catalog_dir / 'models' / (result.model_id + '.pt')).resolve()}")
    stamps = {k[7:]: v for k, v in result.counts.items() if k.startswith("stamps_")}
    console.print(f"  stamps per survey                       {stamps}")
    console.print(f"  predictions                             {result.counts['predicted']} "
                  f"({result.counts['flagged']} flagged binary)")
    if result.eb_model_id:
        console.print(f"  TESS light curves                       {result.counts['lightcurves']} stored, "
                      f"{result.counts['eb_flagged']} flagged eclipsing")
    timing = ", ".join(f"{k} {v:.0f}s" for k, v in result.timings.items())
    console.print(f"  time                                    {wall:.0f}s ({timing})")
    if result.problems:
        console.print(f"  [yellow]{len(result.problems)} file problems[/] (first: {result.problems[0]})")
    console.print()
    console.print(f"Next: [cyan]binarycat --catalog {cat_dir} query \"select * from binary_flags limit 5\"[/]")


@app.command()
def simulate(
    out_dir: Path = typer.Argument(..., help="Folder for the FITS files, sources.csv and truth.csv."),
    n_sources: int = typer.Option(300, "--sources", "-n", min=1, help="Number of sources."),
    surveys_opt: str = typer.Option("2MASS,PanSTARRS,SDSS9,HST", "--surveys", "-s",
                                    help="Comma-separated survey names."),
    seed: int = typer.Option(0, help="Random seed; the same seed gives the same files."),
    fov: float = typer.Option(10.0, "--fov", help="Stamp field of view, arcsec."),
    binary_fraction: float = typer.Option(0.5, min=0.0, max=1.0, help="Fraction of binaries."),
    first_id: int = typer.Option(0, min=0, help="First source id number; give a second sky ids of its own "
                                                "to ingest it into the same catalogue."),
    separation_range: str = typer.Option("0.1,2.5", "--separation-range", metavar="MIN,MAX",
                                         help="Binary separations, arcsec (log-uniform between the two)."),
    flux_ratio_range: str = typer.Option("0.1,1", "--flux-ratio-range", metavar="MIN,MAX",
                                         help="Companion / primary flux ratios (uniform between the two)."),
    psf: str = typer.Option("gaussian", "--psf", metavar="gaussian|moffat",
                            help="PSF profile of every stamp, at each band's FWHM; a Moffat has the wings "
                                 "of real seeing."),
    moffat_beta: str = typer.Option("2.5", "--moffat-beta", metavar="BETA|MIN,MAX",
                                    help="Moffat power index (above 1; 2.5 as DAOPHOT, about 4.8 for Kolmogorov "
                                         "seeing), or MIN,MAX to draw one per source and survey; only with "
                                         "--psf moffat."),
    workers: int = typer.Option(0, "--workers", "-j", min=0,
                                help="Processes rendering stamps (0: every core); the files are the same "
                                     "whatever the number."),
):
    """Simulate an Orion-like sky as per-filter FITS stamps, with a source list and truth labels.

    Example: [cyan]binarycat simulate sim --sources 500 --surveys PS1,HST,2MASS --seed 7[/]

    A test sky for the same catalogue: [cyan]binarycat simulate sim2 --seed 8 --first-id 100000[/]

    A training sky crowded at the PS1 and SDSS resolution limits (FWHM 1.1" and 1.4"):
    [cyan]binarycat simulate sim3 --seed 9 --first-id 200000 --separation-range 0.85,1.75[/]

    A training sky of faint companions, near the label rule's S/N 5:
    [cyan]binarycat simulate sim4 --seed 10 --first-id 300000 --flux-ratio-range 0.1,0.3[/]

    A sky whose PSFs have wings, to test a method that assumes Gaussian stars:
    [cyan]binarycat simulate sim5 --seed 11 --first-id 400000 --psf moffat --moffat-beta 2.5[/]

    A training sky whose PSF wings vary from image to image, on 8 cores:
    [cyan]binarycat simulate sim6 --seed 12 --first-id 500000 --psf moffat --moffat-beta 2,5 -j 8[/]
    """
    from binarycat.ingest.simulate import simulate_sky
    from binarycat.ingest.surveys import parse_survey_list

    names = [s.name for s in parse_survey_list(surveys_opt)]
    sep_range = tuple(part.strip() for part in separation_range.split(","))
    ratio_range = tuple(part.strip() for part in flux_ratio_range.split(","))
    beta_parts = tuple(part.strip() for part in moffat_beta.split(","))
    beta = beta_parts if len(beta_parts) > 1 else beta_parts[0]
    with Bars() as bars:
        res = simulate_sky(out_dir, n_sources=n_sources, surveys=names, seed=seed, fov_arcsec=fov,
                           binary_fraction=binary_fraction, first_id=first_id,
                           separation_range=sep_range, flux_ratio_range=ratio_range,
                           psf=psf, moffat_beta=beta, progress=bars.factory("simulate"), workers=workers)
    console.print(f"Wrote {res.n_files} FITS files for {res.n_sources} sources to [bold]{res.out_dir}[/]")
    for name, n in res.files_by_survey.items():
        console.print(f"  {name:<10} {n} files in {res.out_dir / name}")
    console.print(f"  sources {res.sources_csv}\n  truth   {res.truth_csv}")


@app.command()
def ingest(
    ctx: typer.Context,
    paths: List[Path] = typer.Argument(..., help="FITS files or folders (searched recursively)."),
    survey: str = typer.Option(..., "--survey", "-s", help="Survey name or alias (PS1, SDSS, HST...)."),
    match_radius: float = typer.Option(1.0, help="Largest stamp-centre to source distance, arcsec."),
    workers: int = typer.Option(0, "--workers", "-j", min=0,
                                help="Processes reading and stacking files (0: every core); the stored stamps "
                                     "are the same whatever the number."),
):
    """Read per-filter FITS cutouts, stack each source's filters and store the stamps.

    Files named PREFIX_FILTER.fits with one PREFIX are the filters of one source. Stamps are
    tied to sources by id (header SRCID or the prefix) or by position. Bad files are reported
    one by one and the good ones are still stored; re-running adds nothing.

    Example: [cyan]binarycat ingest sim/PanSTARRS --survey PS1[/]

    A large folder on 8 cores: [cyan]binarycat ingest orion/HST --survey HST -j 8[/]
    """
    from binarycat.ingest.stamps import ingest_fits
    from binarycat.ingest.surveys import get_survey

    name = get_survey(survey).name
    with _open(ctx, create=True) as cat, Bars() as bars:
        rep = ingest_fits(cat, paths, name, match_radius_arcsec=match_radius,
                          progress=bars.factory(f"ingest {name}"), workers=workers)
    console.print(f"{name}: {rep.stored} stamps stored, {rep.already_present} already present, "
                  f"{len(rep.problems)} bad files, {len(rep.unmatched)} without a source "
                  f"({rep.files} files read).")
    for path, reason in rep.problems:
        err_console.print(f"[yellow]bad file[/] {path}: {reason}", highlight=False)
    for prefix, ra, dec in rep.unmatched:
        where = f"at ({ra:.6f}, {dec:.6f})" if ra is not None else "without a WCS"
        err_console.print(f"[yellow]no source[/] {prefix} {where}", highlight=False)
    if not rep.ok:
        raise typer.Exit(2)


@app.command()
def fetch(
    ctx: typer.Context,
    survey: str = typer.Option(..., "--survey", "-s", help="Survey name or alias."),
    filters: Optional[str] = typer.Option(None, help="Comma-separated bands \\[default: all with a HiPS id]."),
    size: int = typer.Option(64, min=8, help="Pixels a side of every cutout."),
    fov: float = typer.Option(10.0, "--fov", help="Field of view of every cutout, arcsec."),
    where: Optional[str] = typer.Option(None, help="SQL condition on sources (alias s), e.g. \"s.dec > -6\"."),
    ids: Optional[str] = _IDS_OPTION,
    limit: Optional[int] = typer.Option(None, min=1, help="At most this many sources this run."),
    workers: int = typer.Option(4, min=1, help="Concurrent requests."),
    max_rps: float = typer.Option(10.0, help="Request-rate cap, per second (0: none)."),
    retries: int = typer.Option(4, min=0, help="Retries per cutout after the first attempt."),
    timeout: float = typer.Option(30.0, help="Seconds per request."),
    hips2fits_url: Optional[str] = typer.Option(None, "--hips2fits-url", help="Service URL (mirror or test server)."),
):
    """Fetch cutouts from hips2fits for the catalogue's sources, stack them and store the stamps.

    Resumable: stop it at any time and run it again; stored stamps are skipped. Failed cutouts
    are retried with backoff and listed at the end (table fetch_failures); blank cutouts are
    recorded as not covered (table coverage). Exit status 2 when something could not be fetched.

    Example: [cyan]binarycat fetch --survey PS1 --filters g,r,i --limit 100[/]
    """
    from binarycat.ingest.fetch import fetch_stamps
    from binarycat.ingest.surveys import get_survey

    name = get_survey(survey).name
    condition = _where(where, ids)
    bands = [f.strip() for f in filters.split(",") if f.strip()] if filters else None
    with _open(ctx, create=True) as cat, Bars() as bars:
        rep = fetch_stamps(cat, name, filters=bands, size=size, fov_arcsec=fov, where=condition, limit=limit,
                           workers=workers, max_rps=max_rps or None, retries=retries, timeout=timeout,
                           server=hips2fits_url, progress=bars.factory(f"fetch {name}"))
    from rich.table import Table as RichTable

    summary = RichTable(title=f"fetch {name}", show_header=True, header_style="bold")
    for col in ("selected", "stored", "already present", "not covered", "failed", "requests", "stamps/s"):
        summary.add_column(col, justify="right")
    rate = rep.stored / rep.seconds if rep.seconds else 0.0
    summary.add_row(str(rep.selected), str(rep.stored), str(rep.already_present), str(rep.not_covered),
                    str(len({f[0] for f in rep.failures})), str(rep.requests), f"{rate:.1f}")
    console.print(summary)
    for source_id, band, reason, attempts in rep.failures:
        err_console.print(f"[yellow]failed[/] {source_id} {name} {band} after {attempts} attempts: {reason}",
                          highlight=False)
    if not rep.ok:
        raise typer.Exit(2)


# -- sources and labels ----------------------------------------------------------------------
def _print_import(res, prefix: str = "") -> None:
    cols = res.columns
    console.print(f"{prefix}{res.added} sources added, {res.existing} already present "
                  f"(id={cols['id'] or 'row number'}, ra={cols['ra']}, dec={cols['dec']}).")


@sources_app.command("import")
def sources_import(
    ctx: typer.Context,
    file: Path = typer.Argument(..., help="CSV, FITS, VOTable or Parquet table."),
    id_col: Optional[str] = typer.Option(None, help="Id column \\[default: found by name]."),
    ra_col: Optional[str] = typer.Option(None, help="RA column (degrees or sexagesimal hours)."),
    dec_col: Optional[str] = typer.Option(None, help="Dec column (degrees or sexagesimal)."),
):
    """Import a source list; other columns are kept in sources.properties (JSON).

    Example: [cyan]binarycat sources import orion.fits --id-col Seq --ra-col RAJ2000[/]
    """
    from binarycat.catalog.sources import import_sources

    with _open(ctx, create=True) as cat:
        res = import_sources(cat, file, id_col=id_col, ra_col=ra_col, dec_col=dec_col)
    _print_import(res)


@sources_app.command("vizier")
def sources_vizier(
    ctx: typer.Context,
    catalog_id: str = typer.Argument(..., help="VizieR catalogue, e.g. J/AJ/144/192 or J/AJ/144/192/table4."),
    ra: Optional[float] = typer.Option(None, help="Cone centre RA, degrees (with --dec and --radius)."),
    dec: Optional[float] = typer.Option(None, help="Cone centre Dec, degrees."),
    radius: Optional[float] = typer.Option(None, help="Cone radius, arcsec."),
    table: Optional[str] = typer.Option(None, help="Sub-table \\[default: the largest with positions]."),
    server: Optional[str] = typer.Option(None, help="VizieR mirror host\\[:port]."),
    id_col: Optional[str] = typer.Option(None, help="Id column \\[default: found by name]."),
    ra_col: Optional[str] = typer.Option(None, help="RA column \\[default: VizieR's _RAJ2000]."),
    dec_col: Optional[str] = typer.Option(None, help="Dec column \\[default: VizieR's _DEJ2000]."),
):
    """Import a source list from VizieR through astroquery: a whole catalogue (every row) or a cone.

    Example: [cyan]binarycat sources vizier J/AJ/113/1733/table1 --ra 83.82 --dec -5.39 --radius 600[/]
    """
    from binarycat.ingest.vizier import import_vizier

    with _open(ctx, create=True) as cat:
        res, table_name = import_vizier(cat, catalog_id, ra=ra, dec=dec, radius_arcsec=radius, table=table,
                                        server=server, id_col=id_col, ra_col=ra_col, dec_col=dec_col)
    _print_import(res, f"{table_name}: ")


@label_app.command("import")
def label_import(
    ctx: typer.Context,
    file: Path = typer.Argument(..., help="CSV or Parquet with source_id, survey, label (0/1)."),
    labeller: Optional[str] = typer.Option(None, help="Who labelled \\[default: the file name]."),
):
    """Import labels: 1 = resolved visual binary, 0 = not (single or unresolved).

    Example: [cyan]binarycat label import sim/truth.csv --labeller simulator[/]
    """
    from binarycat.ingest.labels import import_labels

    with _open(ctx) as cat:
        res = import_labels(cat, file, labeller=labeller)
    console.print(f"{res.added} labels added, {res.changed} changed, {res.unchanged} unchanged.")


# -- the model -------------------------------------------------------------------------------
@app.command()
def train(
    ctx: typer.Context,
    surveys_opt: str = typer.Option("PanSTARRS,SDSS9,HST", "--surveys", "-s", help="Comma-separated surveys."),
    epochs: int = typer.Option(40, min=0, help="Most epochs (the paper's 40); early stopping on val F1. "
                                               "0 with --init-from: calibrate and test the starting weights."),
    batch_size: int = typer.Option(32, min=1),
    arch: str = typer.Option("resnet34-stem", help="resnet34-stem (custom stem for small stamps), "
                                                    "resnet34-stem-film (the same, told each stamp's survey) "
                                                    "or resnet34 (torchvision's own stem)."),
    input_size: int = typer.Option(224, min=16, help="Model input size, pixels a side (64 or 128 train about "
                                                     "1.9x or 1.5x faster on CPU; docs/stamp-classifier-results.md "
                                                     "compares the three)."),
    field: float = typer.Option(6.4, help="Arcsec a side of the field the input shows (scale = field / size); "
                                          "0 resamples the whole stamp."),
    learning_rate: float = typer.Option(3e-4, "--lr", help="Adam learning rate."),
    lr_step: int = typer.Option(10, help="StepLR step, epochs."),
    patience: int = typer.Option(10, help="Stop after this many epochs without a better val F1."),
    noise_augment: float = typer.Option(0.3, min=0.0, max=1.0, help="Noise re-draw augmentation: extra noise up "
                                                                   "to this fraction of a stamp's own (0: off)."),
    where: Optional[str] = typer.Option(None, help="SQL condition on sources (alias s) to train on, "
                                                   "e.g. \"s.dec > -6\"."),
    ids: Optional[str] = _IDS_OPTION,
    max_minutes: Optional[float] = typer.Option(None, min=0.0, help="Start no epoch after this many minutes; "
                                                                   "the best epoch so far is kept."),
    views: int = typer.Option(8, help="Average the logits over 8 flips and 90-degree rotations of each stamp "
                                      "(1: the stamp alone, 8x faster predict)."),
    init_from: Optional[str] = typer.Option(None, "--init-from", help="Fine-tune: start from this model's "
                                            "weights (same --arch, --input-size, --field; resnet34-stem-film "
                                            "may start from resnet34-stem); its splits are kept. Several, "
                                            "comma-separated: start from the average of their weights."),
    average_from: Optional[int] = typer.Option(None, "--average-from", min=1, help="Keep the average of the "
                                               "weights of this epoch and every later one (stochastic weight "
                                               "averaging) instead of the best epoch."),
    thresholds: str = typer.Option("validation", help="validation: flag each survey at its own threshold, "
                                                      "fitted on its validation stamps; fixed: p_binary >= 0.5."),
    aux_truth: Optional[str] = typer.Option(None, "--aux-truth", help="Comma-separated tables of pair geometry "
                                            "(a simulator's truth.csv): also train a head to regress each "
                                            "binary's separation / FWHM and companion S/N / 5 (training only)."),
    aux_weight: float = typer.Option(0.1, "--aux-weight", min=0.0, help="Weight of that regression's loss."),
    normalisation: str = typer.Option("asinh-mad-v1", help="Per-stamp normalisation, stored with the model: "
                                      "asinh-mad-v1 (scaled to the stamp's peak) or asinh-noise-v1 (pixels "
                                      "kept in units of the stamp's noise)."),
    seed: int = typer.Option(0, help="Torch seed."),
    split_seed: int = typer.Option(0, help="Seed of the 70/15/15 split by source."),
    device: Optional[str] = typer.Option(None, help="cpu or cuda \\[default: cuda when present]."),
    fmt: str = typer.Option("text", "--format", "-f", help="text or json."),
):
    """Train a ResNet34 from scratch on the labelled stamps of some surveys.

    Sources are split 70/15/15 (train/validation/test); the best epoch by validation macro-F1
    is kept and its temperature fitted on the validation split, so p_binary is calibrated; then
    each survey's decision threshold is fitted on its validation stamps (0.5 unless another
    value scores a strictly higher macro-F1 there).

    Example: [cyan]binarycat train --surveys PanSTARRS,SDSS9,HST --epochs 40[/]

    The paper's group 4: [cyan]binarycat train --surveys JWST,HSC[/]

    Fine-tune on newly labelled stamps: [cyan]binarycat train --init-from MODEL_ID --lr 3e-5 --epochs 10[/]

    Tell a trained model each stamp's survey (per-survey feature modulation, starting as the model itself):
    [cyan]binarycat train --init-from MODEL_ID --arch resnet34-stem-film --lr 5e-5 --epochs 20[/]

    Fine-tune and keep the average of epochs 3-10 at a flat learning rate:
    [cyan]binarycat train --init-from MODEL_ID --lr 3e-5 --lr-step 100 --epochs 10 --average-from 3[/]

    Average the weights of a fine-tuned lineage into one model and test it as it is (a model soup):
    [cyan]binarycat train --init-from MODEL_A,MODEL_B,MODEL_C --epochs 0[/]

    On simulated skies, also learn how far each pair lies from the label rule:
    [cyan]binarycat train --init-from MODEL_ID --lr 3e-5 --aux-truth sim1/truth.csv,sim3/truth.csv[/]

    Keep every stamp in units of its own noise, so a companion's S/N reads off its brightness:
    [cyan]binarycat train --init-from MODEL_ID --lr 5e-5 --normalisation asinh-noise-v1[/]
    """
    from binarycat.ingest.surveys import parse_survey_list
    from binarycat.model.metrics import format_report
    from binarycat.model.networks import ARCHITECTURES
    from binarycat.model.train import TrainConfig, train_stamp_classifier

    if arch not in ARCHITECTURES or arch == "calnet":
        raise BinarycatError(f"Unknown --arch {arch!r}; choose resnet34-stem, resnet34-stem-film or resnet34.")
    names = [s.name for s in parse_survey_list(surveys_opt)]
    config = TrainConfig(epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, lr_step=lr_step,
                         patience=patience, input_size=input_size, field_arcsec=field or None, arch=arch,
                         noise_augment=noise_augment, max_minutes=max_minutes, views=views,
                         init_from=_starting_models(init_from), average_from=average_from,
                         thresholds=thresholds, seed=seed, split_seed=split_seed, aux_weight=aux_weight,
                         normalisation=normalisation,
                         aux_truth=[p.strip() for p in aux_truth.split(",") if p.strip()] if aux_truth else None)
    condition = _where(where, ids)
    with _open(ctx) as cat, Bars() as bars:
        res = train_stamp_classifier(cat, names, config, where=condition, device=device,
                                     progress=_epoch_progress(bars), on_wait=err_console.print)
    if fmt == "json":
        print(json.dumps({"model_id": res.model_id, "test": res.report, "test_per_survey": res.per_survey,
                          "calibration": res.calibration, "thresholds": res.thresholds, "seconds": res.seconds},
                         indent=1))
        return
    console.print(f"Model [bold]{res.model_id}[/] trained in {res.seconds:.0f}s "
                  f"({res.n_train} train / {res.n_validation} validation / {res.n_test} test stamps).")
    console.print(format_report(res.report), highlight=False)
    cal = res.calibration
    if res.thresholds:
        console.print("Decision thresholds (fitted on validation): " + _thresholds_text(res.thresholds))
    console.print(f"Temperature {cal['temperature']:.3f}: test ECE {cal['ece_test_before']:.4f} -> "
                  f"{cal['ece_test_after']:.4f}.  Next: [cyan]binarycat evaluate --model {res.model_id}[/]")


def _starting_models(init_from: str | None) -> str | list[str] | None:
    """``--init-from``: one model id, or the list of several to average."""
    ids = [m.strip() for m in (init_from or "").split(",") if m.strip()]
    return None if not ids else ids[0] if len(ids) == 1 else ids


def _epoch_progress(bars: Bars):
    """A bar on a terminal; otherwise one line per epoch on stderr, for logs of long runs."""
    bar = bars.factory("train")
    start = time.perf_counter()

    def progress(epoch, total, info):
        if bar is not None:
            bar(epoch, total, {k: round(v, 4) for k, v in info.items() if k != "epoch"})
            return
        average = info.get("val_macro_f1_average")
        average = "" if average is None else f", of the weight average {average:.4f}"
        err_console.print(f"epoch {epoch}/{total}: loss {info['loss']:.4f}, validation macro-F1 "
                          f"{info['val_macro_f1']:.4f}{average} ({time.perf_counter() - start:.0f} s)",
                          highlight=False, soft_wrap=True)

    return progress


@app.command()
def predict(
    ctx: typer.Context,
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Model id \\[default: the newest]."),
    surveys_opt: Optional[str] = typer.Option(None, "--surveys", "-s", help="\\[default: the model's]."),
    threshold: Optional[float] = typer.Option(None, min=0.0, max=1.0, help="Flag every stamp when p_binary >= "
                                             "this \\[default: the model's threshold for the stamp's survey]."),
    device: Optional[str] = typer.Option(None, help="cpu or cuda \\[default: cuda when present]."),
):
    """Predict every stamp of some surveys and update the binary_flags view.

    Example: [cyan]binarycat predict --surveys HST[/]
    """
    from binarycat.ingest.surveys import parse_survey_list
    from binarycat.model.predict import predict_stamps

    names = [s.name for s in parse_survey_list(surveys_opt)] or None
    with _open(ctx) as cat, Bars() as bars:
        res = predict_stamps(cat, model, names, threshold=threshold, device=device,
                             progress=bars.factory("predict"))
    rate = res.n_stamps / res.seconds if res.seconds else 0
    console.print(f"{res.n_stamps} stamps predicted with {res.model_id} ({res.n_binary} flagged binary) "
                  f"in {res.seconds:.1f}s ({rate:.0f} stamps/s).")


@app.command()
def evaluate(
    ctx: typer.Context,
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Model id \\[default: the newest of each kind]."),
    on: str = typer.Option("test", "--on", help="test: the model's held-out test split; unseen: every labelled "
                                                "stamp of a source in none of its splits (e.g. a new seed)."),
    where: Optional[str] = typer.Option(None, help="SQL condition on sources (alias s) narrowing the set, e.g. "
                                                   "\"s.dec > -6\"."),
    ids: Optional[str] = _IDS_OPTION,
    baseline: bool = typer.Option(True, "--baseline/--no-baseline", help="Also run the classical PSF-fit baseline."),
    baseline_psf: str = typer.Option("gaussian", "--baseline-psf", help="PSF family the baseline fits: gaussian, "
                                     "or moffat (beta fitted too; for PSFs with wings, about 3x slower)."),
    figure: Optional[Path] = typer.Option(None, help="Confusion-matrix PNG \\[default: models/ID.SET.confusion.png "
                                                     "in the catalogue]."),
    stamps: Optional[Path] = typer.Option(None, "--stamps", help="Also write one row per scored stamp (label, "
                                          "p_binary, threshold, CNN and baseline calls) to this .csv, .json, "
                                          ".parquet, .fits or .vot file."),
    truth: Optional[Path] = typer.Option(None, "--truth", help="A simulated sky's truth.csv: also count each "
                                         "method's errors by where the stamp lies against the label rule "
                                         "(separation near one FWHM, companion S/N near 5)."),
    device: Optional[str] = typer.Option(None, help="cpu or cuda \\[default: cuda when present]."),
    fmt: str = typer.Option("text", "--format", "-f", help="text or json."),
):
    """Score a stamp classifier on held-out stamps: Table 2 overall and per survey, calibration, baseline.

    The CNN's report (precision, recall, F1 per class, accuracy, macro and weighted averages)
    is printed overall and per survey at the model's per-survey decision thresholds (fitted on
    its validation stamps; a line gives the macro-F1 at 0.5 too), beside the classical
    baseline (a one- versus two-component PSF fit) on the same stamps, with the CNN's lead or
    lag in macro-F1 and its paired bootstrap 95% interval, and the expected calibration error
    before and after temperature scaling. A confusion-matrix PNG is saved and the report is stored in the
    model's row of `models`. Without --model, the newest stamp classifier and the newest
    eclipsing-binary model (CALNet; its stored test report) are both shown.

    Example: [cyan]binarycat evaluate --on unseen --format json[/]

    One simulated test sky only: [cyan]binarycat evaluate --on unseen --ids 100000-100999[/]

    Against a baseline that fits Moffat PSFs: [cyan]binarycat evaluate --on unseen --baseline-psf moffat[/]

    The stamps it gets wrong, for TOPCAT: [cyan]binarycat evaluate --on unseen --stamps scored.fits[/]

    Where the errors lie on a simulated sky:
    [cyan]binarycat evaluate --on unseen --ids 100000-100999 --truth sim2/truth.csv[/]
    """
    from binarycat.model.error_zones import error_zones, read_truth
    from binarycat.queries.export import format_of_path, write_result

    stamps_format = format_of_path(stamps) if stamps else None
    condition = _where(where, ids)
    truth_table = read_truth(truth) if truth else None  # bad options fail before torch is imported

    from binarycat.model.eb_train import EB_MODEL_KIND
    from binarycat.model.evaluation import evaluate_model
    from binarycat.model.predict import MODEL_KIND, model_row
    with _open(ctx) as cat:
        rows = [model_row(cat, model)] if model else []
        if not model:
            for kind in (MODEL_KIND, EB_MODEL_KIND):
                try:
                    rows.append(model_row(cat, kind=kind))
                except BinarycatError:
                    pass
            if not rows:
                raise BinarycatError("No trained model in the catalogue; run `binarycat train` first.")
        results = [evaluate_model(cat, r["model_id"], on=on, where=condition, device=device, baseline=baseline,
                                  figure=figure, baseline_psf=baseline_psf,
                                  progress=lambda msg: err_console.print(f"[bold cyan]>[/] {msg}", highlight=False))
                   if r["kind"] == MODEL_KIND else r for r in rows]
    scored = next((r for r in results if not isinstance(r, dict)), None)
    if stamps and scored is not None:
        write_result(scored.per_stamp, stamps_format, stamps)
    zones = error_zones(scored.per_stamp, truth_table) if truth_table is not None and scored is not None else None
    if fmt == "json":
        out = [dict(r.as_dict(), stamps=str(stamps) if stamps else None, error_zones=zones)
               if not isinstance(r, dict) else
               {"model_id": r["model_id"], "kind": r["kind"], "test": r["metrics"]["test"],
                "threshold": r["metrics"].get("threshold")} for r in results]
        print(json.dumps(out[0] if model else out, indent=1))
        return
    for res in results:
        if isinstance(res, dict):
            _print_stored_eb(res)
        else:
            _print_evaluation(res)
    if zones:
        _print_error_zones(zones)
    if stamps and scored is not None:
        wrong = scored.per_stamp.num_rows - sum(scored.per_stamp.column("correct").to_pylist())
        console.print(f"Per-stamp table: {stamps} ({scored.per_stamp.num_rows} stamps, {wrong} wrong for the CNN)")


def _print_stored_eb(row: dict) -> None:
    from binarycat.model.metrics import format_report

    metrics = row["metrics"]
    console.print(f"[bold]{row['model_id']}[/] ({row['kind']}) trained on {', '.join(row['surveys'])}: "
                  f"{metrics['n_test']} test light curves, best epoch {metrics['best_epoch']}"
                  + (f", threshold {metrics['threshold']:.3f}" if metrics.get("threshold") is not None else ""))
    console.print(format_report(metrics["test"]), highlight=False)
    console.print()


def _thresholds_text(thresholds: dict) -> str:
    return ", ".join(f"{survey} {t:.3g}" for survey, t in thresholds.items())


def _interval_text(c: dict | None) -> str:
    return f"{c['difference']:+.3f} [{c['low']:+.3f}, {c['high']:+.3f}]" if c else ""


def _disagreement_text(c: dict | None) -> str:
    return f"{c['cnn_only']} / {c['baseline_only']} (p {c['mcnemar_p']:.2g})" if c else ""


def _print_error_zones(zones: list[dict]) -> None:
    from rich.table import Table as RichTable

    table = RichTable(title="Where the errors lie against the label rule (missed pairs + false alarms)",
                      header_style="bold")
    for col in ("zone", "survey", "stamps", "CNN", "baseline"):
        table.add_column(col, justify="right" if col in ("stamps", "CNN", "baseline") else "left")
    for z in zones:
        base = "-" if z["baseline_missed"] is None else f"{z['baseline_missed']} + {z['baseline_false']}"
        table.add_row(z["zone"], z["survey"], str(z["stamps"]), f"{z['cnn_missed']} + {z['cnn_false']}", base)
    console.print(table)
    console.print("Separation limit: within 10% of the survey's FWHM, companion S/N above 6.5; S/N limit: "
                  "companion S/N 3.5-6.5, beyond 1.1 FWHM (binarycat.model.error_zones).", highlight=False)


def _print_evaluation(res) -> None:
    from rich.table import Table as RichTable

    from binarycat.model.metrics import format_report

    views = "the stamp alone" if res.views == 1 else f"mean of {res.views} flipped and rotated views"
    rule = (f"per-survey thresholds fitted on validation ({_thresholds_text(res.thresholds)})" if res.thresholds
            else f"threshold {res.threshold:.2f}")
    console.print(f"[bold]{res.model_id}[/] on its {res.on} stamps ({res.n_stamps}), {rule} on calibrated "
                  f"p_binary ({views})")
    console.print(format_report(res.report), highlight=False)
    for survey, rep in res.per_survey.items():
        console.print(f"\n[bold]{survey}[/]")
        console.print(format_report(rep), highlight=False)
    if res.thresholds and res.report_fixed:
        fixed = [("all", res.report_fixed)] + list(res.per_survey_fixed.items())
        console.print(f"\nAt the fixed threshold {res.threshold:.2f}, macro-F1: "
                      + ", ".join(f"{name} {rep['macro avg']['f1']:.3f}" for name, rep in fixed), highlight=False)
    cal = res.calibration
    console.print(f"\nCalibration: temperature {cal['temperature']:.3f}, expected calibration error "
                  f"{cal['ece_before']:.4f} before, {cal['ece_after']:.4f} after.")
    if res.baseline:
        table = RichTable(title=f"CNN beside the classical baseline ({res.baseline_name}), same stamps",
                          header_style="bold")
        for col in ("survey", "stamps", "CNN macro-F1", "baseline macro-F1", "CNN binary P/R",
                    "baseline binary P/R", "CNN >= baseline", "difference, 95% interval",
                    "right for one only: CNN / baseline (McNemar p)"):
            table.add_column(col, justify="right")
        pairs = [("all", res.report, res.baseline)] + [
            (s, r, res.baseline_per_survey.get(s)) for s, r in res.per_survey.items()]
        for name, cnn, base in pairs:
            if not base:
                continue
            table.add_row(name, str(cnn["macro avg"]["support"]), f"{cnn['macro avg']['f1']:.3f}",
                          f"{base['macro avg']['f1']:.3f}",
                          f"{cnn['binary']['precision']:.3f}/{cnn['binary']['recall']:.3f}",
                          f"{base['binary']['precision']:.3f}/{base['binary']['recall']:.3f}",
                          "yes" if cnn["macro avg"]["f1"] >= base["macro avg"]["f1"] else "[red]no[/]",
                          _interval_text(res.comparison.get(name)), _disagreement_text(res.comparison.get(name)))
        console.print(table)
        console.print("The interval is a paired bootstrap of the stamps: where it spans 0, these stamps "
                      "cannot tell the two apart. Only the stamps one method gets right and the other wrong "
                      "can rank them; McNemar's exact p is the chance of a split at least this uneven if "
                      "the two were equally good.", highlight=False)
    console.print(f"Confusion matrices: {res.figure}")
    console.print()


# -- queries ---------------------------------------------------------------------------------
@app.command()
def query(
    ctx: typer.Context,
    name_or_sql: Optional[str] = typer.Argument(None, help="A named query or SQL."),
    params: List[str] = typer.Option([], "--param", "-p", help="key=value for the query's $key (repeatable)."),
    fmt: str = typer.Option("table", "--format", "-f", help="table, csv, json, parquet, fits or votable."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write to this file."),
    list_: bool = typer.Option(False, "--list", "-l", help="List the named queries."),
    max_rows: int = typer.Option(50, help="Rows shown in table format."),
):
    """Run a named query or SQL on the catalogue, opened read-only.

    Examples: [cyan]binarycat query candidates --format csv -o candidates.csv[/]
              [cyan]binarycat query "select survey, count(*) from stamps group by 1"[/]
    """
    from binarycat.queries.export import write_result
    from binarycat.queries.runner import list_queries, run_query

    if list_ or name_or_sql is None:
        for q in list_queries():
            p = f" [dim](params: {', '.join(q.params)})[/]" if q.params else ""
            console.print(f"[bold]{q.name}[/]{p}\n    {q.description}")
        return
    bound = {}
    for item in params:
        if "=" not in item:
            raise BinarycatError(f"--param needs key=value, got {item!r}.")
        k, v = item.split("=", 1)
        bound[k.strip()] = v
    table = run_query(_catalog_dir(ctx), name_or_sql, bound)
    if fmt == "table" and output is None:
        console.print(render.arrow_table(table, max_rows=max_rows))
    else:
        write_result(table, fmt, output)
        if output is not None:
            err_console.print(f"{table.num_rows} rows written to {output}")


@app.command()
def crossmatch(
    ctx: typer.Context,
    file: Path = typer.Argument(..., help="External catalogue: CSV, FITS, VOTable or Parquet (streamed)."),
    radius: float = typer.Option(..., "--radius", "-r", min=0.0, help="Match radius, arcsec."),
    name: str = typer.Option("external", "--name", help="Name the pairs are stored under."),
    nearest: bool = typer.Option(False, "--nearest/--all", help="Nearest source per external row, or all pairs."),
    id_col: Optional[str] = typer.Option(None, help="Id column \\[default: found by name]."),
    ra_col: Optional[str] = typer.Option(None, help="RA column."),
    dec_col: Optional[str] = typer.Option(None, help="Dec column."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Also write the pairs here."),
    fmt: str = typer.Option("csv", "--format", "-f", help="csv, json, parquet, fits or votable for --output."),
):
    """Cross-match an external catalogue with the sources (zones join in DuckDB) and store the pairs.

    Pairs go to the table crossmatches (name, source_id, external_id, positions, sep_arcsec).

    Example: [cyan]binarycat crossmatch known_ebs.fits --radius 2 --name ebs --nearest[/]
    """
    from binarycat.catalog.crossmatch import crossmatch as run_crossmatch
    from binarycat.queries.export import write_result
    from binarycat.queries.runner import run_sql

    with _open(ctx) as cat:
        res = run_crossmatch(cat, file, radius, name=name, nearest=nearest, id_col=id_col,
                             ra_col=ra_col, dec_col=dec_col)
        if output is not None:
            table = run_sql(cat.con, "select * exclude (name) from crossmatches where name = getvariable('n') "
                                     "order by source_id, sep_arcsec", {"n": name})
            write_result(table, fmt, output)
    console.print(f"{res.n_pairs} pairs within {radius}\" stored as '{res.name}' ({res.mode}): "
                  f"{res.n_matched_external} of {res.n_external} external rows matched "
                  f"{res.n_matched_sources} sources.")
    if output is not None:
        console.print(f"Pairs written to {output}")


def main() -> None:
    """Console-script entry point: user errors become one sentence and exit status 1."""
    try:
        app()
    except BinarycatError as exc:
        render.fail(str(exc))
    except KeyboardInterrupt:
        render.fail("Interrupted; everything committed so far is kept.", code=130)


from binarycat.cli import eb_cmds as _eb_cmds  # noqa: E402,F401  (registers eb train|predict)
from binarycat.cli import lightcurve_cmds as _lightcurve_cmds  # noqa: E402,F401  (registers lightcurves ingest|fetch)
from binarycat.cli import model_cmds as _model_cmds  # noqa: E402,F401  (registers models list|export|import)
from binarycat.cli import report_cmds as _report_cmds  # noqa: E402,F401  (registers report, label serve)


def _reflow_help(typer_app: typer.Typer) -> None:
    """Join the hard-wrapped lines of every command docstring into paragraphs.

    Rich help keeps a docstring's line breaks, so 100-column source lines would be broken again
    at the terminal's width; the help text reflows once the lines of a paragraph are joined.
    """
    for cmd in typer_app.registered_commands:
        doc = cmd.help or (cmd.callback.__doc__ if cmd.callback else None)
        if doc:
            paragraphs = inspect.cleandoc(doc).split("\n\n")
            cmd.help = "\n\n".join(" ".join(line.strip() for line in p.splitlines()) for p in paragraphs)
    for group in typer_app.registered_groups:
        _reflow_help(group.typer_instance)


_reflow_help(app)
