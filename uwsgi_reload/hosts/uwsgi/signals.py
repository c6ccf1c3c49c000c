"""The uWSGI signals of the host: the check on a timer (and once as soon as the first
worker serves), a broadcast that reaches every worker, the master's wake-up during a
reload, and file monitors that run the check at once when a project folder changes."""

from __future__ import annotations

import os
from collections.abc import Callable

import uwsgi

from uwsgi_reload.backends.gate import ScanGate
from uwsgi_reload.core.config import Config
from uwsgi_reload.core.sources import Rules, walk_folders
from uwsgi_reload.hosts.state import History

LAZY_SIGNAL = 200  # lazy-apps: the signal every worker registers for the check
LAZY_FAST = 201  # warm mode: raised by the master's file monitors, checked by a worker
MONITORS = 48  # uWSGI has 64 file monitors per instance, never freed

Handler = Callable[[int], None]


class Signals:
    def __init__(self, config: Config, gate: ScanGate, rules: Rules) -> None:
        self.config = config
        self.gate = gate
        self.rules = rules
        self.broadcast: int | None = None  # runs a handler in every worker
        self.fast: int | None = None  # the check, raised by file monitors
        self.monitored: set[str] = set()

    def register(
        self, tick: Handler, on_broadcast: Handler, history: History, wake_file: str, fifo: str
    ) -> None:
        if uwsgi.worker_id() == 0:
            import uwsgidecorators

            check = uwsgidecorators.get_free_signal()
            uwsgi.register_signal(check, "", tick)
            uwsgi.add_timer(check, self.config.period)
            # The generation's first check runs as soon as a worker serves, not up to a
            # period later: the loop guard's "while starting" ends there.
            uwsgidecorators.postfork(lambda: _first_worker_checks(check))
            # Changes a framework applies without a restart must reach every worker.
            self.broadcast = uwsgidecorators.get_free_signal()
            uwsgi.register_signal(self.broadcast, "workers", on_broadcast)
            if not fifo:
                # an event for the master's loop while it waits for old workers to die
                wake = uwsgidecorators.get_free_signal()
                uwsgi.register_signal(wake, "subscribed", _ignore)
                os.makedirs(os.path.dirname(wake_file), exist_ok=True)
                uwsgi.add_file_monitor(wake, os.path.dirname(wake_file))
            if self.gate.name != "poll":
                self.fast = uwsgidecorators.get_free_signal()
                uwsgi.register_signal(self.fast, "", tick)
                for folder in sorted(self.gate.backend.watched()):
                    self.monitor(folder)
            return
        # lazy-apps: we run in each worker after the fork. Each worker has its own
        # signal table, where it registers the same signal; the master routes the timer
        # to any worker (its own table has no target), so one timer serves them all.
        # uWSGI never prunes its timer table: respawned workers must not add another.
        known = uwsgi.signal_registered(LAZY_SIGNAL)
        uwsgi.register_signal(LAZY_SIGNAL, "", tick)
        if not known and history.first_time(f"timer {uwsgi.started_on}"):
            uwsgi.add_timer(LAZY_SIGNAL, self.config.period)
        if self.config.mode == "warm" and self.gate.name != "poll":
            uwsgi.register_signal(LAZY_FAST, "", tick)  # monitors: monitor_for_workers
            self.fast = LAZY_FAST
        _first_worker_checks(LAZY_SIGNAL)  # handled once a worker has loaded the app

    def monitor(self, folder: str) -> None:
        """Ask the master to raise the check when ``folder`` changes, so a save is
        handled at once instead of at the next tick; the first MONITORS folders of the
        project get one."""
        if (
            self.fast is None
            or uwsgi.worker_id() != 0  # only the master can add them, before it forks
            or folder in self.monitored
            or len(self.monitored) >= MONITORS
            or not folder.startswith(self.config.base_dir)
            or self.rules.excludes(folder)
        ):
            return
        self.monitored.add(folder)
        uwsgi.add_file_monitor(self.fast, folder)


def monitor_for_workers(config: Config) -> None:
    """Warm mode, in the master: file monitors on the project's folders (the first
    MONITORS, nearest first) raise LAZY_FAST, which each worker handles with its check,
    so that a save is handled at once instead of at the next tick."""
    if config.backend == "poll":
        return
    uwsgi.register_signal(LAZY_FAST, "", _ignore)  # the workers register the handler
    rules = Rules(config.exclude, config.base_dir)
    for count, folder in enumerate(walk_folders(config.base_dir, rules)):
        if count >= MONITORS:
            break
        uwsgi.add_file_monitor(LAZY_FAST, folder)


def _first_worker_checks(signum: int) -> None:
    if uwsgi.worker_id() == 1:
        uwsgi.signal(signum)


def _ignore(signum: int) -> None:
    """The wake-up signal only gives the master's loop an event; nobody handles it."""
