"""The static HTML report: every candidate on a page, every link and image a file, filters, no model."""

from __future__ import annotations

import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import pytest

import report_catalog
from binarycat.catalog.store import Catalog
from binarycat.errors import BinarycatError
from binarycat.report import build_report
from binarycat.report.build import _eclipsing_section, file_key
from binarycat.report.data import STAMP_MODEL_KIND, select_candidates
from binarycat.report.plots import Peak, StampPanel, display_norm, find_peaks, peak_summary, reliability_curve

BINARYCAT = shutil.which("binarycat") or f"{sys.executable} -m binarycat.cli.app"


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs: list[tuple[str, str]] = []
        self.sources: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for key in ("src", "href"):
            if a.get(key):
                self.refs.append((tag, a[key]))
        if tag == "section" and "data-source-id" in a:
            self.sources.append(a["data-source-id"])


def parse(path: Path) -> _Links:
    p = _Links()
    p.feed(path.read_text(encoding="utf-8"))
    return p


def local_targets(page: Path, links: _Links) -> list[Path]:
    out = []
    for _, ref in links.refs:
        url = urlparse(ref)
        if url.scheme or url.netloc or ref.startswith("#"):
            continue
        out.append(page.parent / unquote(url.path))
    return out


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    with Catalog(root / "cat", create=True) as cat:
        ids = report_catalog.build(cat, 8)
    with Catalog(root / "cat", create=False, read_only=True) as cat:
        res = build_report(cat, root / "out", page_size=3, workers=1)
    return root, ids, res


def test_every_candidate_and_every_link_resolves(built):
    root, ids, res = built
    expected = report_catalog.candidates(ids)
    assert res.n_candidates == len(expected) == res.n_flagged
    assert len(res.pages) == 2 and res.index == root / "out" / "index.html"
    seen = []
    for page in [res.index, *res.pages]:
        links = parse(page)
        seen += links.sources
        targets = local_targets(page, links)
        assert targets, page
        missing = [t for t in targets if not t.is_file()]
        assert not missing, f"{page.name} links to missing files {missing[:3]}"
    assert sorted(seen) == sorted(expected)  # each candidate once, the odd id included
    assert report_catalog.ODD_ID in expected


def test_candidate_sections_show_mosaic_peaks_and_verdicts(built):
    root, ids, res = built
    text = "\n".join(p.read_text() for p in res.pages)
    odd = file_key(report_catalog.ODD_ID)
    assert "/" not in odd and " " not in odd
    assert f'src="img/mosaic/{odd}.png"' in text
    for survey in report_catalog.SURVEYS:
        assert f'src="img/peaks/{odd}-{survey}.png"' in text
    assert "J0535-05 a/b" in text and "binary (simulator)" in text
    png = (root / "out" / "img" / "mosaic" / f"{odd}.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    # one mosaic per candidate, one peak plot per candidate and survey, sky + confusion + reliability
    assert res.n_images == len(report_catalog.candidates(ids)) * (1 + len(report_catalog.SURVEYS)) + 3


def test_index_has_counts_sky_and_model_quality(built):
    _, _, res = built
    text = res.index.read_text()
    for needle in ("img/sky.png", "img/confusion.png", "img/reliability.png", report_catalog.MODEL_ID,
                   "Counts per survey", "PanSTARRS", "candidates-002.html"):
        assert needle in text
    assert res.model_id == report_catalog.MODEL_ID
    assert not res.eclipsing and "Eclipsing" not in text  # no eb_predictions rows: section skipped


def test_where_filter_and_limit(tmp_path):
    with Catalog(tmp_path / "cat", create=True) as cat:
        ids = report_catalog.build(cat, 8)
        picked = [c.source_id for c in select_candidates(cat, "survey = 'HST' and p_binary >= 0.86")]
        assert picked == ["S06", "S04"]  # highest p first
        assert [c.source_id for c in select_candidates(cat, "label is null")] == ["S06", "S04"]
        assert len(select_candidates(cat, None, limit=2)) == 2
        res = build_report(cat, tmp_path / "out", where="survey = 'HST' and p_binary >= 0.86", workers=1)
        assert res.n_candidates == 2 and "filter: survey = &#x27;HST&#x27;" in res.index.read_text()
        # a smaller re-run leaves no stale page or image behind
        build_report(cat, tmp_path / "out", limit=4, page_size=1, workers=1)
        assert len(list((tmp_path / "out").glob("candidates-*.html"))) == 4
        res = build_report(cat, tmp_path / "out", limit=1, page_size=1, workers=1)
        assert [p.name for p in (tmp_path / "out").glob("candidates-*.html")] == ["candidates-001.html"]
        assert len(list((tmp_path / "out" / "img" / "mosaic").glob("*.png"))) == 1
        assert ids


@pytest.mark.parametrize("where, words", [
    ("p_binary >", "not one valid SQL expression"),
    ("no_such_column = 1", "may use the columns"),
    ("true; drop table sources", "not one valid SQL expression"),
    ("1) union all select 'x', 0, 0, 0, 0, '', 0; --", "not one valid SQL expression"),
    ("p_binary > 0.5 -- and a comment", None),
])
def test_bad_filters_are_one_sentence_and_change_nothing(catalog, where, words):
    report_catalog.build(catalog, 4)
    if words is None:
        assert len(select_candidates(catalog, where)) == 2
    else:
        with pytest.raises(BinarycatError, match=words):
            select_candidates(catalog, where)
    assert catalog.table_count("sources") == 4


def test_without_model_or_predictions(tmp_path):
    with Catalog(tmp_path / "cat", create=True) as cat:
        report_catalog.build(cat, 4, model=False, predictions=False)
        res = build_report(cat, tmp_path / "out", workers=1)
        assert _eclipsing_section(cat, tmp_path, []) == ""
    text = res.index.read_text()
    assert res.n_candidates == 0 and res.model_id is None and res.pages == []
    assert "No trained stamp classifier" in text and "No candidates" in text
    assert all(t.is_file() for t in local_targets(res.index, parse(res.index)))


def test_eclipsing_section_draws_flagged_light_curves(catalog, tmp_path):
    from binarycat.catalog.flags import rebuild_binary_flags
    from binarycat.ingest.lightcurves import ingest_lightcurves
    from binarycat.ingest.simulate_lightcurves import simulate_lightcurves

    report_catalog.build(catalog, 4)
    sources = catalog.sql("select source_id, ra, dec from sources order by source_id limit 2").fetchall()
    targets = [{"source_id": s, "ra": ra, "dec": dec, "tic_id": 900 + i, "tessmag": 10.0}
               for i, (s, ra, dec) in enumerate(sources)]
    ingest_lightcurves(catalog, simulate_lightcurves(targets, seed=3, eb_fraction=1.0).lightcurves)
    catalog.sql("insert into eb_predictions (lightcurve_id, model_id, tic_id, sector, source_id, p_binary, flag, "
                "threshold, best_period_days) values "
                f"('TIC900-s0001', 'eb-model', 900, 1, '{sources[0][0]}', 0.97, true, 0.5, 1.5), "
                f"('TIC901-s0001', 'eb-model', 901, 1, '{sources[1][0]}', 0.10, false, 0.5, 0.7)")
    rebuild_binary_flags(catalog)
    html = _eclipsing_section(catalog, tmp_path, [])
    assert "Eclipsing binaries" in html and "900" in html and "901" not in html   # only the flagged one
    images = list((tmp_path / "img" / "eclipsing").glob("*.png"))
    assert len(images) == 1 and images[0].stat().st_size > 5000
    assert f'src="img/eclipsing/{images[0].name}"' in html


def test_plots_helpers():
    y, x = np.mgrid[0:60, 0:60]
    img = np.random.default_rng(0).normal(0, 1, (60, 60))
    img += 2000 * np.exp(-((x - 29.5) ** 2 + (y - 29.5) ** 2) / 8) + 60 * np.exp(-((x - 37.5) ** 2 + (y - 29.5) ** 2) / 8)
    panel = StampPanel("PanSTARRS", img, 0.25, 1.1)
    peaks = find_peaks(panel)
    assert len(peaks) == 2 and abs(np.hypot(peaks[1].x - peaks[0].x, peaks[1].y - peaks[0].y) - 2.0) < 0.3
    norm = display_norm(img)
    assert float(norm(60.0 + np.median(img))) > 0.15  # a 60-sigma companion is far from black
    assert float(norm(img.max())) == pytest.approx(1.0)
    centres, mean_p, frac, counts = reliability_curve([0.05, 0.15, 0.95, 0.92], [0, 1, 1, 1], n_bins=10)
    assert counts.tolist() == [1, 1, 0, 0, 0, 0, 0, 0, 0, 2] and frac[9] == 1.0 and np.isnan(frac[5])
    assert file_key("S01") == "S01" and file_key("a/b") != file_key("a_b")
    # two companions at the same distance (a tie) and nothing at all
    assert peak_summary([Peak(0, 0, 100), Peak(1, 0, 50), Peak(-1, 0, 50), Peak(4, 0, 9)]) == '3 peaks, 1.00"'
    assert peak_summary([]) == "no peak" and peak_summary([Peak(0, 0, 9)]) == "1 peak"


def test_model_kind_matches_training():
    from binarycat.model.train import MODEL_KIND

    assert STAMP_MODEL_KIND == MODEL_KIND


def test_cli_report_and_one_sentence_errors(built, tmp_path):
    root, ids, _ = built

    def run(*args):
        return subprocess.run(BINARYCAT.split() + ["--catalog", str(root / "cat"), *map(str, args)],
                              capture_output=True, text=True, timeout=300,
                              env={**__import__("os").environ, "CI": "1", "COLUMNS": "200"})

    proc = run("report", "--out", tmp_path / "r", "--limit", 2, "--workers", 1)
    assert proc.returncode == 0, proc.stderr
    assert "Report of 2 candidates" in proc.stdout and (tmp_path / "r" / "index.html").is_file()
    proc = run("report", "--out", tmp_path / "r", "--where", "p_binary >")
    assert proc.returncode == 1 and proc.stderr.startswith("Error:") and "Traceback" not in proc.stderr
    assert "Example:" in run("report", "--help").stdout
