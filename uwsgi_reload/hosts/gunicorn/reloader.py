"""The gunicorn host: the pipeline in a thread of the arbiter.

The arbiter imports little of the app, so the tracked module files come from the
workers: a hook on Python's source loader, installed in the arbiter before
it forks, makes every worker append each ``.py`` file it loads (with the stat it had
when loaded) to a journal shared by the instance, including modules first imported
while serving a request. A daemon thread in the arbiter merges the journal into its
change detector every period, waits for the changes to settle, compiles the changed
``.py`` files, and sends the arbiter SIGHUP, which gunicorn's main loop turns into
``Arbiter.reload()``. (Calling ``server.reload()`` from the thread would race the
main loop, which reaps and forks workers at the same time.) A file that does not
compile keeps the current workers serving and is logged once per change; a worker
whose app fails to import for another reason serves the traceback as a 500 instead
of stopping gunicorn, and the files the error named are tracked, so saving the fix
reloads. With Django, each worker also reports, once its app has loaded, the folders
Django's reloader would watch (templates, translations): a change there reloads, as
no signal reaches every gunicorn worker to apply it in place.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from uwsgi_reload import backends
from uwsgi_reload import frameworks as extensions
from uwsgi_reload.backends.gate import ScanGate
from uwsgi_reload.browser import GunicornBrowser
from uwsgi_reload.core import entrypoints, loadstats, snapshot, sources
from uwsgi_reload.core.config import (
    Config,
    settings_line,
)
from uwsgi_reload.core.detector import Detector
from uwsgi_reload.core.loopguard import ReloadRecord
from uwsgi_reload.core.pipeline import Pipeline, Verdict, loop_message, run_loop
from uwsgi_reload.core.snapshot import Stat
from uwsgi_reload.core.syntax import SyntaxGate
from uwsgi_reload.frameworks import django as django_support
from uwsgi_reload.hosts import records, state
from uwsgi_reload.hosts.records import Failed, Loaded, Watch


class GunicornReloader:
    """Lives in the arbiter; its workers inherit it through fork and report to it."""

    def __init__(self, server: Any, config: Config) -> None:
        self.server = server
        self.pid = os.getpid()
        self.config = config
        self.detector = Detector(config)
        folder = state.instance_dir(self.pid, log=self._warn)
        self.journal = state.Journal(folder, "gunicorn", single_reader=True)
        backend, self.backend_note = backends.open_backend(
            config.backend, [config.base_dir], self.detector.rules.excludes
        )
        self.gate = ScanGate(self.detector, backend, self._warn)
        self.history: list[ReloadRecord] = []
        self.pipeline = Pipeline(
            self.detector, SyntaxGate(self._warn), self.gate, history=lambda: self.history
        )
        self.announced = False
        self.journal_failed = False
        self.stop = threading.Event()
        self.framework_files: set[str] = set()
        self.framework_globs: set[tuple[str, str]] = set()
        self.reported: list[str] = []
        self.browser = GunicornBrowser(self.journal.folder) if config.browser else None

    def _info(self, message: str) -> None:
        self.server.log.info("uwsgi_reload: %s", message)

    def _warn(self, message: str) -> None:
        self.server.log.warning("uwsgi_reload: %s", message)

    def start(self) -> None:
        state.start_generation(self.journal)
        loadstats.install(self._on_load)
        entry = entrypoints.module_path(getattr(self.server.app, "app_uri", None) or "", sys.path)
        if entry:
            self.detector.track([entry])
        # gunicorn's config file (-c FILE, or ./gunicorn.conf.py): a reload reads it again
        config_file = getattr(self.server.cfg, "config", None) or ""
        if not config_file.startswith("python:") and os.path.isfile(config_file):
            self.detector.track([os.path.abspath(config_file)])
        self.detector.start()
        self.gate.watch_tracked()
        self._keep_workers_alive_on_load_errors()
        thread = threading.Thread(
            target=run_loop,
            args=(self._tick, self.stop, self.config.period, self._warn),
            name="uwsgi_reload",
            daemon=True,  # ends with the arbiter
        )
        thread.start()

    def _ignored(self, path: str) -> bool:
        return sources.in_system_dir(path) or self.detector.rules.excludes(path)

    # -- in the workers

    def _on_load(self, path: str, stat: Stat) -> None:
        """Python loaded a source file. The arbiter's own modules are its detector's
        business; a worker's are written to the journal for the arbiter."""
        if os.getpid() == self.pid or not self.config.track_modules or self._ignored(path):
            return
        try:
            self._record(Loaded(path, stat))
        except OSError as error:
            if not self.journal_failed:  # once per worker; the worker serves on regardless
                self.journal_failed = True
                self._warn(
                    f"cannot write {self.journal.path} ({error.strerror}): files this "
                    "worker imports are not tracked"
                )

    def _keep_workers_alive_on_load_errors(self) -> None:
        """A worker that cannot import the app exits with a boot error, and gunicorn
        then stops altogether. Serve the error instead, and track what it named."""
        app = self.server.app
        load = app.wsgi
        if getattr(load, "uwsgi_reload", False):
            return

        def wsgi() -> Callable:
            try:
                loaded = load()
            except Exception as error:
                if os.getpid() == self.pid:
                    raise
                return self._failed_app(error)
            if os.getpid() != self.pid:
                self._report_framework_files()
                if self.browser:
                    return self.browser.wrap(loaded)
            return loaded

        wsgi.uwsgi_reload = True  # type: ignore[attr-defined]
        app.wsgi = wsgi

    def _report_framework_files(self) -> None:
        """Tell the arbiter what the app's framework watches besides modules (Django:
        template and locale folders). A change there reloads: gunicorn cannot make every
        worker apply it the way Django's own reloader does in its one process."""
        try:
            for extension in extensions.discover():
                files, globs = extension.watched()
                self._record(Watch(tuple(files), tuple(globs)))
        except Exception:
            self._warn(
                "internal error while asking the framework what it watches (the app serves "
                "on; template and translation changes may not reload):\n" + traceback.format_exc()
            )

    def _failed_app(self, error: BaseException) -> Callable:
        text = "".join(traceback.format_exception(error))
        self.server.log.error(
            "uwsgi_reload: the app failed to load in worker %s; it answers 500 with this "
            "error until a fix is saved:\n%s",
            os.getpid(),
            text,
        )
        named = entrypoints.failure_files(SimpleNamespace(last_value=error, path=sys.path))
        files = {p: snapshot.stat_file(p) for p in named if not self._ignored(p)}
        self._record(Failed(files))
        body = (
            "The app failed to load. gunicorn keeps running; saving a fix reloads it "
            f"(uwsgi_reload).\n\n{text}"
        ).encode("utf-8", "replace")

        def failed(environ: dict, start_response: Callable) -> list[bytes]:
            start_response(
                "500 Internal Server Error", [("Content-Type", "text/plain; charset=utf-8")]
            )
            return [body]

        return failed

    # -- in the arbiter's thread

    def _record(self, record: records.Record) -> None:
        self.journal.append(record)

    def _tick(self) -> None:
        for fact in self.journal.read_new():
            if isinstance(fact, Watch):
                self._watch_framework_files(fact)
            elif isinstance(fact, (Loaded, Failed)):
                records.merge(fact, self.detector, self.pipeline.syntax_gate)
        if not self.announced:
            self._announce()
        if self.history and not self.pipeline.first_check_ns:
            self.pipeline.first_check_ns = time.time_ns()  # the workers have started
        decision = self.pipeline.tick()
        for notice in self.detector.notices[len(self.reported) :]:
            self.reported.append(notice)
            self._warn(notice)
        if decision.looping:
            self._warn(loop_message(decision.looping, self.config.loop_guard, "gunicorn restarts"))
        if decision.verdict is Verdict.RELOAD:
            self._info(decision.describe("graceful reload (HUP)"))
            if self.browser:
                self.browser.reloading()
            os.kill(self.pid, signal.SIGHUP)
            self.pipeline.reloaded(decision)
            self.history.append(
                ReloadRecord(time.time(), tuple(decision.changes.paths), decision.quick)
            )
            self.pipeline.new_generation(snapshot.file_clock_ns())  # new workers start now
        if self.browser:
            self.browser.decided(self.pipeline.syntax_gate)

    def _announce(self) -> None:
        self.announced = True
        backend = self.gate.name + (f" ({self.backend_note})" if self.backend_note else "")
        self._info(
            f"reloading on: mode graceful (HUP), period {self.config.period}s, backend "
            f"{backend}, tracking {len(self.detector.tracked())} files under "
            f"{self.config.base_dir} so far (more as workers import modules)"
        )
        self._info(f"settings: {settings_line(self.config)}")
        if self.server.cfg.reload:
            self._warn(
                "gunicorn's own reloader (--reload) is on too: turn it off, or each save "
                "restarts the workers twice and a failing import stops gunicorn"
            )

    def _watch_framework_files(self, watch: Watch) -> None:
        files = set(watch.files) - self.framework_files
        globs = set(watch.globs) - self.framework_globs
        if not files and not globs:
            return  # every worker, at every start, reports the same
        first = not (self.framework_files or self.framework_globs)
        self.framework_files |= files
        self.framework_globs |= globs
        if first:  # one provider, reading the sets; what it names now is the baseline
            self.detector.add_provider(
                lambda: django_support.files_matching(
                    sorted(self.framework_files), sorted(self.framework_globs)
                )
            )
            return
        # folders reported later (an app added since): what is in them is no change
        found = django_support.files_matching(sorted(files), sorted(globs))
        unknown = [p for p in found if p not in self.detector.baseline]
        for path, stat in snapshot.take(unknown).items():
            self.detector.learn(path, stat)
