"""Looking at the data: the static HTML report and the labelling page.

- `build_report` writes a report of the binary candidates (stamp mosaics across surveys,
  2-D peak plots, confusion matrix, reliability diagram, sky map, counts per survey) that
  opens from disk without a server.
- `binarycat.report.labelling` serves a page on 127.0.0.1 that shows one source's stamps
  at a time and writes each answer (binary / not / skip / undo) to ``labels`` at once.

This package reads the catalogue (``binarycat.catalog``) and draws with matplotlib's Agg
backend; it never imports ``binarycat.cli``.
"""

from binarycat.report.build import DEFAULT_LIMIT, DEFAULT_PAGE_SIZE, ReportResult, build_report

__all__ = ["DEFAULT_LIMIT", "DEFAULT_PAGE_SIZE", "ReportResult", "build_report"]
