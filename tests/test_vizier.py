"""VizieR imports against a stand-in VizieR over real HTTPS on 127.0.0.1 (see vizier_server.py).

Nothing in astroquery or requests is patched: the client is told the server's address
(``VizierSource(server="127.0.0.1:PORT")``) and trusts its certificate, which a test CA from
``trustme`` signed, through ``REQUESTS_CA_BUNDLE``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from astropy import units as u

from binarycat.catalog.store import Catalog
from binarycat.errors import BinarycatError
from binarycat.ingest.vizier import VizierSource, import_vizier

trustme = pytest.importorskip("trustme")
sys.path.insert(0, str(Path(__file__).parent))
from vizier_server import ORION, VizierStandIn, orion_table, positions  # noqa: E402

ONE = "J/TEST/1"               # one table, 60 rows (> astroquery's default 50), sexagesimal positions
ONE_TABLE = "J/TEST/1/table1"
TWO = "J/TEST/2"               # a positionless table with the most rows, and two tables with positions


def _notes(n=120):
    from astropy.table import Table

    return Table({"Seq": np.arange(1, n + 1), "Note": [f"observed night {i % 9}" for i in range(n)]})


CATALOGS = {
    ONE: {ONE_TABLE: orion_table(60, seed=1)},
    TWO: {
        "J/TEST/2/table1": _notes(120),
        "J/TEST/2/table2": orion_table(40, seed=2, sexagesimal=False, id_name="Name"),
        "J/TEST/2/table3": orion_table(5, seed=3, sexagesimal=False, id_name="Name"),
    },
}


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    pem = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(pem))
    return cert, pem


@pytest.fixture(scope="module")
def stand_in(tls):
    cert, _ = tls
    with VizierStandIn(CATALOGS, cert) as server:
        yield server


@pytest.fixture
def vizier(stand_in, tls, monkeypatch):
    """The stand-in, reset, with requests trusting its CA and going to it without a proxy."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tls[1]))
    for var in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(var, "127.0.0.1,localhost")
    stand_in.reset()
    yield stand_in
    stand_in.reset()


def _rows(cat: Catalog, origin: str):
    return cat.sql("select source_id, ra, dec, origin, properties->>'Vmag' from sources "
                   "where origin = ? order by source_id", [origin]).fetchall()


# -- whole catalogues ----------------------------------------------------------------------------
def test_whole_catalogue_imports_every_row(vizier, catalog, tmp_path):
    result, name = import_vizier(catalog, ONE, server=vizier.server)
    served = CATALOGS[ONE][ONE_TABLE]
    assert len(served) > 50
    assert name == ONE_TABLE
    assert (result.added, result.existing) == (60, 0)
    assert result.columns == {"id": "Seq", "ra": "_RAJ2000", "dec": "_DEJ2000"}

    # the request astroquery made: every row, every column, computed positions
    (req,) = vizier.requests
    assert req["path"] == "/viz-bin/votable"
    assert req["params"]["-source"] == ONE
    assert req["params"]["-out.max"] == "unlimited"
    assert "-out.all" in req["flags"]
    assert req["params"]["-out.add"] == "_RAJ2000,_DEJ2000"

    catalog.close()
    with Catalog(tmp_path / "cat", read_only=True) as cat:  # on disk
        rows = _rows(cat, f"vizier:{ONE_TABLE}")
    assert len(rows) == 60
    got = {sid: (ra, dec, vmag) for sid, ra, dec, _, vmag in rows}
    truth = positions(served)
    for i, seq in enumerate(served["Seq"]):
        ra, dec, vmag = got[str(seq)]
        assert ra == pytest.approx(truth[i].ra.deg, abs=1e-9)
        assert dec == pytest.approx(truth[i].dec.deg, abs=1e-9)
        assert float(vmag) == pytest.approx(served["Vmag"][i])


def test_reimport_adds_nothing(vizier, catalog):
    first, _ = import_vizier(catalog, ONE, server=vizier.server)
    again, _ = import_vizier(catalog, ONE, server=vizier.server)
    assert (first.added, again.added, again.existing) == (60, 0, 60)
    assert catalog.table_count("sources") == 60
    assert len(vizier.requests) == 2  # astroquery's disk cache is not used


def test_sexagesimal_columns_named_explicitly(vizier, catalog):
    result, _ = import_vizier(catalog, ONE, server=vizier.server, ra_col="RAJ2000", dec_col="DEJ2000")
    assert result.added == 60 and result.columns["ra"] == "RAJ2000"
    served = CATALOGS[ONE][ONE_TABLE]
    truth = positions(served)
    got = dict((sid, (ra, dec)) for sid, ra, dec, *_ in _rows(catalog, f"vizier:{ONE_TABLE}"))
    for i, seq in enumerate(served["Seq"]):
        assert got[str(seq)] == pytest.approx((truth[i].ra.deg, truth[i].dec.deg), abs=1e-9)


def test_row_limit_truncates_and_minus_one_does_not(vizier):
    assert len(VizierSource(server=vizier.server, row_limit=50).catalog(ONE)) == 50
    assert vizier.requests[-1]["params"]["-out.max"] == "50"
    assert len(VizierSource(server=vizier.server).catalog(ONE)) == 60


def test_catalogue_with_several_tables_picks_the_one_with_positions(vizier, catalog):
    table = VizierSource(server=vizier.server).catalog(TWO)
    # table1 has the most rows but no positions; table2 has positions and more rows than table3
    assert table.meta["vizier_table"] == "J/TEST/2/table2"
    assert table.meta["vizier_tables"] == {"J/TEST/2/table1": 120, "J/TEST/2/table2": 40,
                                           "J/TEST/2/table3": 5}
    result, name = import_vizier(catalog, TWO, server=vizier.server)
    assert name == "J/TEST/2/table2"
    assert result.added == 40 and result.columns["id"] == "Name"
    origins = catalog.sql("select distinct origin from sources").fetchall()
    assert origins == [("vizier:J/TEST/2/table2",)]
    served = CATALOGS[TWO]["J/TEST/2/table2"]
    ids = {r[0] for r in _rows(catalog, "vizier:J/TEST/2/table2")}
    assert ids == set(served["Name"])


def test_named_table_is_the_only_one_asked_for(vizier, catalog):
    result, name = import_vizier(catalog, TWO, table="table3", server=vizier.server)
    assert (name, result.added) == ("J/TEST/2/table3", 5)
    assert vizier.requests[-1]["params"]["-source"] == "J/TEST/2/table3"


# -- cones ---------------------------------------------------------------------------------------
def test_cone_returns_only_the_rows_inside(vizier, catalog):
    radius = 420 * u.arcsec
    served = CATALOGS[ONE][ONE_TABLE]
    sep = positions(served).separation(ORION)
    assert not np.any(np.abs(sep - radius) < 1 * u.arcsec)  # no star on the edge
    inside = {str(s) for s, d in zip(served["Seq"], sep) if d <= radius}
    assert 0 < len(inside) < len(served)

    table = VizierSource(server=vizier.server).cone(ONE, ORION.ra.deg, ORION.dec.deg, radius.value)
    assert {str(s) for s in table["Seq"]} == inside
    req = vizier.requests[-1]["params"]
    assert req["-c.rs"] == "420.0" and req["-out.max"] == "unlimited"

    result, name = import_vizier(catalog, ONE, ra=ORION.ra.deg, dec=ORION.dec.deg,
                                 radius_arcsec=radius.value, server=vizier.server)
    assert (name, result.added) == (ONE_TABLE, len(inside))
    assert {r[0] for r in _rows(catalog, f"vizier:{ONE_TABLE}")} == inside


def test_empty_cone_is_an_error(vizier):
    with pytest.raises(BinarycatError, match=r"no rows of J/TEST/1 within 10 arcsec"):
        VizierSource(server=vizier.server).cone(ONE, 10.0, 40.0, 10)


def test_cone_needs_all_three_numbers(vizier, catalog):
    with pytest.raises(BinarycatError, match="all of ra, dec and radius_arcsec"):
        import_vizier(catalog, ONE, ra=83.8, dec=-5.4, server=vizier.server)
    with pytest.raises(BinarycatError, match="radius must be a positive"):
        VizierSource(server=vizier.server).cone(ONE, 83.8, -5.4, 0)
    assert vizier.requests == []


# -- errors --------------------------------------------------------------------------------------
@pytest.mark.parametrize("status", [200, 500])
def test_unknown_catalogue(vizier, catalog, status):
    vizier.unknown_status = status
    with pytest.raises(BinarycatError, match=r"No catalogue or table J/NOPE/9 in VizieR\.$") as exc:
        import_vizier(catalog, "J/NOPE/9", server=vizier.server)
    assert "\n" not in str(exc.value)
    assert catalog.table_count("sources") == 0


def test_server_error(vizier, catalog):
    vizier.fail_with = 500
    with pytest.raises(BinarycatError, match=r"answered HTTP 500 Internal Server Error for catalogue J/TEST/1"):
        import_vizier(catalog, ONE, server=vizier.server)
    assert catalog.table_count("sources") == 0


def test_answer_that_is_not_a_votable(vizier):
    vizier.respond_with = (200, "text/html", b"<html><body>maintenance</body></html>")
    with pytest.raises(BinarycatError, match="with text/html, not a VOTable"):
        VizierSource(server=vizier.server).catalog(ONE)


def test_votable_that_does_not_parse(vizier):
    vizier.respond_with = (200, "text/xml", b'<?xml version="1.0"?>\n<VOTABLE><RESOURCE><TABLE>')
    with pytest.raises(BinarycatError, match="VOTable that cannot be parsed"):
        VizierSource(server=vizier.server).catalog(ONE)


def test_timeout(vizier):
    vizier.delay = 1.5
    with pytest.raises(BinarycatError, match=r"did not answer for catalogue J/TEST/1 within 0.3 s"):
        VizierSource(server=vizier.server, timeout=0.3).catalog(ONE)


def test_untrusted_certificate(vizier, monkeypatch):
    import certifi

    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certifi.where())  # public CAs only
    with pytest.raises(BinarycatError, match="Cannot make a trusted HTTPS connection"):
        VizierSource(server=vizier.server).catalog(ONE)


def test_nothing_listening(vizier):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(BinarycatError, match=f"Cannot reach VizieR at 127.0.0.1:{port}"):
        VizierSource(server=f"127.0.0.1:{port}", timeout=2).catalog(ONE)


@pytest.mark.parametrize("bad", ["", "J/TEST/1\n-out.max=5", "J/TEST/1,II/246", "J TEST"])
def test_bad_ids_are_refused_before_asking(vizier, bad):
    with pytest.raises(BinarycatError, match="is not a VizieR catalogue id"):
        VizierSource(server=vizier.server).catalog(bad)
    assert vizier.requests == []


def test_plain_http_server_is_refused():
    with pytest.raises(BinarycatError, match="plain HTTP"):
        VizierSource(server="http://127.0.0.1:8080")


def test_cli_sources_vizier_cone(vizier, tmp_path):
    """The console command end to end: a cone from the stand-in into a new catalogue."""
    import json
    import os
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "binarycat", "--catalog", str(tmp_path / "cli-cat")]
    proc = subprocess.run(cmd + ["sources", "vizier", ONE, "--server", vizier.server],
                          capture_output=True, text=True, env={**os.environ, "CI": "1"})
    assert proc.returncode == 0, proc.stderr
    assert "sources added" in proc.stdout
    n = subprocess.run(cmd + ["query", "select count(*) as n from sources", "-f", "json"],
                       capture_output=True, text=True)
    assert json.loads(n.stdout)[0]["n"] > 50
    bad = subprocess.run(cmd + ["sources", "vizier", "J/NOPE/1", "--server", vizier.server],
                         capture_output=True, text=True, env={**os.environ, "CI": "1"})
    assert bad.returncode == 1 and bad.stderr.startswith("Error:") and "Traceback" not in bad.stderr
