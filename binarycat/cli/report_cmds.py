"""``binarycat report`` and ``binarycat label serve``: looking at the data, in a report or in the browser."""

from __future__ import annotations

import getpass
import os
import signal
from pathlib import Path
from typing import Optional

import typer

from binarycat.catalog.store import Catalog
from binarycat.cli.app import _catalog_dir, _open, app, label_app
from binarycat.cli.render import Bars, console, err_console

label_app.info.help = "Labels for training: import from files, or label stamps in the browser."


@app.command("report")
def report(
    ctx: typer.Context,
    out: Path = typer.Option(Path("binarycat-report"), "--out", "-o", help="Report directory."),
    where: Optional[str] = typer.Option(
        None, help="SQL filter over flagged (source, survey) rows: source_id, survey, p_binary, label, "
                   "ra, dec, n_surveys_binary, binary_in, model_id, e.g. \"survey = 'HST' and p_binary > 0.9\"."),
    limit: int = typer.Option(1000, min=1, help="At most this many candidates (most flagging surveys first)."),
    page_size: int = typer.Option(50, min=1, help="Candidates per page."),
    dpi: int = typer.Option(80, min=30, max=300, help="Resolution of the thumbnails."),
    workers: int = typer.Option(0, min=0, help="Processes drawing images (0: automatic)."),
):
    """Write a static HTML report of the binary candidates that opens from disk.

    Per candidate: its stacked stamps across every survey on an asinh stretch, with PSF size,
    p_binary and label, and a 2-D peak plot per survey. On the index page: counts per survey,
    a sky map, the newest model's confusion matrix and reliability diagram.

    Example: [cyan]binarycat report --out orion-report --where "survey = 'HST'" --limit 200[/]
    """
    from binarycat.report import build_report

    with Catalog(_catalog_dir(ctx), create=False, read_only=True) as cat, Bars() as bars:
        res = build_report(cat, out, where=where, limit=limit, page_size=page_size, dpi=dpi,
                           workers=workers or None, progress=bars.factory("report"))
    console.print(f"Report of {res.n_candidates} candidates (of {res.n_flagged} flagged sources) on "
                  f"{len(res.pages)} page(s), {res.n_images} images, written in {res.seconds:.1f}s.")
    console.print(f"Open [bold]{res.index.resolve().as_uri()}[/]", highlight=False, soft_wrap=True)
    if res.model_id is None:
        err_console.print("[yellow]No trained stamp classifier yet: no confusion matrix or reliability diagram.[/]")


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _default_labeller() -> str:
    try:
        return os.environ.get("USER") or getpass.getuser()
    except Exception:  # getpass raises when no user name can be found at all
        return "anonymous"


@label_app.command("serve")
def label_serve(
    ctx: typer.Context,
    port: int = typer.Option(8765, min=0, max=65535, help="Port on 127.0.0.1 (0: any free port)."),
    survey: Optional[str] = typer.Option(None, "--survey", "-s", help="Only this survey's stamps."),
    queue: Optional[str] = typer.Option(
        None, help="uncertain (model least sure first), unlabelled (random) or random (all you have not "
                   "labelled) \\[default: uncertain with a trained model, else unlabelled]."),
    labeller: Optional[str] = typer.Option(None, help="Your name in labels.labeller \\[default: $USER]."),
    seed: int = typer.Option(0, help="Seed of the random orders."),
    open_browser: bool = typer.Option(False, "--open", help="Open the page in the default browser."),
):
    """Label stamps in the browser: one source at a time, b binary, n not, s skip, u undo.

    Serves a page on 127.0.0.1 that shows a source's stamps across surveys at one scale with
    each survey's PSF drawn. Every answer is written to the labels table at once (labeller and
    time), so stopping the server with Ctrl-C (or kill) loses nothing. The catalogue stays
    locked by this process while it runs.

    Example: [cyan]binarycat label serve --survey HST --queue uncertain --labeller ada[/]
    """
    from binarycat.ingest.surveys import get_survey
    from binarycat.report.labelling import serve_labels

    name = get_survey(survey).name if survey else None
    who = labeller or _default_labeller()
    with _open(ctx) as cat:
        server = serve_labels(cat, who, port=port, queue=queue, survey=name, seed=seed)
        session = server.session
        console.print(f"Labelling page for [bold]{who}[/] at [bold cyan]{server.url}[/] "
                      f"(queue {session.queue_name}, {len(session.items)} stamps"
                      f"{', survey ' + name if name else ''}). Press Ctrl-C to stop.", highlight=False)
        if open_browser:
            import webbrowser

            webbrowser.open(server.url)
        previous = signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops it as cleanly as Ctrl-C
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)
            server.server_close()
        answered = sum(1 for d in session.history if d.answer != "s")
    console.print(f"\nStopped. {answered} label(s) stored this session by {who}.")
