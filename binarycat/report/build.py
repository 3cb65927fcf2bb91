"""`build_report`: the static HTML report of a catalogue's binary candidates.

Output directory layout::

    index.html             counts per survey, sky map, model quality, eclipsing binaries, page list
    candidates-001.html    page_size candidates per page, each with its mosaic and peak plots
    style.css
    img/sky.png, img/confusion.png, img/reliability.png
    img/mosaic/<key>.png   one per candidate: every survey's stamp side by side
    img/peaks/<key>-<survey>.png   one 2-D peak plot per candidate and survey

Stamps are read several pages at a time (`load_stamp_arrays` reads each shard once per
batch of up to 4,000 stamps), cut to the central field shown, and drawn by `MosaicRenderer`, in worker processes when there
are enough candidates to pay for starting them. Earlier ``candidates-*.html`` pages and
images in ``img/mosaic`` and ``img/peaks`` are removed first, so a smaller re-run leaves no
stale page behind; nothing else in the directory is touched.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import multiprocessing
import os
import re
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import duckdb
import numpy as np

from binarycat.catalog.arrays import load_stamp_arrays
from binarycat.catalog.store import Catalog
from binarycat.errors import BinarycatError
from binarycat.report import html as pages
from binarycat.report import plots
from binarycat.report.data import (
    Candidate, StampInfo, count_flagged_sources, model_evaluation, select_candidates, sky_positions,
    stamps_of_sources, survey_counts, table_exists,
)

__all__ = ["ReportResult", "build_report", "DEFAULT_LIMIT", "DEFAULT_PAGE_SIZE"]

DEFAULT_LIMIT = 1000
DEFAULT_PAGE_SIZE = 50
_MIN_PER_WORKER = 40  # candidates a worker process must get before starting one pays off
_STAMPS_PER_READ = 4000
MAX_ECLIPSING_PLOTS = 200  # light-curve figures drawn on the index page  # stamps read from the Parquet store in one go (each shard read once per batch)


@dataclass
class ReportResult:
    """What `build_report` wrote.

    Attributes
    ----------
    out_dir : Path
        The report directory.
    index : Path
        ``out_dir/index.html``.
    pages : list of Path
        Candidate pages, in order.
    n_candidates : int
        Candidates in the report (after ``where`` and ``limit``).
    n_flagged : int
        Sources flagged binary in at least one survey, before the filter and limit.
    n_images : int
        PNG files written.
    model_id : str or None
        The stamp classifier whose confusion matrix and reliability diagram are shown.
    eclipsing : bool
        Whether the eclipsing-binary section was written.
    seconds : float
        Wall time.
    """

    out_dir: Path
    index: Path
    pages: list[Path] = field(default_factory=list)
    n_candidates: int = 0
    n_flagged: int = 0
    n_images: int = 0
    model_id: str | None = None
    eclipsing: bool = False
    seconds: float = 0.0


def file_key(text: str) -> str:
    """A file-name-safe key for a source id or survey name, unique for distinct inputs."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", text)[:60]
    if safe != text or safe.startswith("."):
        safe = f"{safe}-{hashlib.sha1(text.encode()).hexdigest()[:8]}"
    return safe


# -- rendering jobs (run here or in worker processes) ---------------------------------------
_RENDERER: plots.MosaicRenderer | None = None


def _render_jobs(jobs: list[tuple], dpi: int) -> int:
    """Draw ``(mosaic_path, title, panels, peak_paths)`` jobs; returns the number of PNGs."""
    global _RENDERER
    if _RENDERER is None or _RENDERER.dpi != dpi:
        _RENDERER = plots.MosaicRenderer(dpi=dpi)
    n = 0
    for mosaic_path, title, panels, peak_paths in jobs:
        _RENDERER.mosaic(panels, mosaic_path, title=title)
        n += 1
        for panel, peak_path in zip(panels, peak_paths):
            _RENDERER.peak_plot(panel, peak_path)
            n += 1
    return n


def _clean_previous(out_dir: Path) -> None:
    for p in out_dir.glob("candidates-*.html"):
        p.unlink()
    for sub in ("mosaic", "peaks", "eclipsing"):
        for p in (out_dir / "img" / sub).glob("*.png"):
            p.unlink()


def _panel(info: StampInfo, data) -> plots.StampPanel:
    return plots.StampPanel(info.survey, data, info.pixel_scale_arcsec, info.fwhm_arcsec,
                            info.p_binary, info.flag, info.label)


def _pages_with_panels(catalog: Catalog, chunks: list[list[Candidate]], field_arcsec: float | None):
    """Yield ``(chunk, stamps, panels)`` page by page, reading the stamps of several pages at once.

    `load_stamp_arrays` reads every shard it touches whole, so stamps are read for up to
    `_STAMPS_PER_READ` at a time rather than per page; each is cut to the field shown and
    copied at once, so the shard buffers are freed before the next read.
    """
    i = 0
    while i < len(chunks):
        batch, n = [], 0
        while i < len(chunks) and n < _STAMPS_PER_READ:
            stamps = stamps_of_sources(catalog, [c.source_id for c in chunks[i]])
            batch.append((chunks[i], stamps))
            n += sum(len(v) for v in stamps.values())
            i += 1
        infos = [s for _, stamps in batch for v in stamps.values() for s in v]
        arrays = load_stamp_arrays(catalog, [s.stamp_id for s in infos]) if infos else []
        panels = {}
        for info, data in zip(infos, arrays):
            panel = _panel(info, data).cropped(field_arcsec)
            panel.data = np.array(panel.data, dtype=np.float32, copy=True)
            panels[info.stamp_id] = panel
        del arrays
        for chunk, stamps in batch:
            yield chunk, stamps, panels


def _page_jobs(out_dir: Path, chunk: list[Candidate], stamps: dict, panels_by_stamp: dict, dpi: int,
               panel_inches: float) -> tuple[list[tuple], list[pages.CandidateCard]]:
    jobs, cards = [], []
    for c in chunk:
        key = file_key(c.source_id)
        infos = stamps[c.source_id]
        panels = [panels_by_stamp[s.stamp_id] for s in infos]
        mosaic = f"img/mosaic/{key}.png" if panels else None
        peak_paths = [f"img/peaks/{key}-{file_key(s.survey)}.png" for s in infos]
        if panels:
            title = f"{c.source_id}   RA {c.ra:.5f}  Dec {c.dec:+.5f}"
            jobs.append((str(out_dir / mosaic), title, panels, [str(out_dir / p) for p in peak_paths]))
        cards.append(pages.CandidateCard(
            source_id=c.source_id, key=key, ra=c.ra, dec=c.dec, n_surveys=c.n_surveys,
            n_surveys_binary=c.n_surveys_binary, binary_in=c.binary_in, mosaic=mosaic,
            mosaic_size=(round(panel_inches * len(panels) * dpi), round((panel_inches + 0.42) * dpi)),
            peaks=[(s.survey, p) for s, p in zip(infos, peak_paths)],
            peak_size=(round(2.1 * dpi), round(2.1 * dpi)),
            verdicts=[(s.survey, s.p_binary, s.flag, s.label, s.labeller) for s in infos],
        ))
    return jobs, cards


def _when(value) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if hasattr(value, "strftime") else str(value)


def _model_section(catalog: Catalog, img_dir: Path) -> tuple[str, str | None, int]:
    ev = model_evaluation(catalog)
    if ev is None:
        return ("<p class=\"note\">No trained stamp classifier in this catalogue, so there is no confusion matrix "
                "or reliability diagram yet; run <code>binarycat train</code> and <code>binarycat predict</code>."
                "</p>"), None, 0
    test = ev.metrics.get("test") or {}
    macro = (test.get("macro avg") or {}).get("f1")
    parts = [f"<p>Model <code>{pages.esc(ev.model_id)}</code> trained on {pages.esc(', '.join(ev.surveys))} "
             f"({pages.esc(_when(ev.created_at))})"]
    if test:
        parts.append(f": test accuracy {test.get('accuracy', 0):.3f}, macro F1 {macro or 0:.3f}, "
                     f"{ev.metrics.get('n_test', '?')} test stamps")
    parts.append(".</p><div class=\"figures\">")
    n = 0
    if ev.confusion:
        plots.render_confusion(ev.confusion, img_dir / "confusion.png")
        parts.append("<img src=\"img/confusion.png\" width=\"340\" height=\"300\" alt=\"confusion matrix\">")
        n += 1
    else:
        parts.append("<p class=\"note\">The model's stored metrics hold no confusion matrix.</p>")
    if len(ev.p_test):
        plots.render_reliability(ev.p_test, ev.y_test, img_dir / "reliability.png",
                                 title=f"Reliability ({len(ev.p_test)} test stamps)")
        parts.append("<img src=\"img/reliability.png\" width=\"340\" height=\"300\" alt=\"reliability diagram\">")
        n += 1
    else:
        parts.append("<p class=\"note\">No stored predictions of this model on its labelled test split, so no "
                     "reliability diagram; run <code>binarycat predict</code>.</p>")
    parts.append("</div>")
    return "".join(parts), ev.model_id, n


def _eclipsing_section(catalog: Catalog, out_dir: Path, candidates: list[Candidate],
                       limit: int = MAX_ECLIPSING_PLOTS) -> str:
    """The eclipsing-binary part of the index page, or "" when there is nothing to show.

    Lists the sources flagged eclipsing (TESS rows of ``binary_flags``), most probable first,
    and for each (at most ``limit``) draws its light curve (good cadences, divided by the
    median), its GLS periodogram and the curve folded at the periodogram's peak and twice it
    (`plots.render_eclipsing`). Skipped cleanly while the catalogue has no ``eb_predictions``
    or no eclipsing flags.
    """
    from binarycat.catalog.lightcurve_store import load_lightcurves
    from binarycat.model.periodogram import CALNET_PERIODS, calnet_periodogram

    try:
        if not table_exists(catalog, "eb_predictions"):
            return ""
        n_predicted = catalog.sql("select count(*) from eb_predictions").fetchone()[0]
        if not n_predicted:
            return ""
        rows = catalog.sql(
            """select f.source_id, f.p_binary, f.stamp_id, l.tic_id, l.sector, l.blended,
                      e.best_period_days,
                      exists (select 1 from binary_flags v where v.source_id = f.source_id
                              and v.survey <> 'TESS' and v.flag) as visual
               from binary_flags f
               join lightcurves l on l.lightcurve_id = f.stamp_id
               left join eb_predictions e on e.lightcurve_id = f.stamp_id and e.model_id = f.model_id
               where f.survey = 'TESS' and f.flag
               order by f.p_binary desc, f.source_id""").fetchall()
    except duckdb.Error:
        return ""
    in_report = {c.source_id for c in candidates}
    out = [f"<h2>Eclipsing binaries (TESS)</h2><p>{len(rows)} sources flagged eclipsing by CALNet "
           f"({n_predicted} light-curve predictions); {sum(r[7] for r in rows)} of them are also visual "
           f"pairs (candidate triples).{f' The {limit} most probable are drawn.' if len(rows) > limit else ''}"
           "</p>"]
    img_dir = out_dir / "img" / "eclipsing"
    img_dir.mkdir(parents=True, exist_ok=True)
    drawn = rows[:limit]
    arrays = load_lightcurves(catalog, [r[2] for r in drawn]) if drawn else []
    out.append('<table class="counts"><tr><th>source</th><th>TIC</th><th>sector</th><th>P(EB)</th>'
               "<th>GLS period (d)</th><th>visual pair</th><th>blended</th></tr>")
    for r in rows:
        sid = pages.esc(r[0])
        link = f'<a href="#eb-{sid}">{sid}</a>' if r in drawn else sid
        out.append(f"<tr><td>{link}</td><td>{r[3]}</td><td>{r[4]}</td><td>{r[1]:.3f}</td>"
                   f"<td>{'' if r[6] is None else f'{r[6]:.4g}'}</td><td>{'yes' if r[7] else ''}</td>"
                   f"<td>{'yes' if r[5] else ''}</td></tr>")
    out.append("</table>")
    for r, lc in zip(drawn, arrays):
        good = (lc.quality == 0) & np.isfinite(lc.time) & np.isfinite(lc.flux) & np.isfinite(lc.flux_err) \
            & (lc.flux_err > 0)
        t, f, e = lc.time[good], lc.flux[good].astype(float), lc.flux_err[good].astype(float)
        med = np.median(f) if f.size else 1.0
        power = calnet_periodogram(t, f / med, e / med) if f.size > 10 else np.zeros(len(CALNET_PERIODS))
        best = float(r[6]) if r[6] else float(CALNET_PERIODS[int(np.argmax(power))])
        name = f"{file_key(r[0])}.png"
        plots.render_eclipsing(t, f / med, CALNET_PERIODS, power, best, img_dir / name,
                               title=f"{r[0]}  TIC {r[3]} sector {r[4]}  P(EB) {r[1]:.3f}")
        note = " (also in the candidate pages)" if r[0] in in_report else ""
        out.append(f'<h3 id="eb-{pages.esc(r[0])}">{pages.esc(r[0])}{note}</h3>'
                   f'<img loading="lazy" src="img/eclipsing/{name}" alt="light curve of {pages.esc(r[0])}">')
    return "".join(out)


def _workers(requested: int | None, n_candidates: int) -> int:
    if requested is not None:
        return max(1, int(requested))
    auto = min(4, os.cpu_count() or 1)
    return max(1, min(auto, n_candidates // _MIN_PER_WORKER))


def build_report(
    catalog: Catalog,
    out_dir: str | os.PathLike,
    *,
    where: str | None = None,
    limit: int | None = DEFAULT_LIMIT,
    page_size: int = DEFAULT_PAGE_SIZE,
    dpi: int = 80,
    workers: int | None = None,
    title: str = "binarycat report",
    progress: Callable[[int, int], None] | None = None,
) -> ReportResult:
    """Write the static HTML report of a catalogue's binary candidates (see the module docstring).

    Parameters
    ----------
    catalog : Catalog
        An open catalogue; read-only is enough and is what the CLI uses.
    out_dir : path
        Report directory, created if needed.
    where : str, optional
        SQL boolean filter over flagged (source, survey) rows; see
        `binarycat.report.data.WHERE_COLUMNS`, e.g. ``"survey = 'HST' and p_binary > 0.9"``.
    limit : int or None
        At most this many candidates (most flagging surveys first); None for all.
    page_size : int
        Candidates per page.
    dpi : int
        Resolution of the thumbnails.
    workers : int, optional
        Processes drawing images; default: up to 4 (the CPU count), one per 40 candidates.
    title : str
        Page title.
    progress : callable, optional
        ``progress(done, total)`` after each page of candidates.

    Returns
    -------
    ReportResult

    Raises
    ------
    BinarycatError
        For a bad ``where`` filter, a bad ``page_size`` or ``limit``, or an output path that
        is not a directory.

    Examples
    --------
    >>> with Catalog("orion", read_only=True) as cat:                  # doctest: +SKIP
    ...     res = build_report(cat, "orion-report", where="survey = 'HST'")
    >>> res.index                                                       # doctest: +SKIP
    PosixPath('orion-report/index.html')
    """
    t0 = time.perf_counter()
    if page_size < 1:
        raise BinarycatError(f"page_size must be at least 1, not {page_size}.")
    if limit is not None and limit < 1:
        raise BinarycatError(f"limit must be at least 1, not {limit}.")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise BinarycatError(f"{out} exists and is not a directory.")
    candidates = select_candidates(catalog, where, limit)
    img = out / "img"
    for d in (img / "mosaic", img / "peaks"):
        d.mkdir(parents=True, exist_ok=True)
    _clean_previous(out)
    (out / "style.css").write_text(pages.CSS, encoding="utf-8")
    result = ReportResult(out_dir=out, index=out / "index.html", n_candidates=len(candidates))

    chunks = [candidates[i : i + page_size] for i in range(0, len(candidates), page_size)]
    n_workers = _workers(workers, len(candidates))
    field_arcsec = plots.FIELD_ARCSEC
    panel_inches = plots.MosaicRenderer().panel_inches
    page_rows = []
    futures = []
    pool = None
    if n_workers > 1 and chunks:
        pool = ProcessPoolExecutor(n_workers, mp_context=multiprocessing.get_context("spawn"))
    try:
        done = 0
        for number, (chunk, stamps, panels) in enumerate(_pages_with_panels(catalog, chunks, field_arcsec), 1):
            jobs, cards = _page_jobs(out, chunk, stamps, panels, dpi, panel_inches)
            if pool is None:
                result.n_images += _render_jobs(jobs, dpi)
            else:  # split a page among the workers so they stay busy
                step = max(1, -(-len(jobs) // n_workers))
                futures.extend(pool.submit(_render_jobs, jobs[i : i + step], dpi) for i in range(0, len(jobs), step))
            first = (number - 1) * page_size + 1
            path = pages.write_candidates_page(out / pages.page_name(number), number, len(chunks), cards,
                                               title=title, first_index=first)
            result.pages.append(path)
            page_rows.append((path.name, first, first + len(chunk) - 1, chunk[0].source_id, chunk[-1].source_id))
            done += len(chunk)
            if progress and pool is None:
                progress(done, len(candidates))
        for i, f in enumerate(futures, 1):
            result.n_images += f.result()
            if progress:
                progress(round(len(candidates) * i / len(futures)), len(candidates))
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)

    ra, dec = sky_positions(catalog)
    sky = None
    if ra.size or candidates:
        plots.render_sky(ra, dec, [c.ra for c in candidates], [c.dec for c in candidates], img / "sky.png")
        sky = "img/sky.png"
        result.n_images += 1
    model_html, result.model_id, n_model_images = _model_section(catalog, img)
    result.n_images += n_model_images
    eclipsing = _eclipsing_section(catalog, out, candidates)
    result.eclipsing = bool(eclipsing)
    result.seconds = time.perf_counter() - t0
    pages.write_index(result.index, pages.IndexContent(
        title=title, catalog=str(catalog.path), generated=_dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
        filter_text=f" (filter: {where})" if where else "", n_shown=len(candidates),
        n_flagged=count_flagged_sources(catalog), n_sources=int(ra.size), survey_rows=survey_counts(catalog),
        sky_image=sky, model_html=model_html, eclipsing_html=eclipsing, pages=page_rows,
        seconds_note=f" in {result.seconds:.1f} s",
    ))
    result.n_flagged = count_flagged_sources(catalog)
    result.seconds = time.perf_counter() - t0
    return result
