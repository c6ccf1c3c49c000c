"""Real server processes for integration tests: start on a random loopback port, poll
with deadlines, fail with what was served and what the log said, stop by own pid."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

BIN = Path(sys.executable).parent
UWSGI = str(BIN / "uwsgi")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write(path: Path, text: str) -> None:
    """Write like an editor that saves in place; makes parent folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    """(status, body); status 0 and the error text when the request failed."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode("utf-8", "replace")
    except (OSError, urllib.error.URLError) as error:
        return 0, f"{type(error).__name__}: {error}"


def get_idempotent(url: str, timeout: float = 5.0) -> tuple[int, str, int]:
    """(status, body, retries): GET once more after a connection reset that came before
    any response byte, as HTTP clients do for idempotent requests. uWSGI itself resets
    such a connection when a worker gets its reload signal between accept() and reading
    the request (measured: about 1 in a few thousand requests under a request loop, with
    uWSGI's own py-autoreload too). Any other failure, or a second reset, is returned."""
    status, body = get(url, timeout)
    if status == 0 and "ConnectionResetError" in body:
        status, body = get(url, timeout)
        return status, body, 1
    return status, body, 0


class Server:
    """A server process started in its own process group, logging to a file."""

    def __init__(self, argv: list[str], cwd: Path, port: int, env: dict | None = None):
        self.argv = argv
        self.cwd = cwd
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = cwd / f"server-{port}.log"
        self.last: tuple[int, str] = (0, "no request yet")
        self.proc = subprocess.Popen(
            argv,
            cwd=cwd,
            stdout=open(self.log_path, "wb"),  # noqa: SIM115 (the process owns it)
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def explain(self, what: str, tail: int = 40) -> str:
        lines = self.log().splitlines()[-tail:]
        status, body = self.last
        return (
            f"{what}\nlast response: {status} {body[:300]!r}\n"
            f"--- last {len(lines)} log lines ({self.log_path}) ---\n" + "\n".join(lines)
        )

    def get(self, path: str = "/", timeout: float = 5.0) -> tuple[int, str]:
        self.last = get(self.url + path, timeout)
        return self.last

    def wait_for_body(self, expected: str, timeout: float = 15.0, path: str = "/") -> float:
        """Poll until the body contains ``expected``; return the seconds it took."""
        return self.wait_until(lambda: expected in self.get(path)[1], timeout, f"body {expected!r}")

    def wait_for_log(self, pattern: str, timeout: float = 15.0, count: int = 1) -> re.Match:
        found: list[re.Match] = []

        def seen() -> bool:
            found[:] = list(re.finditer(pattern, self.log()))
            return len(found) >= count

        self.wait_until(seen, timeout, f"log line /{pattern}/ x{count}")
        return found[count - 1]

    def wait_until(self, predicate: Callable[[], bool], timeout: float, what: str) -> float:
        start = time.monotonic()
        deadline = start + timeout
        while True:
            if predicate():
                return time.monotonic() - start
            if self.proc.poll() is not None:
                raise AssertionError(
                    self.explain(f"server exited ({self.proc.returncode}) waiting for {what}")
                )
            if time.monotonic() > deadline:
                raise AssertionError(self.explain(f"timed out after {timeout}s waiting for {what}"))
            time.sleep(0.05)

    def holds(self, predicate: Callable[[], bool], seconds: float, what: str) -> None:
        """Check ``predicate`` for ``seconds`` (a few periods: something must *not*
        happen, such as a second reload); fail as soon as it is false."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if not predicate():
                raise AssertionError(self.explain(f"no longer true: {what}"))
            if self.proc.poll() is not None:
                raise AssertionError(self.explain(f"server exited ({self.proc.returncode})"))
            time.sleep(0.05)
        if not predicate():
            raise AssertionError(self.explain(f"no longer true: {what}"))

    def count(self, pattern: str) -> int:
        return len(re.findall(pattern, self.log()))

    def wait_exit(self, timeout: float = 15.0) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(self.explain("server did not exit")) from None

    def stop(self) -> None:
        """SIGINT (uWSGI's stop; SIGTERM would mean reload), repeated because a signal
        that lands while the master re-executes itself is lost; then kill the group."""
        for _ in range(8):
            if self.proc.poll() is not None:
                break
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(1)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if self.proc.poll() is None:
            self.proc.wait(5)


# `make test` runs the uWSGI tests once with the default backend (auto: inotify here)
# and once more with RELOAD_TEST_BACKEND=poll. (Not UWSGI_*: uWSGI reads those as options.)
BACKEND = os.environ.get("RELOAD_TEST_BACKEND", "")


def plain_uwsgi_ini(port: int, body: str) -> str:
    """A [uwsgi] section of a master and 2 workers on an HTTP socket, then ``body``."""
    return f"[uwsgi]\nhttp-socket = 127.0.0.1:{port}\nmaster = true\nprocesses = 2\n" + body


def uwsgi_ini(port: int, body: str, period: int = 1) -> str:
    """A [uwsgi] section with our defaults; ``body`` adds or overrides keys."""
    backend = f"uwsgi-reload-backend = {BACKEND}\n" if BACKEND else ""
    return plain_uwsgi_ini(
        port,
        "import = uwsgi_reload\n"
        f"uwsgi-reload-period = {period}\n"
        "uwsgi-reload-delay = 0.1\n"
        "die-on-term = true\n" + backend + body,
    )


def start_uwsgi(cwd: Path, body: str, period: int = 1, env: dict | None = None) -> Server:
    port = free_port()
    ini = cwd / f"uwsgi-{port}.ini"
    ini.write_text(uwsgi_ini(port, body, period))
    return Server([UWSGI, "--ini", str(ini)], cwd, port, env)


READY = r"uwsgi_reload: reloading on"
# the first check of every generation: the banner once per server start, then this line
GENERATION = r"uwsgi_reload: (?:reloading on|new code serving)"

# The smallest app whose answer comes from a second module: editing greeting.py is the
# save a test makes.
APP = """\
import greeting

def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [greeting.TEXT.encode()]
"""


def make_app(folder: Path, text: str = "v1") -> None:
    write(folder / "app.py", APP)
    write(folder / "greeting.py", f"TEXT = {text!r}\n")


def serve_app(folder: Path, start: Callable[..., Server], body: str = "") -> Server:
    """The common start of a test: the two-module app, uWSGI running it with reloading
    on, its first check done and "v1" served."""
    make_app(folder)
    server = start("wsgi-file = app.py\n" + body)
    server.wait_for_log(READY)
    server.wait_for_body("v1")
    return server
