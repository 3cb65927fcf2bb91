"""The labelling page: its JSON API over real HTTP, the queues, and a real headless Chromium pressing keys."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import urllib.error
import urllib.request

import pytest

import report_catalog
from binarycat.catalog.store import Catalog
from binarycat.errors import BinarycatError
from binarycat.report.labelling import LabelSession, default_queue, serve_labels

CHROMIUM = next((p for p in (os.environ.get("BINARYCAT_CHROMIUM"), shutil.which("chromium"),
                             shutil.which("chromium-browser"), "/usr/bin/chromium") if p and os.path.exists(p)), None)
CHROMEDRIVER = next((p for p in (os.environ.get("BINARYCAT_CHROMEDRIVER"), shutil.which("chromedriver"),
                                 "/usr/bin/chromedriver") if p and os.path.exists(p)), None)


def http(url, payload=None, content_type="application/json"):
    data = None if payload is None else json.dumps(payload).encode()
    req = urllib.request.Request(url, data=data, method="GET" if data is None else "POST")
    if data is not None:
        req.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(req, timeout=10) as res:
            return res.status, res.headers.get("Content-Type"), res.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers.get("Content-Type"), err.read()


def api(url, payload=None, **kw):
    status, _, body = http(url, payload, **kw)
    return status, json.loads(body)


def my_labels(cat, who):
    return cat.sql("select source_id, survey, label from labels where labeller = ? order by created_at, source_id",
                   [who]).fetchall()


@pytest.fixture
def served(tmp_path):
    cat = Catalog(tmp_path / "cat", create=True)
    report_catalog.build(cat, 6, labels=False)
    server = serve_labels(cat, "ada")
    server.start()
    yield cat, server
    server.shutdown()
    server.server_close()
    cat.close()


def test_api_next_answer_undo(served):
    cat, server = served
    base = server.url
    status, ctype, body = http(base)
    assert status == 200 and ctype.startswith("text/html") and b"binarycat labelling" in body
    status, state = api(base + "api/state")
    assert status == 200 and state["queue"] == "uncertain" and state["total"] == 18 and state["labeller"] == "ada"
    first = state["item"]
    ps = [abs(p - 0.5) for p in (report_catalog.p_binary(i, s) for i in range(6) for s in report_catalog.SURVEYS)]
    assert abs(first["p_binary"] - 0.5) == pytest.approx(min(ps))  # the least sure first
    assert len(first["stamps"]) == 3 and sum(s["target"] for s in first["stamps"]) == 1
    target = next(s for s in first["stamps"] if s["target"])
    assert target["fwhm_arcsec"] > 0 and target["pixel_scale_arcsec"] > 0

    status, ctype, png = http(f"{base}stamp/{first['stamp_id']}.png")
    assert status == 200 and ctype == "image/png" and png[:8] == b"\x89PNG\r\n\x1a\n"
    assert http(base + "stamp/nope.png")[0] == 404

    status, res = api(base + "api/answer", {"stamp_id": first["stamp_id"], "answer": "b"})
    assert status == 200 and res["state"]["answered"] == 1
    assert my_labels(cat, "ada") == [(first["source_id"], first["survey"], 1)]
    second = res["state"]["item"]
    assert second["stamp_id"] != first["stamp_id"]
    counts = {c["survey"]: c for c in res["state"]["counts"]}
    assert counts[first["survey"]]["mine_binary"] == 1

    # a stale page (answering an item that is no longer on show) writes nothing
    status, res = api(base + "api/answer", {"stamp_id": first["stamp_id"], "answer": "n"})
    assert status == 409 and "not the one on show" in res["error"]
    assert http(base + "api/answer", {"stamp_id": second["stamp_id"], "answer": "b"}, content_type="text/plain")[0] == 415
    assert api(base + "api/answer", {"stamp_id": second["stamp_id"], "answer": "x"})[0] == 409
    assert len(my_labels(cat, "ada")) == 1

    status, res = api(base + "api/answer", {"stamp_id": second["stamp_id"], "answer": "s"})
    assert res["state"]["skipped"] == 1 and len(my_labels(cat, "ada")) == 1
    api(base + "api/undo", {})                      # undo the skip: back to the second item
    status, res = api(base + "api/undo", {})        # undo the answer: the label is gone
    assert status == 200 and res["state"]["item"]["stamp_id"] == first["stamp_id"]
    assert my_labels(cat, "ada") == []
    status, res = api(base + "api/undo", {})
    assert status == 409 and "Nothing to undo" in res["error"]


def test_queues_and_options(tmp_path):
    with Catalog(tmp_path / "cat", create=True) as cat:
        report_catalog.build(cat, 6, model=False, predictions=False)  # labels for the first 3 sources
        assert default_queue(cat) == "unlabelled"
        s = LabelSession(cat, "ada")
        assert s.queue_name == "unlabelled" and len(s.items) == 9  # 3 unlabelled sources x 3 surveys
        again = LabelSession(cat, "ada", seed=0)
        assert [i.stamp_id for i in s.items] == [i.stamp_id for i in again.items]
        other = LabelSession(cat, "ada", seed=1)
        assert sorted(i.stamp_id for i in other.items) == sorted(i.stamp_id for i in s.items)
        assert len(LabelSession(cat, "ada", queue="random").items) == 18  # review everything ada has not labelled
        hst = LabelSession(cat, "ada", survey="HST")
        assert {i.survey for i in hst.items} == {"HST"} and len(hst.items) == 3
        with pytest.raises(BinarycatError, match="No stamps of survey 'JWST'"):
            LabelSession(cat, "ada", survey="JWST")
        with pytest.raises(BinarycatError, match="Unknown queue"):
            LabelSession(cat, "ada", queue="easiest")

        # undo puts back the label this labeller had before the answer
        item = s.current
        cat.sql("insert into labels (source_id, survey, label, labeller, created_at) values "
                "(?, ?, 0, 'ada', TIMESTAMP '2020-01-01 00:00:00')", [item.source_id, item.survey])
        s.answer(item.stamp_id, "b")
        assert cat.sql("select label from labels where source_id = ? and survey = ? and labeller = 'ada'",
                       [item.source_id, item.survey]).fetchone() == (1,)
        s.undo()
        row = cat.sql("select label, created_at from labels where source_id = ? and survey = ? and labeller = 'ada'",
                      [item.source_id, item.survey]).fetchone()
        assert row[0] == 0 and str(row[1]).startswith("2020-01-01")
    with Catalog(tmp_path / "cat", create=False, read_only=True) as ro:
        with pytest.raises(BinarycatError, match="read-write"):
            LabelSession(ro, "ada")


def test_port_in_use_is_one_sentence(served):
    cat, server = served
    with pytest.raises(BinarycatError, match="Cannot listen on 127.0.0.1"):
        serve_labels(cat, "bob", port=server.server_address[1])


# -- the real browser -----------------------------------------------------------------------
def _chrome(profile: str):
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[test]')")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                f"--user-data-dir={profile}", "--window-size=1400,1000"):
        opts.add_argument(arg)
    return webdriver.Chrome(options=opts, service=Service(executable_path=CHROMEDRIVER))


def _wait(driver, predicate, what, timeout=20.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


@pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None,
                    reason="no chromium/chromedriver binary (apt-get install chromium chromium-driver; .ci/run does)")
def test_headless_chromium_b_n_u_n(served, tmp_path):
    cat, server = served
    from selenium.webdriver.common.by import By

    profile = tempfile.mkdtemp(prefix="binarycat-chromium-", dir=tmp_path)
    driver = _chrome(profile)
    try:
        driver.set_page_load_timeout(30)
        driver.get(server.url)
        body = driver.find_element(By.TAG_NAME, "body")
        _wait(driver, lambda: body.get_attribute("data-ready") == "1", "the first item")
        shown = []

        def current():
            return driver.find_element(By.ID, "current").get_attribute("data-stamp-id")

        for n, key in enumerate("bnun", 1):
            shown.append(current())
            body.send_keys(key)
            _wait(driver, lambda: body.get_attribute("data-seq") == str(n), f"action {n} ({key}) to finish")
        assert driver.find_element(By.ID, "error").text == ""
        # b on item 1, n on item 2, u back to item 2, n on item 2 again: item 3 on show
        assert shown[0] != shown[1] and shown[2] != shown[1] and shown[3] == shown[1]
        assert driver.find_element(By.ID, "answered").text == "2"
        imgs = driver.find_elements(By.CSS_SELECTOR, ".frame img")
        assert len(imgs) == 3
        _wait(driver, lambda: all(driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0",
                                                        i) for i in imgs), "the stamps to load")
        assert driver.find_elements(By.CSS_SELECTOR, "svg circle.psf")
        table = driver.find_element(By.ID, "counts-table").text
        assert "yours: binary" in table
        driver.save_screenshot(str(tmp_path / "label-page.png"))
    finally:
        driver.quit()

    first = cat.sql("select source_id, survey from stamps where stamp_id = ?", [shown[0]]).fetchone()
    second = cat.sql("select source_id, survey from stamps where stamp_id = ?", [shown[1]]).fetchone()
    rows = cat.sql("select source_id, survey, label, labeller from labels order by label desc").fetchall()
    assert rows == [(*first, 1, "ada"), (*second, 0, "ada")]


def test_cli_label_serve_prints_url_and_stops_on_sigterm(tmp_path):
    import re
    import signal
    import subprocess
    import sys

    with Catalog(tmp_path / "cat", create=True) as cat:
        report_catalog.build(cat, 4, labels=False)
    binarycat = shutil.which("binarycat")
    cmd = [binarycat] if binarycat else [sys.executable, "-m", "binarycat.cli.app"]
    proc = subprocess.Popen(cmd + ["--catalog", str(tmp_path / "cat"), "label", "serve", "--port", "0",
                                   "--survey", "PS1", "--labeller", "cli-test"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "CI": "1", "COLUMNS": "200"})
    try:
        line = proc.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+/", line).group(0)
        assert "queue uncertain" in line and "survey PanSTARRS" in line
        status, state = api(url + "api/state")
        assert state["labeller"] == "cli-test" and state["item"]["survey"] == "PanSTARRS"
        assert api(url + "api/answer", {"stamp_id": state["item"]["stamp_id"], "answer": "n"})[0] == 200
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "1 label(s) stored" in out
    with Catalog(tmp_path / "cat", create=False, read_only=True) as cat:
        assert cat.sql("select survey, label from labels where labeller = 'cli-test'").fetchall() == [("PanSTARRS", 0)]
