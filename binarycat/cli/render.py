"""Rendering for the CLI: rich tables, progress bars that stay quiet in pipes and CI."""

from __future__ import annotations

import os
import sys

import pyarrow as pa
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

console = Console()
if not console.is_terminal and not os.environ.get("COLUMNS"):
    console = Console(width=160)  # pipes and files: wide rows rather than folded cells
err_console = Console(stderr=True)


def interactive() -> bool:
    """Progress bars only on a terminal, never under CI."""
    return err_console.is_terminal and not os.environ.get("CI")


class Bars:
    """One rich Progress for a command; ``bars.factory(stage)`` gives a ``progress(done, total)``."""

    def __init__(self, enabled: bool | None = None):
        enabled = interactive() if enabled is None else enabled
        self.progress = (
            Progress(TextColumn("{task.description:<24}"), BarColumn(), MofNCompleteColumn(),
                     TimeElapsedColumn(), console=err_console, transient=False)
            if enabled else None
        )

    def __enter__(self):
        if self.progress:
            self.progress.start()
        return self

    def __exit__(self, *exc):
        if self.progress:
            self.progress.stop()

    def factory(self, stage: str):
        if self.progress is None:
            return None
        task = None

        def update(done, total, *rest):
            nonlocal task
            if task is None:
                task = self.progress.add_task(stage, total=total)
            counts = next((r for r in rest if isinstance(r, dict)), None)
            description = stage
            if counts:
                description += " " + " ".join(f"{k} {v}" for k, v in counts.items())
            self.progress.update(task, completed=done, total=total, description=description)

        return update


def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def arrow_table(table: pa.Table, *, title: str | None = None, max_rows: int = 50) -> Table:
    """A rich Table of the first ``max_rows`` rows of an Arrow table."""
    t = Table(title=title, show_lines=False, header_style="bold")
    for name in table.column_names:
        t.add_column(name, overflow="fold")
    for row in table.slice(0, max_rows).to_pylist():
        t.add_row(*[_fmt(row[c]) for c in table.column_names])
    if table.num_rows > max_rows:
        t.caption = f"{max_rows} of {table.num_rows} rows shown"
    return t


def fail(message: str, code: int = 1):
    """Print one sentence to stderr and exit non-zero."""
    err_console.print(f"[bold red]Error:[/] {message}", highlight=False, soft_wrap=True)
    sys.exit(code)
