"""``binarycat models list | export | import``: the trained models, and moving one between catalogues."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from binarycat.cli import render
from binarycat.cli.app import _catalog_dir, _open, app
from binarycat.cli.render import console, err_console

models_app = typer.Typer(help="Trained models: list them, export one to a file, import it elsewhere.",
                         no_args_is_help=True)
app.add_typer(models_app, name="models")


@models_app.command("list")
def models_list(
    ctx: typer.Context,
    fmt: str = typer.Option("table", "--format", "-f", help="table, csv, json, parquet, fits or votable."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write to this file."),
):
    """List the trained models, newest first, with their splits and stored test macro-F1.

    The same as the named query: [cyan]binarycat query models[/]

    Example: [cyan]binarycat models list --format json[/]
    """
    from binarycat.queries.export import write_result
    from binarycat.queries.runner import run_query

    table = run_query(_catalog_dir(ctx), "models", {})
    if fmt == "table" and output is None:
        console.print(render.arrow_table(table))
    else:
        write_result(table, fmt, output)
        if output is not None:
            err_console.print(f"{table.num_rows} models written to {output}")


def _members(result) -> str:
    from binarycat.model.eb_train import EB_MODEL_KIND

    return f"{result.n_split} {'TIC ids' if result.kind == EB_MODEL_KIND else 'sources'} in its splits"


def _report(result, fmt: str, text: str) -> None:
    if fmt == "json":
        print(json.dumps(result.as_dict(), indent=1))
    else:
        console.print(text, highlight=False)


@models_app.command("export")
def models_export(
    ctx: typer.Context,
    model_id: str = typer.Argument(..., help="The model, as `binarycat models list` names it."),
    path: Optional[Path] = typer.Argument(None, help="The archive to write, a zip file \\[default: MODEL_ID.zip]."),
    force: bool = typer.Option(False, "--force", help="Replace PATH if it exists."),
    fmt: str = typer.Option("text", "--format", "-f", help="text or json."),
):
    """Write a model (its row, its split of sources and its checkpoint) to one zip file.

    Carry the file to another machine and add it to that catalogue with `binarycat models import`;
    e.g. train on a GPU machine, then predict and evaluate on a laptop.

    Example: [cyan]binarycat models export resnet34-stem-d52263a176 d52.zip[/]
    """
    from binarycat.model.archive import export_model

    path = path or Path(f"{model_id}.zip")
    with _open(ctx) as cat:
        res = export_model(cat, model_id, path, overwrite=force)
    size = path.stat().st_size / 2**20
    _report(res, fmt, f"Exported {res.model_id} ({res.kind}, {_members(res)}) "
                      f"to {res.path} ({size:.1f} MiB).")


@models_app.command("import")
def models_import(
    ctx: typer.Context,
    path: Path = typer.Argument(..., help="An archive written by `binarycat models export`."),
    fmt: str = typer.Option("text", "--format", "-f", help="text or json."),
):
    """Add an exported model to this catalogue, ready for `predict` and `evaluate`.

    The checkpoint's checksum, the catalogue's schema version and the weights are checked before
    anything is written; importing the same file again changes nothing. The model's split comes
    with it, so `evaluate --on unseen` still leaves out every source it trained on.

    Example: [cyan]binarycat --catalog orion models import d52.zip[/]
    """
    from binarycat.model.archive import import_model

    with _open(ctx, create=True) as cat:
        res = import_model(cat, path)
    verb = "Imported" if res.status == "imported" else "Already in the catalogue, unchanged:"
    _report(res, fmt, f"{verb} {res.model_id} ({res.kind}, {_members(res)}) from {res.path}.")
