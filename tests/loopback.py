"""A threaded HTTP server on 127.0.0.1 for the service stand-ins (hips2fits, MAST, ...).

Subclasses set ``handler`` (a `BaseHTTPRequestHandler` subclass that reads ``self.app``) and
``url_path`` (appended to ``http://127.0.0.1:PORT`` to make ``url``).
"""

from __future__ import annotations

import threading
from http.server import ThreadingHTTPServer


class LoopbackServer:
    handler: type = None
    url_path: str = ""

    _httpd: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None
    port: int | None = None
    url: str | None = None

    def start(self):
        if self._httpd is not None:
            return self
        handler = type("_Handler", (self.handler,), {"app": self})
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        httpd.daemon_threads = True
        httpd.handle_error = lambda request, client_address: None  # quiet: no tracebacks
        self._httpd = httpd
        self.port = httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}{self.url_path}"
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"{type(self).__name__}:{self.port}", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
        self._httpd = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()
