"""The uWSGI wiring: read the ini, register the timer, reload.

Imported only inside a uWSGI process (``import = uwsgi_reload``). Everything that
decides what changed lives in :mod:`uwsgi_reload.detector`; this module only connects
it to uWSGI's options, signals, log and reload calls.
"""

from __future__ import annotations

import os
import sys
import time
import traceback

import uwsgi

from uwsgi_reload.backends import events
from uwsgi_reload.core import entrypoints, loadstats, loopguard, snapshot, syntax
from uwsgi_reload.core.config import (
    IMPORT_OPTIONS,
    Config,
    ConfigError,
    load_uwsgi_config,
    option_values,
    settings_line,
)
from uwsgi_reload.core.detector import Detector
from uwsgi_reload.core.snapshot import Changes
from uwsgi_reload.frameworks import Extension, discover
from uwsgi_reload.hosts import state
from uwsgi_reload.hosts.uwsgi import masterfifo, stop, waker
from uwsgi_reload.hosts.uwsgi.options import with_repeated_lines

LAZY_SIGNAL = 200  # lazy-apps: the signal every worker registers for the check


def log(message: str) -> None:
    # file names that are not UTF-8 arrive as surrogates, which uwsgi.log cannot encode
    message = message.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    for line in message.rstrip("\n").splitlines():
        uwsgi.log(f"uwsgi_reload: {line}")


def requested() -> bool:
    """True when the ini asks for us (``import = uwsgi_reload`` or a sibling option);
    an app importing the library inside uWSGI does not switch reloading on."""
    return any(
        v.strip() == "uwsgi_reload"
        for name in IMPORT_OPTIONS
        for v in option_values(uwsgi.opt, name)
    )


def read_config() -> Config:
    # the master's pid is the truth about `master` however the option was spelled
    options = {
        **with_repeated_lines(uwsgi.opt),
        "master": "true" if uwsgi.masterpid() else "false",
    }
    return load_uwsgi_config(options, base_dir=os.getcwd())


def _stop_server(config_error: ConfigError) -> None:
    for problem in config_error.problems:
        log(f"ERROR: {problem}")
    log("ERROR: uWSGI stops here so that this cannot be missed. Fix the ini, or remove")
    log("ERROR: `import = uwsgi_reload` to run without reloading.")
    stop.stop_instance()


class UwsgiReloader:
    """One per process that imported us; :meth:`tick` is the timer handler."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.detector = Detector(config)
        folder = state.instance_dir(uwsgi.masterpid())
        self.history = state.History(folder)
        # a new journal at each reload: chain and workers reloads keep the master (and
        # its start time), and their new workers must not read the old "reloading"
        self.journal = state.Journal(folder, f"{uwsgi.started_on}-{self.history.count()}")
        self.fifo = config.fifo or next(iter(option_values(uwsgi.opt, "master-fifo")), "")
        self.lazy = uwsgi.worker_id() > 0  # imported after the fork: lazy-apps
        self.announced = False  # once per generation, whichever worker checks first
        self.prepared = False  # once per process
        self.reloading = False
        self.extensions: list[Extension] = []
        self.syntax_gate = syntax.SyntaxGate(log)
        self.broadcast_signum: int | None = None
        self.reported: set[str] = set()
        self.slow_reported = False
        self.first_check_ns = 0  # wall clock of this generation's first check
        self.detector.extra.update(entrypoints.entry_files(uwsgi.opt, config.base_dir))
        self.gate: events.EventGate | None = None
        self.backend = "poll"
        self.fast_signum: int | None = None  # file monitors: check at once, not at the tick
        self.monitored: set[str] = set()
        self.wake_file = os.path.join(folder, "wake", "poke")

    def start(self) -> None:
        if uwsgi.worker_id() == 0:
            self.journal.clear_old()
            state.remove_dead_instances(self.journal.folder)
        loadstats.install(self._on_load)
        self.detector.start()
        self._open_events()
        self._register_signals()

    def _open_events(self) -> None:
        roots = [self.config.base_dir]
        inotify_events, self.backend = events.open_events(self.config, roots)
        if inotify_events is not None:
            self.gate = events.EventGate(self.detector, inotify_events)
            self.gate.watch_tracked()
        else:
            self.backend = f"poll ({self.backend})"

    def _on_load(self, path: str, stat: tuple) -> None:
        if not self.detector.is_trackable(path):
            return
        # After the fork, other workers must learn of a module only this one imported
        # (under lazy-apps, every worker loads the app itself: only later imports).
        if uwsgi.worker_id() > 0 and (self.prepared or not self.lazy):
            self.journal.record_loaded(path, stat)
        if self.gate is not None:
            self.gate.watch_file(path)
            self._monitor(os.path.dirname(path))

    def _monitor(self, folder: str) -> None:
        """Ask the master to raise our check signal when ``folder`` changes, so a save
        is handled at once instead of at the next tick. uWSGI has 64 file monitors per
        instance (never freed): the first MONITORS folders of the project get one."""
        if (
            self.fast_signum is None
            or uwsgi.worker_id() != 0  # only the master can add them, before it forks
            or folder in self.monitored
            or len(self.monitored) >= MONITORS
            or not folder.startswith(self.config.base_dir)
            or self.detector.rules.excludes(folder)
        ):
            return
        self.monitored.add(folder)
        uwsgi.add_file_monitor(self.fast_signum, folder)

    def _register_signals(self) -> None:
        wid = uwsgi.worker_id()
        if wid == 0:
            import uwsgidecorators

            uwsgidecorators.timer(self.config.period)(self.tick)
            # Changes a framework applies without a restart must reach every worker.
            self.broadcast_signum = uwsgidecorators.get_free_signal()
            uwsgi.register_signal(self.broadcast_signum, "workers", self.on_broadcast)
            if not self.fifo:
                # an event for the master's loop while it waits for old workers to die
                wake_signum = uwsgidecorators.get_free_signal()
                uwsgi.register_signal(wake_signum, "subscribed", _ignore)
                os.makedirs(os.path.dirname(self.wake_file), exist_ok=True)
                uwsgi.add_file_monitor(wake_signum, os.path.dirname(self.wake_file))
            if self.gate is not None:
                self.fast_signum = uwsgidecorators.get_free_signal()
                uwsgi.register_signal(self.fast_signum, "", self.tick)
                for folder in sorted(self.gate.events.watched()):
                    self._monitor(folder)
            return
        # lazy-apps: we run in each worker after the fork. Each worker has its own
        # signal table, where it registers the same signal; the master routes the timer
        # to any worker (its own table has no target), so one timer serves them all.
        # uWSGI never prunes its timer table: respawned workers must not add another.
        known = uwsgi.signal_registered(LAZY_SIGNAL)
        uwsgi.register_signal(LAZY_SIGNAL, "", self.tick)
        if not known and self.history.first_time(f"timer {uwsgi.started_on}"):
            uwsgi.add_timer(LAZY_SIGNAL, self.config.period)

    def tick(self, signum: int = 0) -> None:
        """The timer handler: never raises into uWSGI."""
        try:
            with self.journal.exclusive() as mine:
                if mine and not self.reloading:
                    self._check()
                # A check in another worker, woken by the same save, found the lock
                # taken and returned: events that came during this check are ours.
                for _ in range(3):
                    if not (mine and self.gate and not self.reloading and self.gate.pending()):
                        break
                    self._check()
        except Exception:
            log("internal error in the check (reported; the next check runs as usual):")
            log(traceback.format_exc())

    def on_broadcast(self, signum: int = 0) -> None:
        """Runs in every worker after one worker let a framework apply a change."""
        try:
            self._prepare()
            self._merge_journal()
        except Exception:
            log("internal error while applying a change in this worker:")
            log(traceback.format_exc())

    def _merge_journal(self) -> None:
        for record in self.journal.read_new():
            for path, stat in record.get("baseline", {}).items():
                self.detector.learn(path, tuple(stat) if stat else None)
            if "loaded" in record:
                path, stat = record["loaded"]
                self.detector.learn_loaded(path, tuple(stat))
            for path, stat in record.get("broken", {}).items():
                self.syntax_gate.broken[path] = tuple(stat)
            if "reloading" in record:
                self.reloading = True
            if "announced" in record:
                self.announced = True
                self.first_check_ns = record["announced"]
            if "apply" in record and record.get("pid") != os.getpid():
                for extension in self.extensions:
                    extension.handle(record["apply"])

    def _prepare(self) -> None:
        if self.prepared:
            return
        self.prepared = True
        failure = entrypoints.failure_files(sys)
        if failure:
            if not self.announced:  # once per generation, not once per worker
                shown = [p for p in failure if os.path.exists(p)] or failure[:3]
                log("a load failed; tracking the files its error named: " + ", ".join(shown))
            self.detector.track_failure_files(failure)
        # The files of the change that caused the last reload stay tracked, so that
        # restoring a deleted module brings the app back.
        for entry in self.history.load()[-1:]:
            self.detector.track_failure_files(entry[1])
        self.detector.ignore(self.history.suppressed())
        for extension in discover():
            self.extensions.append(extension)
            self.detector.add_provider(extension.files)
            if self.gate is not None and hasattr(extension, "folders"):
                self.gate.extra_roots.update(extension.folders())

    def _announce(self) -> None:
        tracked = self.detector.tracked()
        names = ", ".join(e.name for e in self.extensions) or "none"
        settings = settings_line(self.config)
        log(
            f"reloading on: mode {self.config.mode}, period {self.config.period}s, "
            f"backend {self.backend}, tracking {len(tracked)} files under "
            f"{self.config.base_dir}, extensions: {names}"
        )
        log(f"settings: {settings}")
        self.announced = True
        self.journal.record(announced=self.first_check_ns)

    def _check(self) -> None:
        self._merge_journal()
        if self.reloading:
            return
        self._prepare()
        if not self.announced:
            self.first_check_ns = time.time_ns()
            self._announce()
        if self.config.mode == "chain" and self._chain_running():
            return
        if self.gate is not None and not self.gate.needs_scan():
            return
        for error in loadstats.listener_errors:
            log(f"internal error while recording a module load: {error}")
        loadstats.listener_errors.clear()
        started = time.monotonic()
        changes = self.detector.check()
        self._report_notices(time.monotonic() - started)
        if not changes:
            return
        changes, current = self.detector.settle()
        if not changes:
            self.detector.accept(current)
            return
        self._act(changes, current)

    def _report_notices(self, took: float) -> None:
        if took > 0.25 * self.config.period and not self.slow_reported:
            self.slow_reported = True
            self.detector.notices.append(
                f"a check took {took:.2f}s for {len(self.detector.baseline)} files, more than "
                f"a quarter of the period ({self.config.period}s): narrow "
                "uwsgi-reload-include, add uwsgi-reload-exclude globs, or raise the period"
            )
        for notice in self.detector.notices:
            if notice not in self.reported:
                self.reported.add(notice)
                if self.history.first_time(notice):
                    log(notice)

    def _accept(self, current: dict) -> None:
        """Make ``current`` the baseline here and in every other worker."""
        changed = snapshot.diff(self.detector.baseline, current)
        self.journal.record_baseline({p: current.get(p) for p in changed.paths})
        self.detector.accept(current)

    def _act(self, changes: Changes, current: dict) -> None:
        if self.config.check_syntax and self.syntax_gate.holds(changes, current):
            self.journal.record(broken=self.syntax_gate.broken)
            self._accept(current)
            return
        handled: set[str] = set()
        for extension in self.extensions:
            handled |= extension.handle(changes.paths)
        if handled and handled >= set(changes.paths) and self.broadcast_signum is not None:
            self._accept(current)
            self.journal.record(apply=changes.paths, pid=os.getpid())
            uwsgi.signal(self.broadcast_signum)
            names = ", ".join(e.name for e in self.extensions)
            log(f"{changes.describe()} -> applied by {names} in every worker, no reload")
            return
        self._reload(changes, current)

    def _loop_guard(self, changes: Changes, current: dict) -> tuple[Changes, bool]:
        """Drop from ``changes`` the files the app rewrites at every start. Also says
        whether this change came right after the start (for the history)."""
        quick = loopguard.written_while_starting(
            changes, current, self.detector.started_ns, self.first_check_ns
        )
        looping = loopguard.looping_paths(
            [*self.history.load(), [time.time(), changes.paths, quick]], self.config.loop_guard
        )
        if not looping:
            return changes, quick
        self.history.suppress(looping)
        self.detector.ignore(looping)
        self._accept(current)
        n = self.config.loop_guard
        log(
            f"loop guard: {', '.join(sorted(looping))} was written during each of the last "
            f"{n} starts: the app seems to write it while it starts. Not reloading for it "
            "until uWSGI is restarted. Keep such files out of tracked folders, or add them "
            "to uwsgi-reload-exclude (uwsgi-reload-loop-guard = 0 turns this guard off)."
        )
        rest = Changes(
            changes.added - looping, changes.modified - looping, changes.deleted - looping
        )
        return rest, False

    def _reload(self, changes: Changes, current: dict) -> None:
        changes, quick = self._loop_guard(changes, current)
        if not changes:
            return
        log(f"{changes.describe()} -> {self.config.mode} reload")
        self.history.add(changes.paths, quick)
        self.reloading = True
        self.journal.record(reloading=changes.paths)
        old_workers = [w["pid"] for w in uwsgi.workers() if w.get("pid")]
        # Before the reload: the master's stop signal ends this worker at once when it
        # is between requests, which it is while running this handler.
        poke = waker.fifo_byte(self.fifo) if self.fifo else waker.touch(self.wake_file)
        waker.spawn(poke, old_workers)
        if self.config.mode == "chain":
            # one worker at a time, master untouched; needs lazy-apps (checked at start)
            # and the master FIFO, since uWSGI 2.0's Python API has no chain_reload()
            self.history.set_chain(old_workers)
            masterfifo.write(self.fifo, b"c")
        else:
            uwsgi.reload()

    def _chain_running(self) -> bool:
        """A chain reload replaces the workers of the last one, one by one, each only
        after the one before it has loaded the app. The master ignores a new "c" until
        it is done, so the check waits: while an old worker is left, or a new one has
        not loaded its app yet (for at most CHAIN_LOAD_WAIT, as an app may fail)."""
        old = set(self.history.chain())
        if not old:
            return False
        now = time.time()
        return any(
            w["pid"] in old or (not w.get("apps") and now - w["last_spawn"] < CHAIN_LOAD_WAIT)
            for w in uwsgi.workers()
        )


CHAIN_LOAD_WAIT = 30
MONITORS = 48


def _ignore(signum: int) -> None:
    """The wake-up signal only gives the master's loop an event; nobody handles it."""


def activate() -> None:
    """Switch reloading on in this uWSGI process. Configuration errors stop uWSGI;
    an internal error is logged loudly and leaves the app serving without reloading."""
    if not requested():
        return
    try:
        config = read_config()
    except ConfigError as error:
        _stop_server(error)
        return
    try:
        UwsgiReloader(config).start()
    except Exception:
        log("INTERNAL ERROR: reloading is OFF for this run; the app is not affected.")
        log(traceback.format_exc())
        log("Please report this at the project's issue tracker with the lines above.")
