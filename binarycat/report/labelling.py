"""The labelling page: one source at a time in the browser, each answer stored at once.

`LabelSession` holds the queue and writes answers; `LabelServer` serves it on 127.0.0.1
with the standard library's `ThreadingHTTPServer`:

========================  ===================================================================
``GET /``                 the page (HTML, CSS and JavaScript inline, no build step)
``GET /api/state``        JSON: the current item, its stamps across surveys, label counts
``POST /api/answer``      JSON ``{"stamp_id": ..., "answer": "b" | "n" | "s"}``
``POST /api/undo``        take back the last answer or skip of this session
``GET /stamp/<id>.png``   a stamp on the display stretch (`binarycat.report.plots.stamp_png`)
========================  ===================================================================

Items are stamps: a label belongs to a (source, survey), because a pair HST resolves may be
one blob to 2MASS. The page shows the item's stamp and, for comparison, the same source's
stamps from every other survey, each at the same angular scale with its survey's PSF FWHM
and the 2.5" radius of the binary definition drawn on it.

Queues (``queue``):

- ``uncertain``: unlabelled stamps, those the model is least sure about first (smallest
  ``|p_binary - 0.5|`` of the latest prediction), then unpredicted ones in random order:
  active learning. The default when the catalogue has a trained stamp classifier.
- ``unlabelled``: stamps nobody has labelled, in random order. The default otherwise.
- ``random``: every stamp this labeller has not labelled yet, in random order (for
  reviewing labels from files or other people).

``b`` stores label 1, ``n`` label 0 (``labels`` row with ``labeller`` and ``created_at``,
committed before the answer returns, so stopping the server loses nothing); ``s`` skips;
``u`` undoes the last answer or skip (a replaced earlier label of the same labeller is put
back). The catalogue stays open read-write while the server runs.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections import OrderedDict
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

from binarycat.catalog.arrays import load_stamp_arrays
from binarycat.catalog.store import Catalog
from binarycat.errors import BinarycatError
from binarycat.report.data import STAMP_MODEL_KIND, stamps_of_sources
from binarycat.report.label_page import PAGE
from binarycat.report.plots import stamp_png

__all__ = ["QUEUES", "QueueItem", "LabelSession", "LabelServer", "default_queue", "serve_labels"]

QUEUES = ("uncertain", "unlabelled", "random")
ANSWERS = {"b": 1, "n": 0, "s": None}
_STAMP_PATH = re.compile(r"^/stamp/([A-Za-z0-9_-]{1,64})\.png$")


@dataclass(frozen=True)
class QueueItem:
    """One stamp to label."""

    stamp_id: str
    source_id: str
    survey: str
    p_binary: float | None


@dataclass
class _Done:
    index: int            # position of the item in the queue
    item: QueueItem
    answer: str           # 'b', 'n' or 's'
    previous: tuple | None  # (label, created_at) this labeller had before, if any


def default_queue(catalog: Catalog) -> str:
    """``uncertain`` when a stamp classifier has made predictions, else ``unlabelled``."""
    has_model = catalog.sql("select count(*) from models where kind = ?", [STAMP_MODEL_KIND]).fetchone()[0]
    has_flags = catalog.sql("select count(*) from (select 1 from binary_flags limit 1)").fetchone()[0]
    return "uncertain" if has_model and has_flags else "unlabelled"


def _shuffle_key(seed: int, stamp_id: str) -> str:
    return hashlib.sha1(f"{seed}\x00{stamp_id}".encode()).hexdigest()


class LabelSession:
    """The queue of one labeller and the answers given in this session.

    Parameters
    ----------
    catalog : Catalog
        Opened read-write: answers are written to ``labels``.
    labeller : str
        Who answers; stored in ``labels.labeller``.
    queue : str, optional
        One of `QUEUES`; default `default_queue`.
    survey : str, optional
        Only stamps of this survey (canonical name as in ``stamps.survey``).
    seed : int
        Seed of the random orders.

    Raises
    ------
    BinarycatError
        For an unknown queue, an empty labeller name, a read-only catalogue or a survey
        without stamps.
    """

    def __init__(self, catalog: Catalog, labeller: str, *, queue: str | None = None,
                 survey: str | None = None, seed: int = 0):
        if catalog.read_only:
            raise BinarycatError("The labelling page writes labels, so it needs the catalogue opened read-write.")
        if not labeller or not labeller.strip():
            raise BinarycatError("A labeller name is needed (--labeller NAME).")
        queue = queue or default_queue(catalog)
        if queue not in QUEUES:
            raise BinarycatError(f"Unknown queue {queue!r}; choose one of {', '.join(QUEUES)}.")
        self.catalog = catalog
        self.labeller = labeller.strip()
        self.queue_name = queue
        self.survey = survey
        self.seed = int(seed)
        self.lock = threading.RLock()
        self.items = self._build_queue()
        self.position = 0
        self.history: list[_Done] = []
        self._png_cache: OrderedDict[str, bytes] = OrderedDict()

    # -- the queue -------------------------------------------------------------------------
    def _build_queue(self) -> list[QueueItem]:
        if self.survey is not None:
            n = self.catalog.sql("select count(*) from stamps where survey = ?", [self.survey]).fetchone()[0]
            if not n:
                known = [s for (s,) in self.catalog.sql("select distinct survey from stamps order by 1").fetchall()]
                raise BinarycatError(f"No stamps of survey {self.survey!r} in the catalogue; it has "
                                     f"{', '.join(known) or 'no stamps at all'}.")
        rows = self.catalog.sql(
            """
            WITH st AS (
                SELECT s.stamp_id, s.source_id, s.survey, bf.p_binary
                FROM stamps s
                LEFT JOIN binary_flags bf ON bf.source_id = s.source_id AND bf.survey = s.survey
                WHERE ? IS NULL OR s.survey = ?
                QUALIFY row_number() OVER (PARTITION BY s.source_id, s.survey
                                           ORDER BY (s.stamp_id = bf.stamp_id) DESC NULLS LAST,
                                                    s.created_at DESC, s.stamp_id) = 1
            ),
            lab AS (
                SELECT source_id, survey, bool_or(labeller = ?) AS mine FROM labels GROUP BY ALL
            )
            SELECT st.stamp_id, st.source_id, st.survey, st.p_binary, lab.source_id IS NOT NULL, coalesce(lab.mine, false)
            FROM st LEFT JOIN lab USING (source_id, survey)
            """,
            [self.survey, self.survey, self.labeller],
        ).fetchall()
        if self.queue_name == "random":
            keep = [r for r in rows if not r[5]]
        else:
            keep = [r for r in rows if not r[4]]

        def order(r):
            shuffle = _shuffle_key(self.seed, r[0])
            if self.queue_name == "uncertain" and r[3] is not None:
                return (0, abs(float(r[3]) - 0.5), shuffle)
            return (1, 0.0, shuffle)

        keep.sort(key=order)
        return [QueueItem(r[0], r[1], r[2], None if r[3] is None else float(r[3])) for r in keep]

    @property
    def current(self) -> QueueItem | None:
        return self.items[self.position] if self.position < len(self.items) else None

    # -- answers ---------------------------------------------------------------------------
    def answer(self, stamp_id: str, answer: str) -> dict:
        """Answer the current item: ``b`` binary, ``n`` not binary, ``s`` skip; returns the new state.

        Raises
        ------
        BinarycatError
            For an unknown answer, or a ``stamp_id`` that is not the current item (a stale
            page): nothing is written then.
        """
        if answer not in ANSWERS:
            raise BinarycatError(f"Unknown answer {answer!r}; use b (binary), n (not binary) or s (skip).")
        with self.lock:
            item = self.current
            if item is None:
                raise BinarycatError("The queue is done; there is nothing left to answer.")
            if stamp_id != item.stamp_id:
                raise BinarycatError(f"Stamp {stamp_id!r} is not the one on show; the page reloads the current one.")
            previous = None
            label = ANSWERS[answer]
            if label is not None:
                with self.catalog.transaction() as con:
                    previous = con.execute(
                        "select label, created_at from labels where source_id = ? and survey = ? and labeller = ?",
                        [item.source_id, item.survey, self.labeller],
                    ).fetchone()
                    con.execute(
                        "insert or replace into labels (source_id, survey, label, labeller, created_at) "
                        "values (?, ?, ?, ?, current_timestamp)",
                        [item.source_id, item.survey, label, self.labeller],
                    )
            self.history.append(_Done(self.position, item, answer, previous))
            self.position += 1
            return self.state()

    def undo(self) -> dict:
        """Take back the last answer or skip of this session; returns the new state.

        Raises
        ------
        BinarycatError
            When there is nothing to undo.
        """
        with self.lock:
            if not self.history:
                raise BinarycatError("Nothing to undo in this session.")
            done = self.history.pop()
            if ANSWERS[done.answer] is not None:
                with self.catalog.transaction() as con:
                    key = [done.item.source_id, done.item.survey, self.labeller]
                    con.execute("delete from labels where source_id = ? and survey = ? and labeller = ?", key)
                    if done.previous is not None:
                        con.execute(
                            "insert into labels (source_id, survey, label, labeller, created_at) values (?, ?, ?, ?, ?)",
                            key[:2] + [done.previous[0], self.labeller, done.previous[1]],
                        )
            self.position = done.index
            return self.state()

    # -- what the page shows ---------------------------------------------------------------
    def counts(self) -> list[dict]:
        """Per survey: latest labels binary / not binary (everyone), and this labeller's."""
        rows = self.catalog.sql(
            """
            WITH latest AS (SELECT survey, count(*) FILTER (WHERE label = 1) AS b, count(*) FILTER (WHERE label = 0) AS n
                            FROM latest_labels GROUP BY survey),
                 mine AS (SELECT survey, count(*) FILTER (WHERE label = 1) AS b, count(*) FILTER (WHERE label = 0) AS n
                          FROM labels WHERE labeller = ? GROUP BY survey)
            SELECT survey, coalesce(latest.b, 0), coalesce(latest.n, 0), coalesce(mine.b, 0), coalesce(mine.n, 0)
            FROM latest FULL JOIN mine USING (survey) ORDER BY survey
            """,
            [self.labeller],
        ).fetchall()
        return [dict(survey=r[0], binary=r[1], not_binary=r[2], mine_binary=r[3], mine_not_binary=r[4]) for r in rows]

    def state(self) -> dict:
        """Everything the page needs, as JSON-ready values."""
        with self.lock:
            item = self.current
            shown = None
            if item is not None:
                pos = self.catalog.sql("select ra, dec from sources where source_id = ?", [item.source_id]).fetchone()
                stamps = stamps_of_sources(self.catalog, [item.source_id])[item.source_id]
                shown = {
                    **asdict(item),
                    "ra": pos[0] if pos else None, "dec": pos[1] if pos else None,
                    "stamps": [{
                        "stamp_id": s.stamp_id, "survey": s.survey, "width": s.width, "height": s.height,
                        "pixel_scale_arcsec": s.pixel_scale_arcsec, "fwhm_arcsec": s.fwhm_arcsec,
                        "p_binary": s.p_binary, "flag": s.flag, "label": s.label, "labeller": s.labeller,
                        "target": s.survey == item.survey,
                    } for s in stamps],
                }
            answered = [d for d in self.history if d.answer != "s"]
            last = self.history[-1] if self.history else None
            return {
                "labeller": self.labeller,
                "queue": self.queue_name,
                "survey": self.survey,
                "position": self.position,
                "total": len(self.items),
                "remaining": len(self.items) - self.position,
                "answered": len(answered),
                "skipped": len(self.history) - len(answered),
                "can_undo": bool(self.history),
                "last": None if last is None else {"answer": last.answer, "source_id": last.item.source_id,
                                                   "survey": last.item.survey},
                "item": shown,
                "counts": self.counts(),
            }

    def png(self, stamp_id: str) -> bytes:
        """PNG of a stamp on the display stretch (cached)."""
        with self.lock:
            if stamp_id in self._png_cache:
                self._png_cache.move_to_end(stamp_id)
                return self._png_cache[stamp_id]
            data = load_stamp_arrays(self.catalog, [stamp_id])[0]
        png = stamp_png(data)
        with self.lock:
            self._png_cache[stamp_id] = png
            while len(self._png_cache) > 256:
                self._png_cache.popitem(last=False)
        return png


class _Handler(BaseHTTPRequestHandler):
    server: "LabelServer"
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        if self.server.log is not None:
            self.server.log(format % args)

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store" if content_type.startswith(("application/json", "text/html"))
                         else "max-age=3600")
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, payload: dict) -> None:
        self._send(status, json.dumps(payload, default=str).encode(), "application/json")

    def do_GET(self):  # noqa: N802 - http.server's naming
        path = urlparse(self.path).path
        session = self.server.session
        try:
            if path in ("/", "/index.html"):
                self._send(200, PAGE.encode(), "text/html; charset=utf-8")
            elif path == "/api/state":
                self._json(200, session.state())
            elif (m := _STAMP_PATH.match(path)) is not None:
                self._send(200, session.png(m.group(1)), "image/png")
            else:
                self._json(404, {"error": f"No page {path}."})
        except BinarycatError as exc:
            self._json(404, {"error": str(exc)})

    def do_POST(self):  # noqa: N802
        path = urlparse(self.path).path
        session = self.server.session
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not (self.headers.get("Content-Type") or "").startswith("application/json"):
            self._json(415, {"error": "Send JSON (Content-Type: application/json)."})
            return
        try:
            body = json.loads(raw or b"{}")
            if not isinstance(body, dict):
                raise ValueError
        except ValueError:
            self._json(400, {"error": "The request body is not a JSON object."})
            return
        try:
            if path == "/api/answer":
                self._json(200, {"ok": True, "state": session.answer(str(body.get("stamp_id")),
                                                                      str(body.get("answer")))})
            elif path == "/api/undo":
                self._json(200, {"ok": True, "state": session.undo()})
            else:
                self._json(404, {"error": f"No action {path}."})
        except BinarycatError as exc:
            self._json(409, {"ok": False, "error": str(exc), "state": session.state()})


class LabelServer(ThreadingHTTPServer):
    """The labelling page's HTTP server, bound to 127.0.0.1.

    Parameters
    ----------
    session : LabelSession
    port : int
        0 picks a free port (see `url`).
    log : callable, optional
        Called with each request's log line; by default requests are not logged.
    """

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, session: LabelSession, port: int = 0, log=None):
        self.session = session
        self.log = log
        try:
            super().__init__(("127.0.0.1", int(port)), _Handler)
        except OSError as exc:
            raise BinarycatError(f"Cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}.") from None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/"

    def start(self) -> threading.Thread:
        """Serve in a daemon thread (tests, notebooks); stop with ``shutdown()``."""
        thread = threading.Thread(target=self.serve_forever, name="binarycat-label-server", daemon=True)
        thread.start()
        return thread


def serve_labels(catalog: Catalog, labeller: str, *, port: int = 0, queue: str | None = None,
                 survey: str | None = None, seed: int = 0, log=None) -> LabelServer:
    """A `LabelServer` for a new `LabelSession` (not yet serving: call ``serve_forever`` or ``start``).

    Examples
    --------
    >>> cat = Catalog("orion")                                          # doctest: +SKIP
    >>> server = serve_labels(cat, "ada", queue="uncertain"); server.start()   # doctest: +SKIP
    >>> server.url                                                      # doctest: +SKIP
    'http://127.0.0.1:40123/'
    """
    session = LabelSession(catalog, labeller, queue=queue, survey=survey, seed=seed)
    return LabelServer(session, port=port, log=log)
