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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

BIN = Path(sys.executable).parent
UWSGI = str(BIN / "uwsgi")


def free_port() -> int:
    """A port free right now. Another process may take it before our server binds it:
    start servers with :func:`start_on_free_port`, which retries then."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# What a server logs when its port was taken between free_port() and its bind
ADDRESS_IN_USE = ("Address already in use", "Connection in use")


def start_on_free_port(
    start: Callable[[int], Server], bound: str, attempts: int = 5, timeout: float = 30.0
) -> Server:
    """``start(port)`` on a port from :func:`free_port`, until the server logs ``bound``
    (its listening socket is ours); a server that lost its port to another process
    is stopped and started again on another port."""
    for _ in range(attempts):
        server = start(free_port())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            log = server.log()
            if re.search(bound, log):
                return server
            if any(text in log for text in ADDRESS_IN_USE):
                break
            if server.proc.poll() is not None:
                return server  # exited for another reason: the test says what it expected
            time.sleep(0.02)
        else:
            return server  # never bound: the test's own wait explains it
        server.stop()
    raise AssertionError(server.explain(f"no free port after {attempts} attempts"))


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
    the request (with uWSGI's own py-autoreload too). Any other failure, or a second
    reset, is returned. Tests bound the retries: at most RETRIES_PER_RELOAD a reload."""
    status, body = get(url, timeout)
    if status == 0 and "ConnectionResetError" in body:
        status, body = get(url, timeout)
        return status, body, 1
    return status, body, 0


# The uWSGI race above hits a request now and then, not every request of a reload: a
# test under a request loop allows this many retries per reload, and fails beyond.
RETRIES_PER_RELOAD = 1


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

    def explain(self, what: str, tail: int = 60) -> str:
        lines = self.log().splitlines()[-tail:]
        status, body = self.last
        return (
            f"{what}\nlast response: {status} {body[:300]!r}\n"
            f"--- processes (pid, state, kernel wait, stack) ---\n{self.processes()}\n"
            f"--- last {len(lines)} log lines ({self.log_path}) ---\n" + "\n".join(lines)
        )

    def processes(self) -> str:
        """What each process of the server's group is doing (a master that routes no
        signal, a worker stuck in a handler), read from /proc."""
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                if os.getpgid(int(entry)) != self.proc.pid:
                    continue
                status = Path(f"/proc/{entry}/status").read_text()
                state = re.search(r"State:\s+(.*)", status).group(1)
                wchan = Path(f"/proc/{entry}/wchan").read_text()
                stack = Path(f"/proc/{entry}/stack").read_text().split()[1::2][:5]
            except (OSError, AttributeError):
                continue
            found.append(f"{entry} {state} {wchan or '-'} {' '.join(stack)}")
        return "\n".join(found) or "(none)"

    def get(self, path: str = "/", timeout: float = 5.0) -> tuple[int, str]:
        self.last = get(self.url + path, timeout)
        return self.last

    def wait_for_body(self, expected: str, timeout: float = 15.0, path: str = "/") -> float:
        """Poll until the body contains ``expected``; return the seconds it took."""
        return self.wait_until(lambda: expected in self.get(path)[1], timeout, f"body {expected!r}")

    def worker_bodies(self, workers: int = 2, path: str = "/?sleep=0.3") -> dict[int, str]:
        """{worker pid: body} from ``workers`` slow requests sent at once, so that no
        worker can answer two of them (bodies carry ``pid=N``, see APP)."""
        with ThreadPoolExecutor(workers) as pool:
            results = list(pool.map(lambda _: get(self.url + path), range(workers)))
        answers: dict[int, str] = {}
        for status, body in results:
            found = re.search(r"pid=(\d+)", body)
            if status == 200 and found:
                answers[int(found.group(1))] = body
        self.last = (0, f"{len(answers)} workers answered: {answers} (all: {results})")
        return answers

    def wait_every_worker(
        self, expected: str, workers: int = 2, timeout: float = 15.0, path: str = "/"
    ) -> float:
        """Poll until ``workers`` different workers answer at once, each with ``expected``
        in its body (sequential GETs may all reach the same worker). A change a framework
        applies in place reaches each worker when it is between requests, so a worker may
        answer one more request with the old page: wait for it, never assert at once."""

        def every() -> bool:
            answers = self.worker_bodies(workers, path=f"{path}?sleep=0.3")
            return len(answers) >= workers and all(expected in b for b in answers.values())

        return self.wait_until(every, timeout, f"{expected!r} from each of {workers} workers")

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
        """SIGINT (uWSGI's stop; SIGTERM would mean reload) to the master, then to the
        whole process group, as a terminal's Ctrl-C sends it, up to 8 times; then kill
        the group. uWSGI 2.0 loses a SIGINT that reaches a worker before the worker has
        set its own handler (during the post-fork hooks, or the app's load under
        lazy-apps): Python's handler takes it, and the master waits for that worker up
        to worker-reload-mercy (60 s). A master re-executing itself loses it too."""
        for attempt in range(8):
            if self.proc.poll() is not None:
                break
            try:
                if attempt == 0:
                    self.proc.send_signal(signal.SIGINT)
                else:
                    os.killpg(self.proc.pid, signal.SIGINT)
            except ProcessLookupError:
                break
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


def both_workers(server: Server, path: str = "/", timeout: float = 10.0) -> dict[str, str]:
    """{pid: body} of ``path`` from both workers: two slow requests at once cannot share
    a worker (the apps sleep on ``?sleep=S`` and put ``pid=N`` in the body)."""
    pages: dict[str, str] = {}

    def reached() -> bool:
        with ThreadPoolExecutor(2) as pool:
            results = list(pool.map(lambda _: get(f"{server.url}{path}?sleep=0.3"), range(2)))
        for status, body in results:
            server.last = (status, body)
            found = re.search(r"pid=(\d+)", body)
            if status == 200 and found:
                pages[found.group(1)] = body
        return len(pages) >= 2

    server.wait_until(reached, timeout, f"a page of {path} from each of the 2 workers")
    return pages


def assert_all(server: Server, pages: dict[str, str], expected: str) -> None:
    stale = {pid: body for pid, body in pages.items() if expected not in body}
    assert not stale, server.explain(f"workers without {expected!r}: {stale}")


def run_in_project(project: Path, script: str, env: dict[str, str] | None = None) -> None:
    """Run ``script`` with a fresh interpreter in ``project`` (importable); it must pass."""
    python_path = os.pathsep.join(filter(None, [str(project), os.environ.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=project,
        env={**os.environ, **(env or {}), "PYTHONPATH": python_path},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


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
        # every check in the log: a failing test shows what the checks saw
        "uwsgi-reload-debug = true\n"
        "die-on-term = true\n" + backend + body,
    )


UWSGI_BOUND = r"bound to TCP address 127\.0\.0\.1:\d+"


def start_uwsgi(cwd: Path, body: str, period: int = 1, env: dict | None = None) -> Server:
    def start(port: int) -> Server:
        ini = cwd / f"uwsgi-{port}.ini"
        ini.write_text(uwsgi_ini(port, body, period))
        return Server([UWSGI, "--ini", str(ini)], cwd, port, env)

    return start_on_free_port(start, UWSGI_BOUND)


READY = r"uwsgi_reload: reloading on"
# the first check of every generation: the banner once per server start, then this line
GENERATION = r"uwsgi_reload: (?:reloading on|new code serving)"

# The smallest app whose answer comes from a second module: editing greeting.py is the
# save a test makes. The body names the worker (``pid=N``); ``?sleep=S`` holds the
# worker S seconds, so that requests sent at once reach different workers.
APP = """\
import os, time
import greeting

def application(environ, start_response):
    if environ.get("QUERY_STRING", "").startswith("sleep="):
        time.sleep(float(environ["QUERY_STRING"][6:]))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"{greeting.TEXT} pid={os.getpid()}".encode()]
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


def gunicorn_control_socket_off() -> list[str]:
    """gunicorn 27 opens a control socket per user by default, which parallel runs
    share: the flag that turns it off, where gunicorn has it (none without gunicorn)."""
    try:
        from gunicorn.config import Config
    except ImportError:
        return []
    return ["--no-control-socket"] if "control_socket_disable" in Config().settings else []


# An app that rewrites a file of its own tracked tree at every start: the loop guard's case.
LOOP_APP = """\
import os, time
os.makedirs('data', exist_ok=True)
with open('data/state.json', 'w') as f:
    f.write(str(time.time()))
def application(environ, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [b'app-v1']
"""
