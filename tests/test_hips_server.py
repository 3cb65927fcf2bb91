"""Tests for tests/hips_server.py: a local hips2fits stand-in, exercised through astroquery."""

from __future__ import annotations

import math
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import requests
from astropy import units as u
from astropy.coordinates import Angle, Latitude, Longitude
from astropy.io import fits
from astropy.wcs import WCS
from astropy.wcs.utils import proj_plane_pixel_scales

sys.path.insert(0, str(Path(__file__).parent))

from hips_server import ENDPOINT_PATH, HipsServer, hips_lookup  # noqa: E402

from binarycat.ingest.simulate import footprint_covers, render_stamp, simulate_sources  # noqa: E402

pytest.importorskip("astroquery.hips2fits")
pytest.importorskip("matplotlib")  # astroquery's hips2fits imports it on every query
from astroquery.hips2fits import hips2fitsClass  # noqa: E402

PS1_G = "CDS/P/PanSTARRS/DR1/g"
HST_V = "CDS/P/HST/V"
SEED = 7


@pytest.fixture(scope="module")
def sources():
    return simulate_sources(80, seed=SEED)


@pytest.fixture(scope="module")
def bright_single(sources):
    """The brightest single star without a field star (PanSTARRS covers the whole table)."""
    rows = [r for r in sources if not r["is_binary"] and not r["has_field_star"]]
    return min(rows, key=lambda r: r["mag_r"])


@pytest.fixture(scope="module")
def server(sources):
    with HipsServer(sources, seed=SEED) as srv:
        yield srv


def client(srv) -> hips2fitsClass:
    h = hips2fitsClass()
    h.server = srv.url
    h.timeout = 10
    return h


def query(h, ra, dec, *, hips=PS1_G, width=64, height=64, fov_arcsec=10.0, **kw):
    return h.query(hips=hips, width=width, height=height, projection="TAN",
                   ra=Longitude(ra * u.deg), dec=Latitude(dec * u.deg),
                   fov=Angle(fov_arcsec * u.arcsec), format="fits", **kw)


def payload(ra, dec, *, hips=PS1_G, width=64, height=64, fov_arcsec=10.0):
    """The exact parameters astroquery sends (taken from astroquery itself)."""
    return query(hips2fitsClass(), ra, dec, hips=hips, width=width, height=height,
                 fov_arcsec=fov_arcsec, get_query_payload=True)


# ------------------------------------------------------------------------------------------
# the happy path, through astroquery
# ------------------------------------------------------------------------------------------


def test_url_and_registry_lookup(server):
    assert server.url.startswith("http://127.0.0.1:")
    assert server.url.endswith(ENDPOINT_PATH)
    table = hips_lookup()
    assert table[PS1_G] == ("PanSTARRS", "g")
    assert table["CDS/P/2MASS/K"] == ("2MASS", "Ks")


def test_query_returns_the_requested_grid(server, bright_single):
    h = client(server)
    ra, dec = float(bright_single["ra"]), float(bright_single["dec"])
    hdul = query(h, ra, dec)
    assert isinstance(hdul, fits.HDUList)
    data, header = hdul[0].data, hdul[0].header
    assert data.shape == (64, 64)
    assert data.dtype.kind == "f" and data.dtype.itemsize == 4  # float32 (big-endian on disk)
    w = WCS(header)
    scales = proj_plane_pixel_scales(w) * 3600.0
    assert scales == pytest.approx([10.0 / 64, 10.0 / 64], rel=1e-9)
    assert header["CDELT1"] < 0
    assert (header["CRVAL1"], header["CRVAL2"]) == pytest.approx((ra, dec), abs=1e-12)
    assert header["SURVEY"] == "PanSTARRS" and header["FILTER"] == "g"
    assert header["SRCID"] == bright_single["source_id"]
    # the star sits at the centre: pixel (31.5, 31.5), 0-based
    row, col = np.unravel_index(np.argmax(data), data.shape)
    assert math.hypot(row - 31.5, col - 31.5) <= 1.0
    x, y = w.world_to_pixel_values(ra, dec)
    assert (float(x), float(y)) == pytest.approx((31.5, 31.5), abs=1e-6)
    assert data.max() > header["SKYLEV"] + 50 * header["SKYSIG"]
    assert server.requests[-1]["outcome"] == "ok"
    assert server.requests[-1]["fov"] == pytest.approx(10.0 / 3600.0)


def test_same_request_gives_the_same_bytes(sources, bright_single):
    ra, dec = float(bright_single["ra"]), float(bright_single["dec"])
    params = payload(ra, dec, hips="CDS/P/2MASS/J")
    with HipsServer(sources, seed=SEED) as a, HipsServer(sources, seed=SEED) as b:
        first = requests.get(a.url, params=params, timeout=10)
        again = requests.get(a.url, params=params, timeout=10)
        other = requests.get(b.url, params=params, timeout=10)
        resp = client(a).query_async(**{**params, "ra": Longitude(ra * u.deg),
                                        "dec": Latitude(dec * u.deg),
                                        "fov": Angle(10 * u.arcsec),
                                        "rotation_angle": Angle(0 * u.deg),
                                        "min_cut": 0.5, "max_cut": 99.5})
    assert first.status_code == 200
    assert first.headers["Content-Type"] == "application/fits"
    assert first.content == again.content == other.content == resp.content
    with HipsServer(sources, seed=SEED + 1) as c:
        assert requests.get(c.url, params=params, timeout=10).content != first.content


def test_moffat_server_draws_the_simulators_moffat_stars(sources, bright_single):
    """A server told --psf moffat answers what `render_stamp` draws with that profile: wings."""
    ra, dec = float(bright_single["ra"]), float(bright_single["dec"])
    with HipsServer(sources, seed=SEED, psf="moffat", moffat_beta=2.5) as m, HipsServer(sources, seed=SEED) as g:
        moffat = query(client(m), ra, dec)[0]
        gauss = query(client(g), ra, dec)[0]
    expected, _, _ = render_stamp(bright_single, "PanSTARRS", "g", seed=SEED, n_pix=64, pixel_scale_arcsec=10 / 64,
                                  psf="moffat", moffat_beta=2.5)
    np.testing.assert_array_equal(moffat.data, expected)
    assert moffat.header["PSFBETA"] == 2.5
    sky = moffat.header["SKYLEV"]
    y, x = np.indices(moffat.data.shape)
    wings = np.hypot(y - 31.5, x - 31.5) > 12  # beyond 1.9", about 1.7 PS1 FWHM
    assert (moffat.data[wings] - sky).sum() > 3 * (gauss.data[wings] - gauss.header["SKYLEV"]).sum()
    with pytest.raises(Exception, match="beta"):
        HipsServer(sources, psf="moffat", moffat_beta=0.5)


def test_off_centre_request_draws_the_star_at_its_offset(server, bright_single):
    ra0, dec0 = float(bright_single["ra"]), float(bright_single["dec"])
    dec = dec0 + 0.6 / 3600.0  # 0.6" north of the star: still matched (radius 1")
    hdul = query(client(server), ra0, dec, width=64, height=64)
    data = hdul[0].data
    x, y = WCS(hdul[0].header).world_to_pixel_values(ra0, dec0)
    assert float(y) == pytest.approx(31.5 - 0.6 / (10 / 64), abs=0.01)
    row, col = np.unravel_index(np.argmax(data), data.shape)
    assert math.hypot(col - float(x), row - float(y)) <= 1.0


def test_non_square_grid(server, bright_single):
    ra, dec = float(bright_single["ra"]), float(bright_single["dec"])
    hdul = query(client(server), ra, dec, width=80, height=41)
    data, header = hdul[0].data, hdul[0].header
    assert data.shape == (41, 80)  # rows = height
    assert proj_plane_pixel_scales(WCS(header)) * 3600 == pytest.approx([10 / 80, 10 / 80])
    x, y = WCS(header).world_to_pixel_values(ra, dec)
    row, col = np.unravel_index(np.argmax(data), data.shape)
    assert math.hypot(col - float(x), row - float(y)) <= 1.0
    assert (float(x), float(y)) == pytest.approx((39.5, 20.0), abs=0.51)


def test_outside_the_footprint_is_all_nan(server, sources):
    outside = [r for r in sources if not footprint_covers("HST", r["ra"], r["dec"])]
    assert outside
    r = outside[0]
    hdul = query(client(server), float(r["ra"]), float(r["dec"]), hips=HST_V)
    data = hdul[0].data
    assert data.shape == (64, 64)
    assert np.isnan(data).all()
    assert proj_plane_pixel_scales(WCS(hdul[0].header)) * 3600 == pytest.approx([10 / 64] * 2)
    assert server.requests[-1]["outcome"] == "blank"


def test_inside_a_partial_footprint_is_rendered(server, sources):
    inside = [r for r in sources if footprint_covers("HST", r["ra"], r["dec"])]
    if not inside:
        pytest.skip("no HST-covered source in this table")
    r = inside[0]
    data = query(client(server), float(r["ra"]), float(r["dec"]), hips=HST_V)[0].data
    assert np.isfinite(data).all()
    assert server.requests[-1]["outcome"] == "ok"


def test_empty_sky_far_from_every_source(server, sources):
    ra, dec = 83.0, 10.0  # well away from the Orion table
    sep = np.hypot((np.asarray(sources["ra"]) - ra) * math.cos(math.radians(dec)),
                   np.asarray(sources["dec"]) - dec)
    assert sep.min() * 3600 > 60
    hdul = query(client(server), ra, dec)
    data, header = hdul[0].data, hdul[0].header
    assert "SRCID" not in header
    assert np.isfinite(data).all()
    assert data.max() < header["SKYLEV"] + 6 * header["SKYSIG"]
    assert abs(float(np.median(data)) - header["SKYLEV"]) < 0.5 * header["SKYSIG"]
    assert server.requests[-1]["outcome"] == "ok"


# ------------------------------------------------------------------------------------------
# errors and faults, as astroquery reports them
# ------------------------------------------------------------------------------------------


def test_bad_parameters_are_400_json(server, bright_single):
    ra, dec = float(bright_single["ra"]), float(bright_single["dec"])
    good = payload(ra, dec)
    for change in ({"width": "0"}, {"fov": "abc"}, {"dec": "95"}, {"projection": "AIT"},
                   {"format": "png"}, {"rotation_angle": "10"}):
        r = requests.get(server.url, params={**good, **change}, timeout=10)
        assert r.status_code == 400, change
        body = r.json()
        assert body["title"] == "Bad request" and body["description"]
    missing = {k: v for k, v in good.items() if k != "ra"}
    r = requests.get(server.url, params=missing, timeout=10)
    assert r.status_code == 400 and "'ra'" in r.json()["description"]
    # through astroquery: AttributeError("Bad request: ...")
    with pytest.raises(AttributeError, match="Bad request: projection 'AIT'"):
        client(server).query(hips=PS1_G, width=64, height=64, projection="AIT",
                             ra=Longitude(ra * u.deg), dec=Latitude(dec * u.deg),
                             fov=Angle(10 * u.arcsec), format="fits")
    assert server.requests[-1]["outcome"] == "bad_request"


def test_unknown_hips_and_path_are_404(server, bright_single):
    ra, dec = float(bright_single["ra"]), float(bright_single["dec"])
    with pytest.raises(AttributeError, match="Not found: HiPS 'CDS/P/NoSuch/x' not found"):
        query(client(server), ra, dec, hips="CDS/P/NoSuch/x")
    assert server.requests[-1]["outcome"] == "not_found"
    base = server.url[: -len(ENDPOINT_PATH)]
    r = requests.get(base + "/elsewhere", timeout=10)
    assert r.status_code == 404 and r.json()["title"] == "Not found"
    r = requests.post(server.url, data={"hips": PS1_G}, timeout=10)
    assert r.status_code == 405 and server.requests[-1]["outcome"] == "bad_method"


def test_fail_rate_one_raises_attribute_error(sources, bright_single):
    ra, dec = float(bright_single["ra"]), float(bright_single["dec"])
    with HipsServer(sources, seed=SEED, fail_rate=1.0) as srv:
        with pytest.raises(AttributeError) as info:
            query(client(srv), ra, dec)
        assert "Internal server error: Simulated failure while generating the image" in str(info.value)
        assert srv.counts() == {"error500": 1}
        assert srv.requests[0]["status"] == 500


def test_html_error_raises_json_decode_error(sources, bright_single):
    ra, dec = float(bright_single["ra"]), float(bright_single["dec"])
    with HipsServer(sources, seed=SEED, html_error_rate=1.0) as srv:
        with pytest.raises(requests.exceptions.JSONDecodeError) as info:
            query(client(srv), ra, dec)
        assert isinstance(info.value, ValueError)  # also a RequestException / OSError
        assert isinstance(info.value, requests.exceptions.RequestException)
        assert srv.counts() == {"html500": 1}


@pytest.mark.filterwarnings("ignore:Error validating header:astropy.io.fits.verify.VerifyWarning")
def test_corrupt_answers(sources, bright_single):
    """Repeats of one request alternate truncated / html200 under corrupt_rate=1.

    A truncated FITS parses (astroquery returns an HDUList: the header is whole) and only
    fails when the data are read: TypeError. An HTML page with status 200 makes
    ``HDUList.fromstring`` itself fail inside astroquery, with an AttributeError (astropy's
    ``'NoneType' object has no attribute 'close_on_error'``), the same type as a server error.
    """
    ra, dec = float(bright_single["ra"]), float(bright_single["dec"])
    with HipsServer(sources, seed=SEED, corrupt_rate=1.0) as srv:
        h = client(srv)
        seen = {}
        for _ in range(2):
            try:
                hdul = query(h, ra, dec)
            except AttributeError as e:
                seen[srv.requests[-1]["outcome"]] = ("query", e)
                continue
            with pytest.raises(TypeError, match="buffer is too small"):
                hdul[0].data  # noqa: B018
            seen[srv.requests[-1]["outcome"]] = ("data", hdul)
        assert set(seen) == {"truncated", "html200"}
        assert seen["truncated"][0] == "data"
        assert seen["html200"][0] == "query"
        assert srv.counts() == {"truncated": 1, "html200": 1}
        # what went over the wire
        params = payload(ra, dec)
        bodies = [requests.get(srv.url, params=params, timeout=10) for _ in range(2)]
    assert all(b.status_code == 200 for b in bodies)
    kinds = {b.headers["Content-Type"] for b in bodies}
    assert kinds == {"application/fits", "text/html; charset=utf-8"}
    with HipsServer(sources, seed=SEED) as clean:
        full = requests.get(clean.url, params=params, timeout=10).content
    trunc = next(b.content for b in bodies if b.headers["Content-Type"] == "application/fits")
    assert trunc == full[: len(full) // 2]


def test_fail_hips_is_permanent_and_selective(sources, bright_single):
    ra, dec = float(bright_single["ra"]), float(bright_single["dec"])
    with HipsServer(sources, seed=SEED, fail_hips=[PS1_G]) as srv:
        h = client(srv)
        for _ in range(3):
            with pytest.raises(AttributeError, match="permanent failure"):
                query(h, ra, dec)
        assert query(h, ra, dec, hips="CDS/P/PanSTARRS/DR1/r")[0].data.shape == (64, 64)
        assert srv.counts() == {"permanent": 3, "ok": 1}


def test_delay_and_client_timeout(sources, bright_single):
    ra, dec = float(bright_single["ra"]), float(bright_single["dec"])
    with HipsServer(sources, seed=SEED, delay_s=0.3) as srv:
        h = client(srv)
        t0 = time.perf_counter()
        query(h, ra, dec)
        assert time.perf_counter() - t0 >= 0.3
        h.timeout = 0.1
        with pytest.raises(requests.exceptions.Timeout):
            query(h, ra, dec)


def test_rates_are_validated(sources):
    with pytest.raises(ValueError):
        HipsServer(sources, fail_rate=0.6, corrupt_rate=0.5)
    with pytest.raises(ValueError):
        HipsServer(sources, html_error_rate=-0.1)


# ------------------------------------------------------------------------------------------
# fault statistics and determinism
# ------------------------------------------------------------------------------------------


def _positions(sources, n):
    """n distinct request centres: the sources, then small offsets around them."""
    ra = np.asarray(sources["ra"], float)
    dec = np.asarray(sources["dec"], float)
    return [(float(ra[i % len(ra)]), float(dec[i % len(ra)] + (i // len(ra)) * 0.3 / 3600))
            for i in range(n)]


def _run(srv, positions, workers=1):
    session = requests.Session()

    def one(pos):
        r = session.get(srv.url, params=payload(*pos), timeout=10)
        return r.status_code

    if workers == 1:
        return [one(p) for p in positions]
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(one, positions))


def test_fault_rates_are_roughly_honoured(sources):
    n = 200
    rates = dict(fail_rate=0.2, html_error_rate=0.1, corrupt_rate=0.2)
    with HipsServer(sources, seed=SEED, fault_seed=3, **rates) as srv:
        _run(srv, _positions(sources, n))
        counts = srv.counts()
    assert sum(counts.values()) == n
    expected = {"error500": 0.2, "html500": 0.1, "corrupt": 0.2, "clean": 0.5}
    observed = {
        "error500": counts["error500"], "html500": counts["html500"],
        "corrupt": counts["truncated"] + counts["html200"], "clean": counts["ok"] + counts["blank"],
    }
    for k, p in expected.items():
        sd = math.sqrt(n * p * (1 - p))
        assert abs(observed[k] - n * p) <= 4 * sd, (k, observed[k], counts)
    assert counts["truncated"] > 0 and counts["html200"] > 0


def test_faults_are_deterministic_and_order_independent(sources):
    positions = _positions(sources, 60)
    kw = dict(seed=SEED, fail_rate=0.3, html_error_rate=0.1, corrupt_rate=0.2, fault_seed=11)

    def outcomes(srv):
        return {(r["ra"], r["dec"]): r["outcome"] for r in srv.requests}

    with HipsServer(sources, **kw) as a:
        _run(a, positions)
    with HipsServer(sources, **kw) as b:
        _run(b, positions[::-1], workers=8)  # other order, concurrent
    with HipsServer(sources, **{**kw, "fault_seed": 12}) as c:
        _run(c, positions)
    assert outcomes(a) == outcomes(b)
    assert [r["outcome"] for r in a.requests] == [outcomes(b)[(r["ra"], r["dec"])] for r in a.requests]
    assert outcomes(a) != outcomes(c)


def test_retries_get_fresh_draws(sources, bright_single):
    ra, dec = float(bright_single["ra"]), float(bright_single["dec"])
    with HipsServer(sources, seed=SEED, fail_rate=0.5, fault_seed=1) as srv:
        h = client(srv)
        results = []
        for _ in range(20):
            try:
                query(h, ra, dec)
                results.append("ok")
            except AttributeError:
                results.append("error500")
        assert [r["outcome"] for r in srv.requests] == results
        assert [r["attempt"] for r in srv.requests] == list(range(20))
        assert {"ok", "error500"} <= set(results)


def test_server_is_quiet(sources, bright_single, capfd):
    ra, dec = float(bright_single["ra"]), float(bright_single["dec"])
    with HipsServer(sources, seed=SEED, fail_rate=0.5) as srv:
        _run(srv, [(ra, dec)] * 4)
        requests.get(srv.url, timeout=10)  # a 400
        requests.get(srv.url[:-3] + "zzz", timeout=10)  # a 404
    out, err = capfd.readouterr()
    assert out == "" and err == ""
