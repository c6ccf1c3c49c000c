"""The WSGI middleware: answers the page's polls at once, before the app, and adds the
script tag to the app's HTML pages.

Nothing here holds a worker: the state endpoint reads one small file and returns, so a
graceful or chain reload never waits for open tabs (uWSGI waits for busy workers up to
``worker-reload-mercy``, 60 s, which is what an event stream would cost).
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from uwsgi_reload.browser import state
from uwsgi_reload.browser.client import CLIENT_JS

PREFIX = "/__uwsgi_reload__/"
MAX_BODY = 10_000_000  # a bigger page is passed through untouched
NONCE = re.compile(r"'nonce-([A-Za-z0-9+/=_-]+)'")

StartResponse = Callable[..., Any]
App = Callable[[dict, StartResponse], Iterable[bytes]]


def _header(headers: list[tuple[str, str]], name: str) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value
    return None


def script_nonce(headers: list[tuple[str, str]]) -> str:
    """The nonce the page's Content-Security-Policy allows scripts with ('' if none):
    from ``script-src``, or ``default-src`` when there is no ``script-src``."""
    for key, value in headers:
        if key.lower() != "content-security-policy":
            continue
        directives = {}
        for directive in value.split(";"):
            name, _, sources = directive.strip().partition(" ")
            directives.setdefault(name.lower(), sources)
        sources = directives.get("script-src-elem") or directives.get("script-src")
        if sources is None:
            sources = directives.get("default-src", "")
        found = NONCE.search(sources)
        if found:
            return found.group(1)
    return ""


def injectable(status: str, headers: list[tuple[str, str]]) -> bool:
    """A 200 HTML page, not compressed: the only responses we touch."""
    content_type = (_header(headers, "content-type") or "").split(";")[0].strip().lower()
    return (
        status.split(" ", 1)[0] == "200"
        and content_type == "text/html"
        and _header(headers, "content-encoding") is None
    )


def insert_tag(body: bytes, tag: bytes) -> bytes | None:
    """``body`` with ``tag`` before its last ``</body>``; None when it has none."""
    at = body.lower().rfind(b"</body>")
    if at < 0:
        return None
    return body[:at] + tag + body[at:]


class _Closing:
    """Iterates over ``chunks``, then ``rest``; closes ``rest`` (WSGI's close())."""

    def __init__(self, chunks: list[bytes], rest: Iterable[bytes]) -> None:
        self.chunks = chunks
        self.rest = rest

    def __iter__(self) -> Iterator[bytes]:
        yield from self.chunks
        yield from self.rest

    def close(self) -> None:
        close = getattr(self.rest, "close", None)
        if close is not None:
            close()


class BrowserMiddleware:
    """Wraps the app's WSGI callable. ``generation`` gives the generation this process
    serves when the host knows it in-process (gunicorn's workers); else the state
    file's is used."""

    def __init__(
        self, app: App, state_file: str, generation: Callable[[], str] | None = None
    ) -> None:
        self.app = app
        self.state_file = state_file
        self.generation = generation
        self.uwsgi_reload_browser = True

    def state(self) -> dict[str, Any]:
        data = state.read(self.state_file)
        if self.generation is not None:
            data["generation"] = self.generation()
        return {"generation": data.get("generation", ""), "held": data.get("held", [])}

    def __call__(self, environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith(PREFIX):
            return self._own(path[len(PREFIX) :], start_response)
        return self._page(environ, start_response)

    def _own(self, name: str, start_response: StartResponse) -> list[bytes]:
        if name == "state":
            body = json.dumps(self.state()).encode("utf-8")
            content_type = "application/json"
        elif name == "client.js":
            body = CLIENT_JS
            content_type = "text/javascript; charset=utf-8"
        else:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"uwsgi-reload: no such resource\n"]
        start_response(
            "200 OK",
            [
                ("Content-Type", content_type),
                ("Content-Length", str(len(body))),
                ("Cache-Control", "no-store"),
            ],
        )
        return [body]

    def _page(self, environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        deferred: dict[str, Any] = {}
        written: list[bytes] = []
        returned = False

        def capture(status: str, headers: list, exc_info: Any = None) -> Callable:
            # after the app returned (a generator app calls this while iterated), or an
            # error page: not ours to change
            if returned or exc_info is not None or not injectable(status, headers):
                return start_response(status, headers, exc_info)
            deferred.update(status=status, headers=headers)
            return written.append

        result = self.app(environ, capture)
        returned = True
        if not deferred:
            return result
        status, headers = deferred["status"], deferred["headers"]
        length = _header(headers, "content-length")
        streaming = length is None and not isinstance(result, (list, tuple))
        too_big = length is not None and (not length.isdigit() or int(length) > MAX_BODY)
        if streaming or too_big:
            write = start_response(status, headers)
            for chunk in written:
                write(chunk)
            return result
        try:
            body = b"".join([*written, *result])
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        page = insert_tag(body, self._tag(environ, headers))
        if page is None:
            page = body
        else:
            headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
            headers.append(("Content-Length", str(len(page))))
        start_response(status, headers)
        return [page]

    def _tag(self, environ: dict, headers: list[tuple[str, str]]) -> bytes:
        base = environ.get("SCRIPT_NAME", "").rstrip("/") + PREFIX
        nonce = script_nonce(headers)
        attributes = {
            "src": base + "client.js",
            "data-state": base + "state",
            "data-generation": self.state()["generation"],
        }
        if nonce:
            attributes["nonce"] = nonce
        text = " ".join(f'{k}="{html.escape(v, quote=True)}"' for k, v in attributes.items())
        return f"<script {text}></script>".encode()


def wrap(app: App, state_file: str, generation: Callable[[], str] | None = None) -> App:
    """The app with the middleware around it (once: a wrapped app is returned as is)."""
    if getattr(app, "uwsgi_reload_browser", False):
        return app
    return BrowserMiddleware(app, state_file, generation)
