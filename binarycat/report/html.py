"""Static HTML of the report: an index page and paginated candidate pages, no JavaScript needed.

Every link and image is a relative path inside the report directory, so the report opens from
disk (``file://``) and can be copied or zipped as a whole. Images carry their pixel size and
``loading="lazy"``, so a page of 50 candidates lays out at once and fetches thumbnails as they
scroll into view.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["CSS", "CandidateCard", "IndexContent", "page_name", "write_candidates_page", "write_index", "esc"]

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: #1b1b1b; background: #fafafa; }
header { background: #1d2330; color: #fff; padding: 10px 20px; }
header a { color: #9fd3ff; }
header h1 { font-size: 19px; margin: 0 0 2px 0; }
main { padding: 8px 20px 40px 20px; }
nav.pages { margin: 10px 0; }
nav.pages a, nav.pages span { display: inline-block; padding: 1px 7px; margin: 1px; border: 1px solid #ccd; border-radius: 3px; text-decoration: none; }
nav.pages span.current { background: #1d2330; color: white; }
table.counts { border-collapse: collapse; margin: 6px 0 14px 0; }
table.counts th, table.counts td { border: 1px solid #ddd; padding: 2px 9px; text-align: right; }
table.counts th:first-child, table.counts td:first-child { text-align: left; }
.figures { display: flex; flex-wrap: wrap; gap: 14px; align-items: flex-start; }
.note { color: #555; font-style: italic; }
section.cand { background: #fff; border: 1px solid #ddd; border-radius: 5px; margin: 10px 0; padding: 8px 12px; }
section.cand h3 { margin: 0 0 6px 0; font-size: 15px; }
section.cand h3 .pos { font-weight: normal; color: #555; margin-left: 10px; }
section.cand h3 .tag { font-weight: normal; background: #ffe2e2; color: #8a1010; border-radius: 3px; padding: 0 6px; margin-left: 10px; }
.row { display: flex; flex-wrap: wrap; gap: 8px; align-items: flex-start; }
.peaks img { border: 1px solid #eee; }
table.verdicts { border-collapse: collapse; font-size: 12px; }
table.verdicts td, table.verdicts th { padding: 0 6px; border-bottom: 1px solid #eee; text-align: left; }
td.flag { color: #b00; font-weight: bold; }
"""


def esc(value) -> str:
    """HTML-escaped text of any value (None becomes an empty string)."""
    return "" if value is None else html.escape(str(value), quote=True)


def page_name(number: int) -> str:
    """File name of candidate page ``number`` (1-based)."""
    return f"candidates-{number:03d}.html"


@dataclass
class CandidateCard:
    """What one candidate's section shows; image paths are relative to the report directory."""

    source_id: str
    key: str
    ra: float
    dec: float
    n_surveys: int
    n_surveys_binary: int
    binary_in: str
    mosaic: str | None
    mosaic_size: tuple[int, int]
    peaks: list[tuple[str, str]] = field(default_factory=list)  # (survey, path)
    peak_size: tuple[int, int] = (0, 0)
    verdicts: list[tuple[str, float | None, bool | None, int | None, str | None]] = field(default_factory=list)


@dataclass
class IndexContent:
    """The index page's parts, already rendered to HTML fragments where they are figures."""

    title: str
    catalog: str
    generated: str
    filter_text: str
    n_shown: int
    n_flagged: int
    n_sources: int
    survey_rows: list[dict]
    sky_image: str | None
    model_html: str
    eclipsing_html: str
    pages: list[tuple[str, int, int, str, str]]  # (file, first index, last index, first id, last id)
    seconds_note: str = ""


def _head(title: str) -> str:
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{esc(title)}</title><link rel=\"stylesheet\" href=\"style.css\"></head><body>\n")


def _nav(current: int, total: int, window: int = 5) -> str:
    if total <= 1:
        return "<nav class=\"pages\"><a href=\"index.html\">index</a></nav>"
    parts = ["<a href=\"index.html\">index</a>"]
    if current > 1:
        parts.append(f"<a href=\"{page_name(current - 1)}\" rel=\"prev\">&laquo; prev</a>")
    shown = sorted({1, total, *range(max(1, current - window), min(total, current + window) + 1)})
    last = 0
    for n in shown:
        if n - last > 1:
            parts.append("<span>&hellip;</span>")
        parts.append(f"<span class=\"current\">{n}</span>" if n == current
                     else f"<a href=\"{page_name(n)}\">{n}</a>")
        last = n
    if current < total:
        parts.append(f"<a href=\"{page_name(current + 1)}\" rel=\"next\">next &raquo;</a>")
    return "<nav class=\"pages\">" + " ".join(parts) + "</nav>"


def _card(c: CandidateCard) -> str:
    surveys_total = f"{c.n_surveys_binary} of {c.n_surveys} predicted surveys"
    out = [f"<section class=\"cand\" id=\"c-{esc(c.key)}\" data-source-id=\"{esc(c.source_id)}\">",
           f"<h3>{esc(c.source_id)}<span class=\"pos\">RA {c.ra:.6f} Dec {c.dec:+.6f}</span>"
           f"<span class=\"tag\">binary in {esc(c.binary_in.replace(',', ', ')) or '?'} ({surveys_total})</span></h3>",
           "<div class=\"row\">"]
    if c.mosaic:
        w, h = c.mosaic_size
        out.append(f"<a href=\"{esc(c.mosaic)}\"><img class=\"mosaic\" src=\"{esc(c.mosaic)}\" width=\"{w}\" "
                   f"height=\"{h}\" loading=\"lazy\" alt=\"stamps of {esc(c.source_id)}\"></a>")
    else:
        out.append("<p class=\"note\">No stamps stored for this source.</p>")
    if c.peaks:
        w, h = c.peak_size
        out.append("<div class=\"row peaks\">")
        for survey, path in c.peaks:
            out.append(f"<a href=\"{esc(path)}\"><img src=\"{esc(path)}\" width=\"{w}\" height=\"{h}\" loading=\"lazy\" "
                       f"alt=\"2-D peak plot of {esc(c.source_id)} in {esc(survey)}\"></a>")
        out.append("</div>")
    out.append("<table class=\"verdicts\"><tr><th>survey</th><th>p_binary</th><th>flag</th><th>label</th></tr>")
    for survey, p, flag, label, labeller in c.verdicts:
        ptxt = "" if p is None else f"{p:.3f}"
        ftxt = "" if flag is None else ("binary" if flag else "no")
        ltxt = "" if label is None else (("binary" if label else "not binary") + (f" ({labeller})" if labeller else ""))
        cls = " class=\"flag\"" if flag else ""
        out.append(f"<tr><td>{esc(survey)}</td><td>{ptxt}</td><td{cls}>{ftxt}</td><td>{esc(ltxt)}</td></tr>")
    out.append("</table></div>")
    out.append("</section>")
    return "\n".join(out)


def write_candidates_page(path: Path, number: int, total: int, cards: list[CandidateCard], *,
                          title: str, first_index: int) -> Path:
    """Write candidate page ``number`` of ``total``: navigation, then one section per candidate."""
    last_index = first_index + len(cards) - 1
    body = [_head(f"{title}: candidates {first_index}-{last_index}"),
            f"<header><h1>{esc(title)}</h1>Candidates {first_index}&ndash;{last_index}, page {number} of {total}. "
            "Stamps on a noise-scaled asinh stretch; blue circle: the survey's PSF FWHM; dashed ring: 2.5\" "
            "(the binary definition); red frame and caption: flagged binary.</header><main>",
            _nav(number, total)]
    body.extend(_card(c) for c in cards)
    body.append(_nav(number, total))
    body.append("</main></body></html>\n")
    path.write_text("\n".join(body), encoding="utf-8")
    return path


def _counts_table(rows: list[dict]) -> str:
    if not rows:
        return "<p class=\"note\">No stamps, predictions or labels yet.</p>"
    cols = [("survey", "survey"), ("sources", "sources with stamps"), ("stamps", "stamps"),
            ("predicted", "predicted"), ("flagged", "flagged binary"), ("labelled_binary", "labelled binary"),
            ("labelled_not", "labelled not binary")]
    out = ["<table class=\"counts\"><tr>" + "".join(f"<th>{esc(t)}</th>" for _, t in cols) + "</tr>"]
    for r in rows:
        out.append("<tr>" + "".join(f"<td>{esc(r[k])}</td>" for k, _ in cols) + "</tr>")
    totals = {k: sum(int(r[k]) for r in rows) for k, _ in cols[2:]}
    out.append("<tr><th>all</th><th></th>" + "".join(f"<th>{totals[k]}</th>" for k, _ in cols[2:]) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def write_index(path: Path, c: IndexContent) -> Path:
    """Write the index page: counts per survey, sky map, model quality, eclipsing binaries, page list."""
    out = [_head(c.title),
           f"<header><h1>{esc(c.title)}</h1>Catalogue <code>{esc(c.catalog)}</code>, generated {esc(c.generated)}"
           f"{esc(c.seconds_note)}.</header><main>",
           f"<p><b>{c.n_shown}</b> candidates shown of <b>{c.n_flagged}</b> sources flagged binary in at least one "
           f"survey, among {c.n_sources} catalogue sources{esc(c.filter_text)}.</p>",
           "<h2>Counts per survey</h2>", _counts_table(c.survey_rows),
           "<h2>Sky</h2>"]
    if c.sky_image:
        out.append(f"<img src=\"{esc(c.sky_image)}\" width=\"600\" height=\"420\" alt=\"sky map\">")
    else:
        out.append("<p class=\"note\">No sources in the catalogue.</p>")
    out.append("<h2>Stamp classifier</h2>")
    out.append(c.model_html)
    if c.eclipsing_html:
        out.append(c.eclipsing_html)
    out.append("<h2>Candidate pages</h2>")
    if c.pages:
        out.append("<table class=\"counts\"><tr><th>page</th><th>candidates</th><th>first</th><th>last</th></tr>")
        for i, (file, a, b, sa, sb) in enumerate(c.pages, 1):
            out.append(f"<tr><td><a href=\"{esc(file)}\">page {i}</a></td><td>{a}&ndash;{b}</td>"
                       f"<td>{esc(sa)}</td><td>{esc(sb)}</td></tr>")
        out.append("</table>")
    else:
        out.append("<p class=\"note\">No candidates: no source is flagged binary"
                   f"{' under this filter' if c.filter_text else ''}.</p>")
    out.append("</main></body></html>\n")
    path.write_text("\n".join(out), encoding="utf-8")
    return path
