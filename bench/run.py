#!/usr/bin/env python3
"""Benchmark uwsgi-reload against uWSGI's own reloaders, side by side, in one run.

Run by hand, never by CI (see bench/README.md). For each variant in VARIANTS it starts
a real uWSGI on a random loopback port serving an app (--apps: a generated project of
N small modules, or a real Wagtail site), and measures:

  idle     CPU per second of the whole instance (master + workers), for each N
  cold     the app's cold start (uWSGI alone, start -> first response): the floor
  latency  save -> first response with the new code (median, worst of --saves saves),
           with a request loop running: worst request and failed requests; and where
           the time of each reload goes, from uWSGI's microsecond log stamps. The saves
           are taken in --rounds rounds over the variants (a server per round), with
           the cold starts between them, so that the machine's drift reaches them all

Results: a markdown table on stdout and in bench/results/, the raw numbers as JSON and
a PNG chart (matplotlib, the `bench` extra). Servers are stopped by their own pid
(SIGINT; SIGTERM means reload in uWSGI), then their process group is killed.
"""

from __future__ import annotations

import argparse
import compileall
import http.client
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

from breakdown import STEPS, median_steps, reload_steps, stamped_lines

from uwsgi_reload.hosts.uwsgi import masterfifo, waker

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
CACHE = HERE / ".cache"  # the generated Wagtail site, made once (git-ignored)
UWSGI = os.environ.get("UWSGI", str(Path(sys.executable).parent / "uwsgi"))
READY = re.compile(r"uwsgi_reload: reloading on.*?tracking (\d+) files")
OURS = "import = uwsgi_reload\n"
LAZY = "lazy-apps = true\nforkbomb-delay = 0\n"  # as ini/chain.ini
WARM = "shared-import = uwsgi_reload\n"  # warm mode: the master imports us
# Workers replaced by our reload skip Python's teardown (Py_Finalize) by default, which
# saves 0.5 s with a Wagtail site loaded; these variants keep it.
TEARDOWN = "uwsgi-reload-fast-exit = false\n"
WARM_SORTED = re.compile(r"warm: \d+ library modules can stay in the master")
# Every log line stamped with the wall clock in microseconds: the per-reload breakdown
# (bench/breakdown.py) is read from these stamps. It gives the master a log pipe.
LOG_STAMPS = "log-encoder = format ${micros} ${msgnl}\n"


@dataclass(frozen=True)
class Variant:
    """One way of reloading. ``ini`` is added to the [uwsgi] section ({trigger} is a
    file to touch). ``after_save`` is what the benchmark does right after writing the
    file: "" (the server notices by itself), "touch" (touch {trigger}), "hup"
    (SIGHUP to the master), "fifo:X" (write X to the master FIFO). ``wake`` makes the
    benchmark write no-op bytes to the master FIFO every 10 ms until the old workers
    are gone (what a helper forked by our reloader would do)."""

    name: str
    ini: str
    group: str  # uwsgi | ours | trigger
    note: str = ""
    after_save: str = ""
    wake: bool = False
    sections: tuple[str, ...] = ("idle", "latency")
    pending: bool = False  # run only when named (same as another variant here)
    # unmeasured saves first (warm mode: the master learns the libraries at the first)
    warmup: int = 0

    @property
    def needs_fifo(self) -> bool:
        """Only what needs a master FIFO gets one: chain mode, FIFO triggers, waking.
        Every other variant runs the ini a user has (no FIFO, request logging on)."""
        needs = ("mode = chain", "mode = warm")
        return any(n in self.ini for n in needs) or self.after_save.startswith("fifo:") or self.wake


VARIANTS: list[Variant] = [
    Variant("none", "", "uwsgi", "uWSGI alone, no reloader (reference)", sections=("idle",)),
    Variant("py-autoreload", "py-autoreload = 1\n", "uwsgi", "uWSGI's own, polls sys.modules"),
    Variant(
        "touch-reload",
        "touch-reload = {trigger}\n",
        "uwsgi",
        "file touched right after each save (an ideal external watcher)",
        after_save="touch",
    ),
    Variant("ours-poll", OURS + "uwsgi-reload-backend = poll\n", "ours", "graceful"),
    Variant(
        "ours-poll-chain",
        OURS + "uwsgi-reload-backend = poll\nuwsgi-reload-mode = chain\n" + LAZY,
        "ours",
        "chain, lazy-apps + master-fifo",
    ),
    Variant(
        "ours-inotify", OURS + "uwsgi-reload-backend = inotify\n", "ours", "graceful", pending=True
    ),
    Variant("ours-auto", OURS + "uwsgi-reload-backend = auto\n", "ours", "graceful"),
    Variant(
        "ours-inotify-chain",
        OURS + "uwsgi-reload-backend = inotify\nuwsgi-reload-mode = chain\n" + LAZY,
        "ours",
        "chain, lazy-apps + master-fifo",
        pending=True,
    ),
    Variant(
        "ours-auto-chain",
        OURS + "uwsgi-reload-backend = auto\nuwsgi-reload-mode = chain\n" + LAZY,
        "ours",
        "chain, lazy-apps + master-fifo",
    ),
    Variant(
        "ours-auto-warm",
        WARM + "uwsgi-reload-backend = auto\nuwsgi-reload-mode = warm\n" + LAZY,
        "ours",
        "warm: lazy-apps + master-fifo + shared-import, the master keeps the libraries",
        warmup=1,
    ),
    Variant(
        "ours-auto-warm-teardown",
        WARM + "uwsgi-reload-backend = auto\nuwsgi-reload-mode = warm\n" + LAZY + TEARDOWN,
        "ours",
        "warm, fast-exit off",
        warmup=1,
    ),
    Variant(
        "ours-auto-teardown",
        OURS + "uwsgi-reload-backend = auto\n" + TEARDOWN,
        "ours",
        "graceful, fast-exit off",
    ),
    # Reload mechanics alone: the benchmark triggers the reload right after the save.
    Variant("reload-hup", "", "trigger", "graceful: SIGHUP", "hup", sections=("latency",)),
    Variant("reload-hup+wake", "", "trigger", "graceful + master woken", "hup", True, ("latency",)),
    Variant("reload-chain", LAZY, "trigger", "FIFO c, lazy-apps", "fifo:c", sections=("latency",)),
    Variant(
        "reload-chain+wake",
        LAZY,
        "trigger",
        "FIFO c + master woken",
        "fifo:c",
        True,
        ("latency",),
    ),
    Variant(
        "reload-chain+wake+fb0",
        LAZY + "forkbomb-delay = 0\n",
        "trigger",
        "FIFO c + woken, forkbomb-delay 0",
        "fifo:c",
        True,
        ("latency",),
    ),
    Variant(
        "reload-workers", LAZY, "trigger", "FIFO w, lazy-apps", "fifo:w", sections=("latency",)
    ),
    Variant(
        "reload-workers+wake+fb0",
        LAZY + "forkbomb-delay = 0\n",
        "trigger",
        "FIFO w + woken, forkbomb-delay 0",
        "fifo:w",
        True,
        ("latency",),
    ),
]
DEFAULT_VARIANTS = [v.name for v in VARIANTS if not v.pending]
# the apps of issue 13's table: the smallest app, a large generated one, a real project
DEFAULT_APPS = ["modules-1", "modules-3000", "wagtail"]
QUICK_APPS = DEFAULT_APPS
QUICK_VARIANTS = [
    "none",
    "py-autoreload",
    "ours-poll",
    "ours-auto",
    "ours-auto-teardown",
    "ours-auto-chain",
    "ours-auto-warm",
    "reload-hup+wake",
]


# --- the project under test ----------------------------------------------------------

APP = """\
import os

import mods
import version


def application(environ, start_response):
    body = f"{version.TOKEN} {os.getpid()} {mods.COUNT}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
"""

MODULE = """\
\"\"\"Generated module {i}.\"\"\"

NAME = "m{i:05d}"
VALUES = tuple(range({i} % 7 + 3))


def describe(x: int = {i}) -> str:
    return f"{{NAME}}: {{x + sum(VALUES)}}"
"""


def make_project(folder: Path, modules: int, per_package: int = 100) -> Path:
    """A WSGI app importing ``modules`` small modules, ``per_package`` per folder,
    byte-compiled so every variant starts from warm caches."""
    if folder.exists():
        shutil.rmtree(folder)
    mods = folder / "mods"
    mods.mkdir(parents=True)
    packages = []
    for start in range(0, modules, per_package):
        package = f"p{start // per_package:03d}"
        packages.append(package)
        names = []
        for i in range(start, min(start + per_package, modules)):
            name = f"m{i:05d}"
            names.append(name)
            (mods / package).mkdir(exist_ok=True)
            (mods / package / f"{name}.py").write_text(MODULE.format(i=i))
        (mods / package / "__init__.py").write_text(f"from . import {', '.join(names)}\n")
    (mods / "__init__.py").write_text(
        "".join(f"from . import {p}\n" for p in packages) + f"COUNT = {modules}\n"
    )
    (folder / "app.py").write_text(APP)
    (folder / "version.py").write_text('TOKEN = "start"\n')
    compileall.compile_dir(str(folder), quiet=1, workers=2)
    return folder


@dataclass(frozen=True)
class App:
    """A project the benchmark serves. ``ini`` holds its lines of the [uwsgi] section;
    a save rewrites ``edited`` with ``source(token)``; ``shows(body, token)`` says
    whether a response comes from the code of that save. ``loop_pause`` is the pause
    of the request loop that runs during the saves."""

    name: str
    folder: Path
    ini: str
    edited: Path
    source: Callable[[str], str]
    shows: Callable[[str, str], bool]
    loop_pause: float = 0.005
    modules: int | None = None  # generated apps: how many modules


FIRST_TOKEN = "start"


def synthetic_app(work: Path, modules: int) -> App:
    folder = make_project(work / f"project-{modules}", modules)
    return App(
        name=f"modules-{modules}",
        folder=folder,
        ini="wsgi-file = app.py\n",
        edited=folder / "version.py",
        source=lambda token: f'TOKEN = "{token}"\n',
        shows=lambda body, token: body.startswith(token + " "),
        modules=modules,
    )


# The Wagtail site: `wagtail start benchsite` as generated, `migrate` run once, and one
# change so a save shows on the home page: home/models.py holds a marker that
# HomePage.get_context passes to the template (a save rewrites that file, which the
# home page's code path imports), and the template prints it.
WAGTAIL_MODELS = """\
from django.db import models

from wagtail.models import Page

BENCH_MARKER = "{token}"


class HomePage(Page):
    def get_context(self, request, *args, **kwargs):
        context = super().get_context(request, *args, **kwargs)
        context["bench_marker"] = BENCH_MARKER
        return context
"""
WAGTAIL_TEMPLATE_LINE = '<p id="bench-marker">{{ bench_marker }}</p>\n'


def run_or_explain(command: list[str], cwd: Path) -> None:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(
            f"{' '.join(command)} (in {cwd}) exited with {done.returncode}:\n"
            f"{done.stdout[-2000:]}{done.stderr[-2000:]}"
        )


def wagtail_site(cache: Path) -> Path:
    """The generated, migrated site in ``cache`` (made on the first call: about 30 s),
    keyed by the Wagtail and Django versions installed."""
    try:
        import django
        import wagtail
    except ImportError as error:
        raise SystemExit(
            f"the wagtail app needs Wagtail and Django ({error}): "
            "pip install -e '.[django,bench]' (make bench does)"
        ) from error
    site = cache / f"wagtail-{wagtail.__version__}-django-{django.__version__}"
    if (site / ".complete").exists():
        return site
    shutil.rmtree(site, ignore_errors=True)
    site.mkdir(parents=True)
    print(f"making the Wagtail site in {site} (once)", flush=True)
    run_or_explain([str(Path(sys.executable).parent / "wagtail"), "start", "benchsite"], site)
    project = site / "benchsite"
    (project / "home" / "models.py").write_text(WAGTAIL_MODELS.format(token=FIRST_TOKEN))
    template = project / "home" / "templates" / "home" / "home_page.html"
    text = template.read_text()
    marker = "{% block content %}\n"
    if marker not in text:
        raise SystemExit(f"{template} has no '{marker.strip()}' line: the site template changed")
    template.write_text(text.replace(marker, marker + WAGTAIL_TEMPLATE_LINE, 1))
    run_or_explain([sys.executable, "manage.py", "migrate", "--noinput"], project)
    (site / ".complete").touch()
    return site


def wagtail_app(work: Path, cache: Path) -> App:
    """A fresh copy of the cached site (saves edit it), byte-compiled like the
    generated apps."""
    folder = work / "wagtail"
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(wagtail_site(cache) / "benchsite", folder)
    compileall.compile_dir(str(folder), quiet=1, workers=2)
    return App(
        name="wagtail",
        folder=folder,
        ini=("module = benchsite.wsgi\nenv = DJANGO_SETTINGS_MODULE=benchsite.settings.dev\n"),
        edited=folder / "home" / "models.py",
        source=lambda token: WAGTAIL_MODELS.format(token=token),
        shows=lambda body, token: f'<p id="bench-marker">{token}</p>' in body,
        # a page costs tens of ms of CPU: a request loop 5 ms apart would keep a
        # worker busy all the time on a 2-core machine
        loop_pause=0.05,
    )


APP_NAME = re.compile(r"modules-(\d+)|wagtail")


def make_app(name: str, work: Path, cache: Path) -> App:
    match = APP_NAME.fullmatch(name)
    if match is None:
        raise ValueError(f"unknown app {name!r}: expected modules-N (N >= 1) or wagtail")
    if name == "wagtail":
        return wagtail_app(work, cache)
    return synthetic_app(work, int(match.group(1)))


def reset(app: App) -> None:
    """Put the edited file back to its first version (before each server), leaving
    it alone when it has it (so its .pyc stays fresh)."""
    if app.edited.read_text() != app.source(FIRST_TOKEN):
        app.edited.write_text(app.source(FIRST_TOKEN))


# --- a uWSGI instance ------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port: int, timeout: float = 10.0) -> tuple[int, str, float]:
    """(status, body, seconds); status 0 when the request failed."""
    start = time.perf_counter()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        try:
            conn.request("GET", "/")
            response = conn.getresponse()
            body = response.read().decode("utf-8", "replace")
            return response.status, body, time.perf_counter() - start
        finally:
            conn.close()
    except (OSError, http.client.HTTPException) as error:
        return 0, f"{type(error).__name__}: {error}", time.perf_counter() - start


class Uwsgi:
    """A uWSGI instance in its own process group, logging to a file."""

    def __init__(self, variant: Variant, app: App, logs: Path, extra: str = "") -> None:
        self.port = free_port()
        self.app = app
        self.fifo = str(logs / f"fifo-{self.port}")
        self.trigger = str(logs / f"trigger-{self.port}")
        Path(self.trigger).touch()
        self.log_path = logs / f"{variant.name}-{self.port}.log"
        ini = logs / f"{variant.name}-{self.port}.ini"
        ini.write_text(
            "[uwsgi]\n"
            f"http-socket = 127.0.0.1:{self.port}\n"
            "master = true\n"
            "processes = 2\n"
            + app.ini
            + "die-on-term = true\n"
            + LOG_STAMPS
            + (f"master-fifo = {self.fifo}\n" if variant.needs_fifo else "")
            + variant.ini.format(trigger=self.trigger)
            + (extra if variant.group == "ours" else "")
        )
        with open(self.log_path, "wb") as log:
            self.started = time.perf_counter()
            self.proc = subprocess.Popen(
                [UWSGI, "--ini", str(ini)],
                cwd=app.folder,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def wait(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if self.proc.poll() is not None:
                raise RuntimeError(f"uWSGI exited waiting for {what}; see {self.log_path}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {what}; see {self.log_path}")
            time.sleep(0.05)

    def wait_serving(self, timeout: float = 120) -> None:
        self.wait(lambda: get(self.port, 30)[0] == 200, timeout, "the app to answer")

    def wait_ours(self, timeout: float = 60) -> int:
        """Wait for our start line; return how many files we track."""
        self.wait(lambda: READY.search(self.log()) is not None, timeout, "uwsgi_reload's start")
        match = READY.search(self.log())
        return int(match.group(1)) if match else 0

    def pids(self) -> list[int]:
        """Every process of the instance: its process group."""
        return group_pids(self.proc.pid)

    def workers(self) -> list[int]:
        return [pid for pid in self.pids() if pid != self.proc.pid]

    def cpu_seconds(self) -> float:
        return sum(cpu_seconds(pid) for pid in self.pids())

    def fifo_write(self, data: bytes) -> None:
        masterfifo.write(self.fifo, data)

    def stop(self) -> None:
        """SIGINT to the master (its stop), then kill what is left of the group: a
        shutdown racing a chain reload can leave a respawned worker behind."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            with suppress(subprocess.TimeoutExpired):
                self.proc.wait(10)
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)


_TICK = os.sysconf("SC_CLK_TCK")


def group_pids(pgid: int) -> list[int]:
    """The live processes of a process group."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != b"Z":
            found.append(int(entry))
    return found


def cpu_seconds(pid: int) -> float:
    """CPU time of every thread of ``pid``: schedstat (ns) when the kernel keeps it,
    else utime + stime from stat (clock ticks)."""
    total_ns = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0.0
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total_ns += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            total_ns = -1
            break
    if total_ns > 0:
        return total_ns / 1e9
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICK
    except (OSError, IndexError, ValueError):
        return 0.0


@contextmanager
def running(variant: Variant, app: App, logs: Path, extra: str) -> Iterator[Uwsgi]:
    reset(app)
    server = Uwsgi(variant, app, logs, extra)
    try:
        yield server
    finally:
        server.stop()


# --- measurements ----------------------------------------------------------------------


@dataclass
class Idle:
    variant: str
    app: str
    cpu_ms_per_s: float
    tracked: int | None = None
    error: str = ""
    modules: int | None = None  # generated apps: how many modules


@dataclass
class ColdStart:
    """Starting uWSGI (no reloader) -> the first response with the app loaded: what a
    graceful reload, which re-executes the master and imports the app again, cannot
    beat (the floor)."""

    app: str
    starts: list[float] = field(default_factory=list)
    error: str = ""

    @property
    def median(self) -> float | None:
        return statistics.median(self.starts) if self.starts else None


@dataclass
class Latency:
    variant: str
    app: str
    saves: list[float | None] = field(default_factory=list)  # None: not seen in time
    requests: int = 0
    failed: int = 0
    worst_request: float = 0.0
    reloads_seen: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)  # the first few, as seen
    error: str = ""
    steps: list[dict[str, float | None]] = field(default_factory=list)  # per save

    @property
    def seen(self) -> list[float]:
        return [s for s in self.saves if s is not None]


def spread(total: int, parts: int) -> list[int]:
    """``total`` split into ``parts`` counts that differ by one at most, larger first."""
    return [total // parts + (i < total % parts) for i in range(parts)]


def start(variant: Variant, server: Uwsgi) -> int | None:
    server.wait_serving()
    if variant.group == "ours":
        return server.wait_ours()
    time.sleep(2)  # py-autoreload and touch-reload take their baseline at the first check
    return None


def measure_cold_start(
    app: App, logs: Path, count: int, result: ColdStart | None = None
) -> ColdStart:
    """``count`` starts of uWSGI alone (the `none` variant) serving ``app``: from the
    start of the uWSGI command to the first response showing the app, polling every
    5 ms (the listen socket exists before the app is loaded: early requests wait).
    Added to ``result`` when given."""
    none = next(v for v in VARIANTS if v.name == "none")
    result = result or ColdStart(app.name)
    for _ in range(count):
        with running(none, app, logs, "") as server:
            deadline = server.started + 120
            while time.perf_counter() < deadline:
                status, body, _took = get(server.port, 60)
                if status == 200 and app.shows(body, FIRST_TOKEN):
                    result.starts.append(time.perf_counter() - server.started)
                    break
                if server.proc.poll() is not None:
                    break
                time.sleep(0.005)
            else:
                result.error = f"no response in 120 s; see {server.log_path}"
                return result
            if server.proc.poll() is not None:
                result.error = f"uWSGI exited; see {server.log_path}"
                return result
    return result


def measure_idle(variant: Variant, app: App, logs: Path, seconds: float, extra: str) -> Idle:
    with running(variant, app, logs, extra) as server:
        try:
            tracked = start(variant, server)
            time.sleep(2)  # let the first checks fill their caches
            before = server.cpu_seconds()
            began = time.monotonic()
            time.sleep(seconds)
            used = server.cpu_seconds() - before
            took = time.monotonic() - began
        except RuntimeError as error:
            return Idle(variant.name, app.name, float("nan"), error=str(error), modules=app.modules)
    return Idle(variant.name, app.name, used * 1000 / took, tracked, modules=app.modules)


class RequestLoop(threading.Thread):
    """One client sending requests back to back (``pause`` apart) until stopped."""

    def __init__(self, port: int, pause: float = 0.005) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.pause = pause
        self.stopped = threading.Event()
        self.durations: list[float] = []
        self.failures: list[str] = []

    def run(self) -> None:
        while not self.stopped.is_set():
            status, body, took = get(self.port)
            self.durations.append(took)
            if status != 200:
                self.failures.append(f"{status} {body[:80]}")
            time.sleep(self.pause)


class Waker(threading.Thread):
    """Write a no-op byte to the master FIFO every 2 ms (waker.POKE_EVERY) until the
    given workers are gone: the master notices dead workers only when an event wakes it (else once a
    second). Stands in for the helper process our reloader would fork."""

    def __init__(self, server: Uwsgi, workers: list[int], limit: float = 15.0) -> None:
        super().__init__(daemon=True)
        self.server = server
        self.workers = workers
        self.limit = limit

    def run(self) -> None:
        end = time.monotonic() + self.limit
        poke = waker.fifo_byte(self.server.fifo)  # what our reloader's helper writes
        while time.monotonic() < end:
            with suppress(OSError):
                poke()
            if not any(os.path.exists(f"/proc/{pid}") for pid in self.workers):
                return
            time.sleep(waker.POKE_EVERY)


def after_save(variant: Variant, server: Uwsgi) -> None:
    workers = server.workers()
    if variant.after_save == "touch":
        os.utime(server.trigger)
    elif variant.after_save == "hup":
        os.kill(server.proc.pid, signal.SIGHUP)
    elif variant.after_save.startswith("fifo:"):
        server.fifo_write(variant.after_save[5:].encode())
    if variant.wake:
        Waker(server, workers).start()


RELOAD_LINES = {
    "graceful": r"binary reloading uWSGI",
    "chain": r"chain reload starting",
    "chain-dropped": r"chain reload already running",
    "warm": r"-> warm reload",
    "respawn": r"Respawned uWSGI worker",
    "forkbomb-sleep": r"worker respawning too fast",
}


def _shows(app: App, server: Uwsgi, token: str) -> bool:
    return app.shows(get(server.port)[1], token)


def warm_up(variant: Variant, app: App, server: Uwsgi) -> None:
    """Saves that are not measured: warm mode sorts the workers' imports in the
    background, then the first save restarts the master, which learns them."""
    server.wait(lambda: WARM_SORTED.search(server.log()) is not None, 300, "the sorted imports")
    for index in range(variant.warmup):
        token = f"warmup{index}"
        with open(app.edited, "w") as f:
            f.write(app.source(token))
        server.wait(partial(_shows, app, server, token), 60, f"warm-up save {index}")
    time.sleep(2)


def measure_latency(
    variant: Variant,
    app: App,
    logs: Path,
    saves: int,
    spacing: tuple[float, float],
    rng: random.Random,
    extra: str,
    result: Latency | None = None,
) -> Latency:
    """``saves`` saves on one server of ``variant``; added to ``result`` when given."""
    result = result or Latency(variant.name, app.name)
    wall: list[tuple[float, float | None]] = []  # (saved, seen) by the wall clock
    failures: list[str] = []
    with running(variant, app, logs, extra) as server:
        try:
            start(variant, server)
        except RuntimeError as error:
            result.error = str(error)
            return result
        if variant.warmup:
            warm_up(variant, app, server)
        loop = RequestLoop(server.port, app.loop_pause)
        loop.start()
        polls: list[float] = []
        try:
            for index in range(saves):
                time.sleep(rng.uniform(*spacing))
                token = f"save{index}-{rng.randrange(1 << 30)}"
                saved_at = time.time()
                began = time.perf_counter()
                with open(app.edited, "w") as f:  # an in-place save, like most editors
                    f.write(app.source(token))
                after_save(variant, server)
                seen = seen_at = None
                while time.perf_counter() - began < 30:
                    status, body, took = get(server.port)
                    polls.append(took)
                    if status == 200 and app.shows(body, token):
                        seen = time.perf_counter() - began
                        seen_at = time.time()
                        break
                    if status != 200:
                        result.failed += 1
                        failures.append(f"{status} {body[:80]}")
                    time.sleep(0.005)
                result.saves.append(seen)
                wall.append((saved_at, seen_at))
                if seen is None and server.proc.poll() is not None:
                    result.error = f"uWSGI exited; see {server.log_path}"
                    break
        finally:
            loop.stopped.set()
            loop.join(15)
        time.sleep(1)  # a chain reload finishes its last worker; its log lines land
        result.requests += len(loop.durations) + len(polls)
        result.failed += len(loop.failures)
        result.failures = (result.failures + failures + loop.failures)[:5]
        result.worst_request = max(loop.durations + polls + [result.worst_request])
        text = server.log()
        for kind, pattern in RELOAD_LINES.items():
            seen_here = len(re.findall(pattern, text))
            result.reloads_seen[kind] = result.reloads_seen.get(kind, 0) + seen_here
        lines = stamped_lines(text)
        for index, (saved_at, seen_at) in enumerate(wall):
            until = wall[index + 1][0] if index + 1 < len(wall) else float("inf")
            result.steps.append(reload_steps(lines, saved_at, seen_at, until))
    return result


# --- reporting -------------------------------------------------------------------------


def machine() -> dict[str, str]:
    model = ""
    with suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    try:
        version = subprocess.run(
            [UWSGI, "--version"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        version = "?"
    return {
        "cpu": f"{model} x {os.cpu_count()}",
        "kernel": platform.release(),
        "python": platform.python_version(),
        "uwsgi": version,
        "loadavg at start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
    }


def fmt_s(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def idle_label(app: str) -> str:
    match = APP_NAME.fullmatch(app)
    return f"{int(match.group(1)):,} modules" if match and match.group(1) else app


def tables(
    idle: list[Idle], cold: list[ColdStart], latency: list[Latency], variants: list[Variant]
) -> str:
    notes = {v.name: v.note for v in variants}
    out = []
    if idle:
        apps = list(dict.fromkeys(r.app for r in idle))
        ref = {r.app: r.cpu_ms_per_s for r in idle if r.variant == "py-autoreload"}
        out.append("### Idle CPU of the whole instance (ms CPU per second; x py-autoreload)\n")
        out.append("| variant | " + " | ".join(idle_label(a) for a in apps) + " | note |")
        out.append("|---|" + "---:|" * len(apps) + "---|")
        for name in dict.fromkeys(r.variant for r in idle):
            cells = []
            for app in apps:
                row = next((r for r in idle if r.variant == name and r.app == app), None)
                if row is None or row.error:
                    cells.append("error" if row else "")
                    continue
                ratio = ""
                if ref.get(app) and name != "py-autoreload":
                    ratio = f" ({row.cpu_ms_per_s / ref[app]:.2f}x)"
                cells.append(f"{row.cpu_ms_per_s:.2f}{ratio}")
            out.append(f"| {name} | " + " | ".join(cells) + f" | {notes.get(name, '')} |")
        out.append("")
    floors = {c.app: c for c in cold}
    if cold:
        out.append(
            "### Cold start (the floor): starting uWSGI alone -> first response with the app"
            " (seconds)\n"
        )
        out.append("| app | median | best | worst | starts |")
        out.append("|---|---:|---:|---:|---:|")
        for c in cold:
            if not c.starts:
                out.append(f"| {c.app} | error: {c.error} ||||")
                continue
            out.append(
                f"| {c.app} | {c.median:.3f} | {min(c.starts):.3f} | {max(c.starts):.3f} | "
                f"{len(c.starts)}{' ' + c.error if c.error else ''} |"
            )
        out.append("")
    if latency:
        out.append(
            "### Save -> new code, with a request loop (seconds; floor: the app's cold start)\n"
        )
        out.append(
            "| app | variant | median | worst | floor | over the floor | "
            "x py-autoreload (median) | missed | worst request | failed / requests | "
            "reloads seen | note |"
        )
        out.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")
        for r in latency:
            floor = floors[r.app].median if r.app in floors else None
            ref_row = next(
                (x for x in latency if x.app == r.app and x.variant == "py-autoreload" and x.seen),
                None,
            )
            ref_median = statistics.median(ref_row.seen) if ref_row else None
            if r.error and not r.seen:
                out.append(f"| {r.app} | {r.variant} | error: {r.error} ||||||||||")
                continue
            median = statistics.median(r.seen) if r.seen else None
            ratio = (
                f"{median / ref_median:.2f}x"
                if median is not None and ref_median and r.variant != "py-autoreload"
                else ""
            )
            over = f"{median - floor:+.3f}" if median is not None and floor is not None else ""
            seen = ", ".join(f"{k} {v}" for k, v in r.reloads_seen.items() if v)
            out.append(
                f"| {r.app} | {r.variant} | {fmt_s(median)} | {fmt_s(max(r.seen, default=None))}"
                f" | {fmt_s(floor)} | {over} | {ratio} | {len(r.saves) - len(r.seen)}/"
                f"{len(r.saves)} | {r.worst_request:.3f} | {r.failed} / {r.requests} | {seen} | "
                f"{notes.get(r.variant, '')} |"
            )
        out.append("")
        out.append(
            "### Where the time of a reload goes (median of each step over the saves, seconds;"
            " from uWSGI's log stamps, see bench/breakdown.py)\n"
        )
        out.append(
            "| app | variant | saved -> detected | -> reload begins | -> old workers gone | "
            "-> exec | -> app loaded | -> first new-code response | save -> new code |"
        )
        out.append("|---|---|" + "---:|" * (len(STEPS) + 1))
        for r in latency:
            if not r.steps:
                continue
            medians = median_steps(r.steps)
            total = statistics.median(r.seen) if r.seen else None
            out.append(
                f"| {r.app} | {r.variant} | "
                + " | ".join(fmt_s(medians[step]) for step in STEPS)
                + f" | {fmt_s(total)} |"
            )
        out.append("")
    return "\n".join(out)


def chart(idle: list[Idle], latency: list[Latency], path: Path, title: str) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is missing (pip install -e '.[bench]'): no chart", file=sys.stderr)
        return False
    idle = [r for r in idle if r.modules]  # the chart plots CPU against the module count
    panels = (1 if idle else 0) + (2 if latency else 0)
    if not panels:
        return False
    fig, axes = plt.subplots(1, panels, figsize=(6.5 * panels, 5.5), squeeze=False)
    axes = list(axes[0])
    if idle:
        ax = axes.pop(0)
        for name in dict.fromkeys(r.variant for r in idle):
            rows = sorted(
                (r for r in idle if r.variant == name and not r.error and r.modules),
                key=lambda r: r.modules or 0,
            )
            ax.plot([r.modules for r in rows], [r.cpu_ms_per_s for r in rows], "o-", label=name)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("tracked project modules")
        ax.set_ylabel("ms CPU per second (master + workers)")
        ax.set_title("Idle CPU")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    if latency:
        rows = [r for r in latency if r.seen]
        names = [f"{r.app} {r.variant}" for r in rows]
        ys = range(len(rows))
        ax = axes.pop(0)
        medians = [statistics.median(r.seen) for r in rows]
        worst = [max(r.seen) for r in rows]
        ax.barh(ys, worst, color="#f4b183", label="worst")
        ax.barh(ys, medians, color="#2e75b6", label="median")
        ax.set_yticks(list(ys), names, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel("seconds from save to the first response with the new code")
        ax.set_title("Save -> new code")
        ax.grid(True, axis="x", alpha=0.3)
        ax.legend(fontsize=8)
        ax = axes.pop(0)
        ax.barh(ys, [r.worst_request for r in rows], color="#c00000")
        for y, r in zip(ys, rows, strict=True):
            if r.failed:
                ax.text(r.worst_request, y, f"  {r.failed} failed", va="center", fontsize=8)
        ax.set_yticks(list(ys), names, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel("seconds, slowest request during the reloads")
        ax.set_title("Worst request stall")
        ax.grid(True, axis="x", alpha=0.3)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


# --- main --------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a subset that takes a few minutes")
    parser.add_argument("--variants", help="comma-separated names, or 'all' (default: not pending)")
    parser.add_argument("--list", action="store_true", help="list the variants and exit")
    parser.add_argument("--sections", default="idle,latency", help="idle,latency")
    parser.add_argument(
        "--sizes",
        help="module counts for idle CPU (default 100,1000,3000,10000; none: only --apps)",
    )
    parser.add_argument("--idle-seconds", type=float, help="CPU measuring window (default 30)")
    parser.add_argument(
        "--apps",
        help="apps for the latency (and, for wagtail, idle) sections: modules-N (a generated"
        " app of N modules) or wagtail (a real Wagtail site); default "
        + ",".join(DEFAULT_APPS)
        + " (--quick: "
        + ",".join(QUICK_APPS)
        + ")",
    )
    parser.add_argument(
        "--modules", type=int, help="same as --apps modules-N (older command lines)"
    )
    parser.add_argument(
        "--cold-starts",
        type=int,
        help="cold starts of each latency app, for its floor (default 5, --quick 3; 0: none)",
    )
    parser.add_argument("--saves", type=int, help="saves per variant (default 10)")
    parser.add_argument(
        "--rounds",
        type=int,
        help="the saves of each variant are taken in this many rounds over the variants,"
        " one server per round (default 3, at most --saves)",
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the pauses between saves")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra ini line for our variants, e.g. --set uwsgi-reload-delay=0.1",
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    parser.add_argument("--keep", action="store_true", help="keep the generated projects/logs")
    parser.add_argument(
        "--latest",
        action="store_true",
        help="also store this run as bench/latest.md/.json/.png (what README quotes)",
    )
    args = parser.parse_args(argv)
    quick = args.quick
    sizes = args.sizes or ("100,1000" if quick else "100,1000,3000,10000")
    args.sizes = [] if sizes == "none" else [int(x) for x in sizes.split(",")]
    # 30 s: the event backend's full safety scan runs every 30th check (period 1), so a
    # window of 30 s holds exactly one of them, and the figure is its true average
    args.idle_seconds = args.idle_seconds or (5.0 if quick else 30.0)
    if args.apps and args.modules:
        parser.error("--modules N is --apps modules-N: give one of them")
    apps = (
        args.apps.split(",")
        if args.apps
        else [f"modules-{args.modules}"]
        if args.modules
        else (QUICK_APPS if quick else DEFAULT_APPS)
    )
    bad = [a for a in apps if not APP_NAME.fullmatch(a) or a == "modules-0"]
    if bad:
        parser.error(f"unknown apps {bad}: expected modules-N (N >= 1) or wagtail")
    args.apps = apps
    args.saves = args.saves or (5 if quick else 10)
    args.rounds = min(3 if args.rounds is None else args.rounds, args.saves)
    if args.rounds < 1:
        parser.error(f"--rounds {args.rounds}: expected 1 or more")
    if args.cold_starts is None:
        args.cold_starts = 3 if quick else 5
    names = (
        args.variants.split(",")
        if args.variants
        else (QUICK_VARIANTS if quick else DEFAULT_VARIANTS)
    )
    if names == ["all"]:
        names = [v.name for v in VARIANTS]
    known = {v.name: v for v in VARIANTS}
    unknown = [n for n in names if n not in known]
    if unknown:
        parser.error(f"unknown variants {unknown}; known: {', '.join(known)}")
    args.chosen = [known[n] for n in names]
    args.sections = args.sections.split(",")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list:
        for v in VARIANTS:
            flag = " (pending: run only when named)" if v.pending else ""
            print(f"{v.name:26} {v.group:8} {','.join(v.sections):13} {v.note}{flag}")
        return 0
    if not os.path.exists(UWSGI):
        print(f"no uWSGI at {UWSGI} (set UWSGI=...)", file=sys.stderr)
        return 2
    extra = "".join(line.replace("=", " = ", 1) + "\n" for line in args.set)
    # As an installed package has: without it, an editable checkout in an environment
    # with PYTHONDONTWRITEBYTECODE=1 compiles our modules at every master start (35 ms)
    compileall.compile_dir(str(ROOT / "uwsgi_reload"), quiet=1, workers=2)
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    work = Path(tempfile.mkdtemp(prefix="uwsgi-reload-bench-"))
    logs = work / "logs"
    logs.mkdir()
    info = machine()
    command = "bench/run.py " + " ".join(sys.argv[1:] if argv is None else argv)
    print(f"# uwsgi-reload benchmark {stamp}\n")
    print(f"command: `{command}`  ")
    for key, value in info.items():
        print(f"{key}: {value}  ")
    print(f"work folder: {work}\n", flush=True)
    rng = random.Random(args.seed)
    idle: list[Idle] = []
    cold: list[ColdStart] = []
    latency: list[Latency] = []
    try:
        if "idle" in args.sections:
            idle_apps = [f"modules-{n}" for n in args.sizes] + [
                a for a in args.apps if not a.startswith("modules-")
            ]
            for name in idle_apps:
                app = make_app(name, work, CACHE)
                for variant in args.chosen:
                    if "idle" not in variant.sections:
                        continue
                    row = measure_idle(variant, app, logs, args.idle_seconds, extra)
                    idle.append(row)
                    print(
                        f"idle  {idle_label(name):>14}  {variant.name:26} "
                        f"{row.cpu_ms_per_s:7.2f} ms/s  {row.error}",
                        flush=True,
                    )
        if "latency" in args.sections:
            for name in args.apps:
                app = make_app(name, work, CACHE)
                chosen = [v for v in args.chosen if "latency" in v.sections]
                # In rounds over the variants, with the cold starts spread between them,
                # each round in another order: this machine's speed drifts over minutes
                # (cold starts of the 3,000-module app: 0.37 to 0.50 s in one run, 0.44 to
                # 0.65 s in another), and the variants and the floor must all see it.
                blocks = [
                    (round_, variant)
                    for round_ in range(args.rounds)
                    for variant in chosen[round_ % len(chosen) :] + chosen[: round_ % len(chosen)]
                ]
                starts = spread(args.cold_starts, len(blocks))
                floor = ColdStart(name)
                rows = {v.name: Latency(v.name, app.name) for v in chosen}
                for (round_, variant), count in zip(blocks, starts, strict=True):
                    measure_cold_start(app, logs, count, floor)
                    row = rows[variant.name]
                    if row.error:
                        continue
                    saves = spread(args.saves, args.rounds)[round_]
                    measure_latency(variant, app, logs, saves, (1.5, 3.0), rng, extra, row)
                    print(
                        f"save  {name:14} {variant.name:26} round {round_ + 1}:"
                        f" {' '.join(fmt_s(x) for x in row.saves[-saves:])} {row.error}",
                        flush=True,
                    )
                for variant in chosen:
                    row = rows[variant.name]
                    latency.append(row)
                    seen = row.seen
                    median = statistics.median(seen) if seen else None
                    print(
                        f"save  {name:14} {variant.name:26} median {fmt_s(median)}"
                        f" worst {fmt_s(max(seen, default=None))}"
                        f" missed {len(row.saves) - len(seen)}"
                        f" worst-request {row.worst_request:.3f}"
                        f" failed {row.failed}/{row.requests} {row.error}",
                        flush=True,
                    )
                    for failure in row.failures:
                        print(f"      failed request: {failure}", flush=True)
                if args.cold_starts:
                    cold.append(floor)
                    print(
                        f"cold  {name:14} median {fmt_s(floor.median)} "
                        f"of {', '.join(f'{x:.3f}' for x in floor.starts)} {floor.error}",
                        flush=True,
                    )
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    table = tables(idle, cold, latency, args.chosen)
    print("\n" + table)
    base = args.out / f"bench-{stamp}"
    header = f"# uwsgi-reload benchmark {stamp}\n\ncommand: `{command}`\n\n" + "".join(
        f"- {k}: {v}\n" for k, v in info.items()
    )
    base.with_suffix(".md").write_text(header + "\n" + table + "\n")
    base.with_suffix(".json").write_text(
        json.dumps(
            {
                "command": command,
                "machine": info,
                "idle": [asdict(r) for r in idle],
                "cold_start": [asdict(r) for r in cold],
                "latency": [asdict(r) for r in latency],
            },
            indent=1,
        )
    )
    title = (
        f"{info['cpu']}, {info['kernel']}, {info['uwsgi'] and 'uWSGI ' + info['uwsgi']} - {stamp}"
    )
    if chart(idle, latency, base.with_suffix(".png"), title):
        print(f"chart: {base.with_suffix('.png')}")
    print(f"table: {base.with_suffix('.md')}")
    if args.latest:
        for suffix in (".md", ".json", ".png"):
            if base.with_suffix(suffix).exists():
                shutil.copyfile(base.with_suffix(suffix), (HERE / "latest").with_suffix(suffix))
        print("stored as bench/latest.md/.json/.png: update README's figures from it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
