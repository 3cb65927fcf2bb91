"""CLI verbs for TESS light curves: ``binarycat lightcurves ingest | fetch``.

Registered on the main app by the import at the end of `binarycat.cli.app`.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from binarycat.cli.app import _open, app
from binarycat.cli.render import Bars, console, err_console
from binarycat.errors import BinarycatError

lightcurves_app = typer.Typer(help="TESS light curves: ingest SPOC files, fetch them from MAST.", no_args_is_help=True)
app.add_typer(lightcurves_app, name="lightcurves")


def _print_tie_counts(blended: list, unmatched: list) -> None:
    if blended:
        console.print(f"{len(blended)} share a TESS pixel (21\") with other catalogue sources (blended).")
    if unmatched:
        console.print(f"{len(unmatched)} lie farther than the match radius from every catalogue source "
                      "(stored without a source).")


@lightcurves_app.command("ingest")
def lightcurves_ingest(
    ctx: typer.Context,
    paths: List[Path] = typer.Argument(..., help="SPOC *_lc.fits files or folders (searched recursively)."),
    match_radius: float = typer.Option(10.5, "--match-radius", help="Largest target-to-source distance, arcsec."),
):
    """Read TESS SPOC 2-minute light-curve files and store one row per TIC and sector.

    Each light curve is tied to the nearest catalogue source within the match radius (TESS
    pixels are 21" wide, so several sources may share one: those are counted as blended).
    Bad files (not FITS, truncated, fewer than 2,000 good cadences) are reported one by one
    and the good ones are still stored; re-running adds nothing. Exit status 2 when some
    files could not be used, 1 when none could.

    Example: [cyan]binarycat lightcurves ingest tess/s0006/ --match-radius 5[/]
    """
    from binarycat.ingest.lightcurves import ingest_lightcurve_files

    with _open(ctx, create=True) as cat, Bars() as bars:
        res = ingest_lightcurve_files(cat, paths, match_radius_arcsec=match_radius,
                                      progress=bars.factory("ingest light curves"))
    n_files = len(res.added) + len(res.existing) + len(res.failed)
    for path, reason in res.failed:
        err_console.print(f"[yellow]bad file[/] {path}: {reason}", highlight=False)
    if res.failed and not (res.added or res.existing):
        raise BinarycatError(f"None of the {n_files} file(s) is a usable TESS light curve; nothing was stored.")
    console.print(f"{len(res.added)} light curves stored, {len(res.existing)} already present, "
                  f"{len(res.failed)} bad files ({n_files} files read).")
    _print_tie_counts(res.blended, res.unmatched)
    if res.failed:
        raise typer.Exit(2)


@lightcurves_app.command("fetch")
def lightcurves_fetch(
    ctx: typer.Context,
    tic: Optional[List[str]] = typer.Option(None, "--tic", help="TIC id; repeat, or separate with commas."),
    where: Optional[str] = typer.Option(
        None, help="SQL condition on sources (alias s), e.g. \"s.dec > -6\" \\[default: every source]."),
    limit: Optional[int] = typer.Option(None, min=1, help="At most this many targets this run."),
    refresh: bool = typer.Option(False, "--refresh", help="Ask again about targets done or not covered before."),
    radius: float = typer.Option(10.5, help="Search radius around each source, arcsec (with --where)."),
    match_radius: float = typer.Option(10.5, "--match-radius", help="Largest target-to-source distance, arcsec."),
    mast_url: Optional[str] = typer.Option(None, "--mast-url", help="MAST portal URL (mirror or test server)."),
    download_dir: Optional[Path] = typer.Option(
        None, "--download-dir", help="Where files go \\[default: CATALOG/downloads/tess]."),
    keep_downloads: bool = typer.Option(True, "--keep-downloads/--delete-downloads",
                                        help="Keep the FITS files once stored."),
    retries: int = typer.Option(3, min=0, help="Retries per query and download after the first attempt."),
    timeout: float = typer.Option(60.0, help="Seconds per request."),
    backoff: float = typer.Option(1.0, help="First retry delay, seconds (doubles each time)."),
):
    """Download TESS 2-minute SPOC light curves from MAST (astroquery) and store them.

    Targets are TIC ids (--tic), or catalogue sources (--where, default all) searched by
    position. Resumable: stop it at any time and run it again; stored sectors are not
    downloaded again, and targets done or without 2-minute data are not asked about again
    (--refresh asks). Failures are retried with backoff, listed at the end and kept in
    table fetch_failures. Exit status 2 when something could not be fetched.

    Example: [cyan]binarycat lightcurves fetch --tic 25155310 --tic 307210830[/]
    """
    from rich.table import Table as RichTable

    from binarycat.ingest.mast import fetch_lightcurves

    tic_ids = [t.strip() for item in tic for t in item.split(",") if t.strip()] if tic else None
    with _open(ctx, create=True) as cat, Bars() as bars:
        rep = fetch_lightcurves(cat, tic_ids=tic_ids, where=where, limit=limit, refresh=refresh,
                                radius_arcsec=radius, match_radius_arcsec=match_radius, download_dir=download_dir,
                                keep_downloads=keep_downloads, server=mast_url, retries=retries, backoff=backoff,
                                timeout=timeout, progress=bars.factory("fetch TESS light curves"))
    summary = RichTable(title="fetch TESS light curves", show_header=True, header_style="bold")
    for col in ("targets", "skipped", "stored", "already present", "not covered", "failed", "downloads",
                "requests"):
        summary.add_column(col, justify="right")
    summary.add_row(str(rep.selected), str(len(rep.skipped)), str(len(rep.added)), str(len(rep.existing)),
                    str(len(rep.not_covered)), str(len({t for t, _ in rep.failed})), str(rep.downloads),
                    str(rep.requests))
    console.print(summary)
    if rep.skipped:
        console.print(f"{len(rep.skipped)} target(s) skipped: done or without 2-min data on an earlier run "
                      "(--refresh asks again).")
    _print_tie_counts(rep.blended, rep.unmatched)
    for target, reason in rep.failed:
        err_console.print(f"[yellow]failed[/] {target}: {reason}", highlight=False)
    if not rep.ok:
        raise typer.Exit(2)
