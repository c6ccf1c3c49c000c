"""The uWSGI host: connects the pipeline to uWSGI's options, signals, log and reload.

Imported only inside a uWSGI process (``import = uwsgi_reload``). What a change means
is decided by :class:`uwsgi_reload.core.pipeline.Pipeline`; this module runs its tick
from a uWSGI timer, shares what one worker learned with the others through the
journal, and carries out the decision.
"""

from __future__ import annotations

import os
import sys
import time
from typing import TYPE_CHECKING

import uwsgi

from uwsgi_reload import backends
from uwsgi_reload.backends.gate import ScanGate
from uwsgi_reload.backends.poll import PollBackend
from uwsgi_reload.core import loadstats
from uwsgi_reload.core.config import Config, option_text, settings_line
from uwsgi_reload.core.detector import Detector
from uwsgi_reload.core.snapshot import Stat
from uwsgi_reload.hosts import state
from uwsgi_reload.hosts.uwsgi import (
    config_files,
    fastexit,
    interrupt,
    masterfifo,
    options,
    pyuwsgi,
    waker,
)
from uwsgi_reload.hosts.uwsgi.chain import chain_running
from uwsgi_reload.hosts.uwsgi.log import log
from uwsgi_reload.hosts.uwsgi.signals import Signals

# The master imports this module at every start, and a graceful reload waits for it:
# what only the checks use (the pipeline, the journal's records, the frameworks; the
# checks run in the workers) is imported where it is used, off the reload's path.
if TYPE_CHECKING:
    from uwsgi_reload import frameworks
    from uwsgi_reload.browser import UwsgiBrowser
    from uwsgi_reload.core.pipeline import Decision, Pipeline
    from uwsgi_reload.hosts import records
    from uwsgi_reload.hosts.uwsgi.warm.host import WarmWorker


# How long a check woken by a write waits for the file's close: an editor's save is
# over within 19 ms (bench/save_patterns.py); the settle delay is 50 ms.
CLOSE_WAIT = 0.05


class UwsgiReloader:
    """One per process that imported us; :meth:`tick` is the timer handler."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.detector = Detector(config)
        folder = state.instance_dir(uwsgi.masterpid(), log=log)
        self.history = state.History(folder)
        # a new journal at each reload: chain reloads keep the master (and its start
        # time), and their new workers must not read the old "reloading"
        self.journal = state.Journal(folder, f"{uwsgi.started_on}-{self.history.count()}")
        fifos = options.option_values(uwsgi.opt, "master-fifo")
        self.fifo = config.fifo or next(iter(fifos), "")
        self.announced = False  # once per generation, whichever worker checks first
        self.prepared = False  # once per process
        self.reloading = False
        self.frameworks: list[frameworks.Framework] = []
        self.reported: set[str] = set()
        self.detector.track(options.entry_files(uwsgi.opt, config.base_dir))
        # the ini files: a change reloads (gracefully: the master reads them again)
        self.config_files = config_files.config_files(uwsgi.magic_table, uwsgi.opt)
        self.detector.track(self.config_files)
        fallback = self.history.fallback()
        if fallback:  # an earlier generation of this server found events missing here
            backend, self.backend_note = PollBackend(), f"{fallback}, earlier"
        else:
            backend, self.backend_note = backends.open_backend(
                config.backend, [config.base_dir], self.detector.rules.excludes
            )
        self.gate = ScanGate(self.detector, backend, log, self.history.set_fallback)
        self._pipeline: Pipeline | None = None  # made at the first check
        self.wake_file = os.path.join(folder, "wake", "poke")
        self.signals = Signals(config, self.gate, self.detector.rules)
        self.browser: UwsgiBrowser | None = None
        self.woken_by = 0  # the signal of the check running (for the debug lines)
        self.no_wait_until = 0.0  # see _save_follows
        self.load_folders: set[str] = set()  # folders of the modules loaded so far
        self.warm: WarmWorker | None = None
        if config.mode == "warm":
            from uwsgi_reload.hosts.uwsgi.warm.host import WarmWorker

            self.warm = WarmWorker(folder, log)

    def start(self) -> None:
        if uwsgi.worker_id() == 0:
            pyuwsgi.prepare_reexec(uwsgi.opt)
        loadstats.install(self._on_load)
        if self.config.fast_exit:
            fastexit.install(self._leaving_for_reload)
        self.detector.start()
        self.gate.watch_tracked()
        if uwsgi.worker_id() == 0:
            import uwsgidecorators

            # workers forked from the master's loop start with the master's handler
            uwsgidecorators.postfork(interrupt.install)
        interrupt.install()
        self.signals.register(self.tick, self.on_broadcast, self.history, self.wake_file, self.fifo)
        if self.config.browser:  # before the app loads: the middleware goes around it
            from uwsgi_reload.browser import UwsgiBrowser  # only then: 14 ms of imports

            entry_files = options.entry_files(uwsgi.opt, self.config.base_dir)
            self.browser = UwsgiBrowser(
                self.journal.folder, uwsgi.opt, entry_files, option_text, log
            )

    @property
    def pipeline(self) -> Pipeline:
        if self._pipeline is None:
            from uwsgi_reload.core.pipeline import Pipeline
            from uwsgi_reload.core.syntax import SyntaxGate

            syntax_gate = SyntaxGate(log)
            for path in self.config_files:
                syntax_gate.config_checks[path] = self._check_ini
            self._pipeline = Pipeline(
                self.detector, syntax_gate, self.gate, history=self._reload_records
            )
        return self._pipeline

    def _check_ini(self) -> str | None:
        return config_files.ini_problem(
            self.config_files[0], self.config_files, self.config.base_dir
        )

    def _reload_records(self) -> list:
        from uwsgi_reload.hosts import records

        return records.reload_records(self.history.load())

    def _on_load(self, path: str, stat: Stat) -> None:
        folder = path.rpartition("/")[0] or os.path.dirname(path)  # dirname, faster
        in_master = uwsgi.worker_id() == 0
        # The master loads the app at every start, and a reload waits for it: all it does
        # here is once per folder (3,031 loads: 24-26 ms over Python's own, now 6-7 ms).
        if in_master and folder in self.load_folders:
            return
        if not self.detector.is_trackable(path):
            return
        # After the fork, other workers must learn of a module only this one imported.
        # Under lazy-apps every worker loads the app itself, at its own time: a save
        # between two workers' loads leaves them on different versions, or a module one
        # of them could not import any more; the others must know, whichever checks.
        if not in_master:
            from uwsgi_reload.hosts.records import Loaded

            self._record(Loaded(path, stat))
        # Once per folder: an app loads many modules from each. A folder deleted since
        # gives a reload, and a check watches the folder of every new tracked file.
        if folder not in self.load_folders:
            self.load_folders.add(folder)
            self.gate.watch_file(path)
            self.signals.monitor(folder)

    def _record(self, record: records.Record) -> None:
        self.journal.append(record)

    def tick(self, signum: int = 0) -> None:
        """The timer handler: never raises into uWSGI."""
        try:
            interrupt.pass_on(log)
            if signum == self.signals.fast and not self._save_follows():
                return
            with self.journal.exclusive() as mine:
                self.woken_by = signum
                if not mine:
                    self._debug(f"check skipped ({self._woken()}): another holds the lock")
                    return
                self._check()
                # A check in another worker, woken by the same save, found the lock
                # taken and returned: events that came during this check are ours.
                for _ in range(3):
                    if self.reloading or not self.gate.pending():
                        break
                    self._check()
        except Exception:
            import traceback

            log("internal error in the check (reported; the next check runs as usual):")
            log(traceback.format_exc())

    def _save_follows(self) -> bool:
        """Woken by a uWSGI file monitor: has the backend seen a save? The monitors fire
        on each write, and the backend reports a saved file when it is closed, which
        uWSGI does not watch: wait for that close a little (the settle waits longer
        anyway). The monitors also fire on writes we do not count, such as every line
        of a log file kept open in a project folder: that wait, at most once a second."""
        now = time.monotonic()
        wait = CLOSE_WAIT if now >= self.no_wait_until else 0.0
        if self.gate.pending(timeout=wait):
            return True
        if wait:
            self.no_wait_until = now + 1.0
        return False

    def on_broadcast(self, signum: int = 0) -> None:
        """Runs in every worker after one worker let a framework apply a change."""
        try:
            self._prepare()
            self._merge_journal()
        except Exception:
            import traceback

            log("internal error while applying a change in this worker:")
            log(traceback.format_exc())

    def _leaving_for_reload(self) -> bool:
        """At a worker's exit: is it a reload this server asked for (by any worker)?"""
        return os.path.exists(self.journal.reload_mark)

    def _merge_journal(self) -> None:
        from uwsgi_reload.hosts import records
        from uwsgi_reload.hosts.records import Announced, Apply, Baseline, Broken, Loaded, Reloading

        for fact in self.journal.read_new():
            if isinstance(fact, (Loaded, Baseline, Broken)):
                records.merge(fact, self.detector, self.pipeline.syntax_gate)
            elif isinstance(fact, Reloading):
                self.reloading = bool(fact.paths)  # no paths: the reload failed
            elif isinstance(fact, Announced):
                self.announced = True
                self.pipeline.first_check_ns = fact.first_check_ns
            elif isinstance(fact, Apply) and fact.pid != os.getpid():
                for framework in self.frameworks:
                    handled = framework.handle(list(fact.paths))
                    self._debug(
                        f"worker {uwsgi.worker_id()}: {framework.name} applied "
                        f"{', '.join(sorted(handled)) or 'nothing'} (saved in pid {fact.pid})"
                    )

    def _prepare(self) -> None:
        if self.prepared:
            return
        self.prepared = True
        from uwsgi_reload import frameworks
        from uwsgi_reload.core import entrypoints

        # the cleanup after the last generation, here rather than at the master's start,
        # which a graceful reload waits for; once per generation (a lock)
        state.start_generation(self.journal, self.history)
        failure = entrypoints.failure_files(sys)
        if failure:
            if not self.announced:  # once per generation, not once per worker
                shown = [p for p in failure if os.path.exists(p)] or failure[:3]
                log("a load failed; tracking the files its error named: " + ", ".join(shown))
            self.detector.track_failure_files(failure)
        # The files of the change that caused the last reload stay tracked, so that
        # restoring a deleted module brings the app back.
        for record in self._reload_records()[-1:]:
            self.detector.track_failure_files(record.paths)
        self.detector.ignore(self.history.suppressed())
        for framework in frameworks.discover():
            self.frameworks.append(framework)
            self.detector.add_provider(framework.files)
            self.gate.extra_roots.update(frameworks.project_folders(framework.folders()))
        if self.signals.broadcast is not None:  # it reaches every worker
            self.pipeline.appliers = list(self.frameworks)

    def _announce(self) -> None:
        from uwsgi_reload.hosts.records import Announced

        now_ns = time.time_ns()
        self.pipeline.first_check_ns = now_ns
        self.announced = True
        self._record(Announced(now_ns))
        if self.history.first_time("banner"):
            tracked = self.detector.tracked()
            names = ", ".join(f.name for f in self.frameworks) or "none"
            backend = self.gate.name + (f" ({self.backend_note})" if self.backend_note else "")
            log(
                f"reloading on: mode {self.config.mode}, period {self.config.period}s, "
                f"backend {backend}, tracking {len(tracked)} files under "
                f"{self.config.base_dir}, extensions: {names}"
            )
            log(f"settings: {settings_line(self.config)}")
            return
        last = self._reload_records()[-1:]
        if last and self.history.first_time(f"serving {self.history.count()}"):
            log(f"new code serving, {max(now_ns / 1e9 - last[0].time, 0):.2f} s after the save")
        else:
            log("new code serving (uWSGI reloaded, not for a save)")

    def _woken(self) -> str:
        """Which worker checks and why, for the debug lines."""
        names = {self.signals.fast: "file event", self.signals.broadcast: "broadcast"}
        return f"worker {uwsgi.worker_id()}, {names.get(self.woken_by, 'timer')}"

    def _debug(self, message: str) -> None:
        if self.config.debug:
            log(f"debug: {message}")

    def _check(self) -> None:
        started = time.monotonic()
        self._merge_journal()
        if self.reloading:
            self._debug(f"check ({self._woken()}): a reload is under way")
            return
        self._prepare()
        if not self.announced:
            self._announce()
        if self.config.mode == "chain" and self._chain_running():
            return
        if self.warm:
            self.warm.learn(self.detector.is_trackable)
        if self.browser:
            self.browser.serving(os.path.basename(self.journal.path))
        for error in loadstats.listener_errors:
            log(f"internal error while recording a module load: {error}")
        loadstats.listener_errors.clear()
        decision = self.pipeline.tick()
        if self.config.debug:  # checks run every period: build the line only when wanted
            scanned = f"scanned {len(self.detector.baseline)} files"
            self._debug(
                f"check ({self._woken()}): {scanned if decision.scanned else 'no event'}"
                f" -> {decision.verdict.value} in {(time.monotonic() - started) * 1000:.1f} ms"
            )
        self._report_notices()
        self._carry_out(decision)

    def _report_notices(self) -> None:
        for notice in self.detector.notices:
            if notice not in self.reported:
                self.reported.add(notice)
                if self.history.first_time(notice):
                    log(notice)

    def _carry_out(self, decision: Decision) -> None:
        from uwsgi_reload.core.pipeline import Verdict, loop_message
        from uwsgi_reload.hosts.records import Apply, Baseline, Broken

        if decision.accepted:
            self._record(Baseline(dict(decision.accepted)))
        if decision.verdict is Verdict.HELD:
            self._record(Broken(dict(self.pipeline.syntax_gate.broken)))
        if decision.looping:
            self.history.suppress(set(decision.looping))
            log(loop_message(decision.looping, self.config.loop_guard, "uWSGI is restarted"))
        if decision.verdict is Verdict.APPLIED:
            self._record(Apply(tuple(decision.changes.paths), os.getpid()))
            uwsgi.signal(self.signals.broadcast)
            log(decision.describe(""))
            since = max(time.time() - decision.saved_at(), 0.0)
            log(f"new code serving, {since:.2f} s after the save")
        elif decision.verdict is Verdict.RELOAD:
            self._reload(decision)
        if self.browser:
            self.browser.decided(decision.verdict is Verdict.APPLIED, self.pipeline.syntax_gate)

    def _reload(self, decision: Decision) -> None:
        # a chain reload keeps the master, which would not read a changed ini again
        ini_changed = bool(set(decision.changes.paths) & set(self.config_files))
        mode = "graceful" if ini_changed else self.config.mode
        if mode == "warm" and self.warm:
            why = self.warm.why_graceful()
            if why:
                mode = "graceful"
                log(f"warm: a graceful reload this time: {why}")
        log(decision.describe(f"{mode} reload"))
        saved = decision.saved_at()
        self._debug(
            f"timing: saved at {saved:.6f}; detected +{decision.detected_at - saved:.3f} s; "
            f"reload asked +{time.time() - saved:.3f} s"
        )
        # Recorded before the reload is asked for: the master's stop signal ends this
        # worker at once when it is between requests, which it is while running this.
        self.history.add(decision.changes.paths, decision.quick, now=saved)
        self._set_reloading(tuple(decision.changes.paths))
        old_workers = [w["pid"] for w in uwsgi.workers() if w.get("pid")]
        poke = waker.fifo_byte(self.fifo) if self.fifo else waker.touch(self.wake_file)
        waker.spawn(poke, old_workers)
        if mode == "graceful":
            uwsgi.reload()
            return
        if mode == "warm":  # the workers only; the master keeps its libraries
            self._ask_master(b"w", "warm reload")
            return
        # one worker at a time, master untouched; needs lazy-apps (checked at start)
        # and the master FIFO, since uWSGI 2.0's Python API has no chain_reload()
        self.history.set_chain(old_workers)
        if not self._ask_master(b"c", "chain reload"):
            self.history.set_chain([])

    def _set_reloading(self, paths: tuple[str, ...]) -> None:
        """Tell every process of the server that a reload for ``paths`` is under way
        (the checks stop, a leaving worker leaves fast), or, with no paths, that asking
        for it failed."""
        from uwsgi_reload.hosts.records import Reloading

        self.reloading = bool(paths)
        self.journal.mark_reloading(self.reloading)
        self._record(Reloading(paths))

    def _ask_master(self, command: bytes, what: str) -> bool:
        try:
            masterfifo.write(self.fifo, command)
        except OSError as error:
            self._set_reloading(())
            log(
                f"cannot ask for the {what}: writing {command.decode()!r} to the master FIFO "
                f"{self.fifo} failed ({error.strerror or error}); the next save tries again"
            )
            return False
        return True

    def _chain_running(self) -> bool:
        return chain_running(self.history.chain(), uwsgi.workers(), time.time())
