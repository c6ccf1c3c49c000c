"""The reload pipeline: one step takes a check and returns what to do about it.

    backend says scan? -> detector.check -> settle -> syntax gate
        -> framework applies it in place? -> loop guard -> reload

Hosts (uWSGI, gunicorn, the command line) own the schedule and every side effect:
they call :meth:`Pipeline.tick` (by a timer, or in :func:`run_loop`) and carry out the
:class:`Decision` (share state with other processes, signal, log, reload). Nothing
here knows which server it runs in, so a tick can be stepped by hand in a test.
"""

from __future__ import annotations

import enum
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from uwsgi_reload.core import loopguard, snapshot
from uwsgi_reload.core.detector import Detector
from uwsgi_reload.core.loopguard import ReloadRecord
from uwsgi_reload.core.snapshot import Changes, Stat
from uwsgi_reload.core.syntax import SyntaxGate


class Gate(Protocol):
    """What the pipeline asks of a backend (see ``backends/gate.py``)."""

    @property
    def name(self) -> str: ...  # the backend's: "poll" has no events

    def needs_scan(self) -> bool: ...

    def after_scan(self, changes: Changes) -> None: ...

    def pending(self, timeout: float = 0.0) -> bool: ...


class Applier(Protocol):
    """A framework that can apply some changes in a running process (see frameworks)."""

    name: str

    def handle(self, paths: list[str]) -> set[str]: ...


class Verdict(enum.Enum):
    NOTHING = "nothing"  # no change, or it settled back to the baseline
    HELD = "held"  # a changed .py file does not compile: keep the old code serving
    APPLIED = "applied"  # a framework applied every change in place: no reload
    SUPPRESSED = "suppressed"  # the loop guard dropped every changed file
    RELOAD = "reload"


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    changes: Changes = field(default_factory=Changes)
    current: Mapping[str, Stat] = field(default_factory=dict)  # the state decided on
    # baseline entries that moved (None: gone), for hosts that share the baseline
    accepted: Mapping[str, Stat | None] = field(default_factory=dict)
    looping: frozenset[str] = frozenset()  # files the loop guard stopped tracking
    quick: bool = False  # written while the generation started (for the history)
    applied_by: tuple[str, ...] = ()
    scanned: bool = False  # the tracked files were compared (the backend said so)
    detected_at: float = 0.0  # wall clock when a scan first saw the change (before settling)

    def __bool__(self) -> bool:
        return self.verdict is not Verdict.NOTHING

    def saved_at(self) -> float:
        """When the change was saved: the newest modification time among its files
        (now, for a change that only deleted files)."""
        written = [self.current[p].mtime_ns for p in self.changes.paths if p in self.current]
        return max(written) / 1e9 if written else time.time()

    def describe(self, reload_words: str) -> str:
        """The log line of a decision that acts; ``reload_words`` says how the host
        reloads (``graceful reload``, ``chain reload``, ``graceful reload (HUP)``)."""
        if self.verdict is Verdict.APPLIED:
            names = ", ".join(self.applied_by)
            return f"{self.changes.describe()} -> applied by {names} in every worker, no reload"
        if self.verdict is Verdict.RELOAD:
            return f"{self.changes.describe()} -> {reload_words}"
        return f"{self.changes.describe()} -> {self.verdict.value}"


def loop_message(looping: frozenset[str], count: int, restart: str) -> str:
    return (
        f"loop guard: {', '.join(sorted(looping))} was written during each of the last "
        f"{count} starts: the app seems to write it while it starts. Not reloading for it "
        f"until {restart}. Keep such files out of tracked folders, or add them "
        "to uwsgi-reload-exclude (uwsgi-reload-loop-guard = 0 turns this guard off)."
    )


class Pipeline:
    """Turns the detector's findings into a :class:`Decision`, one tick at a time."""

    def __init__(
        self,
        detector: Detector,
        syntax_gate: SyntaxGate,
        gate: Gate | None = None,
        history: Callable[[], Sequence[ReloadRecord]] = tuple,
    ) -> None:
        self.detector = detector
        self.config = detector.config
        self.syntax_gate = syntax_gate
        self.gate = gate  # None: every tick scans
        self.history = history
        # frameworks that apply changes in every process of the server; a host that
        # cannot reach every process leaves this empty, and such changes reload
        self.appliers: list[Applier] = []
        self.generation_started_ns = detector.started_ns
        self.first_check_ns = 0  # wall clock of this generation's first check

    def new_generation(self, started_ns: int) -> None:
        """The host reloaded without a new process for us (gunicorn's arbiter)."""
        self.generation_started_ns = started_ns
        self.first_check_ns = 0

    def tick(self, now_ns: int | None = None) -> Decision:
        """One check: scan if the backend says so, settle, decide. Moves the baseline
        for every verdict but RELOAD (see :meth:`reloaded`)."""
        if self.gate is not None and not self.gate.needs_scan():
            return Decision(Verdict.NOTHING)
        changes = self.detector.check()
        detected_at = time.time()
        if self.gate is not None:
            self.gate.after_scan(changes)
        if not changes:
            return Decision(Verdict.NOTHING, scanned=True)
        changes, current = self.detector.settle(events=self._events())
        if not changes:
            return Decision(Verdict.NOTHING, accepted=self._accept(current), scanned=True)
        return replace(self.decide(changes, current), scanned=True, detected_at=detected_at)

    def _events(self) -> Callable[[], bool] | None:
        """While an event backend reports nothing new, the settle skips its rescans
        (16 ms each with 3,000 tracked files); the poll backend always rescans."""
        if self.gate is None or self.gate.name == "poll":
            return None
        return self.gate.pending

    def decide(self, changes: Changes, current: Mapping[str, Stat]) -> Decision:
        if self.config.check_syntax and self.syntax_gate.holds(changes, current):
            return Decision(Verdict.HELD, changes, current, self._accept(current))
        handled: set[str] = set()
        for applier in self.appliers:
            handled |= applier.handle(changes.paths)
        if handled and handled >= set(changes.paths):
            names = tuple(a.name for a in self.appliers)
            accepted = self._accept(current)
            return Decision(Verdict.APPLIED, changes, current, accepted, applied_by=names)
        guard = loopguard.judge(
            changes,
            current,
            self.history(),
            self.config.loop_guard,
            self.generation_started_ns,
            self.first_check_ns,
        )
        if not guard.looping:
            return Decision(Verdict.RELOAD, changes, current, quick=guard.quick)
        self.detector.ignore(guard.looping)
        accepted = self._accept(current)
        verdict = Verdict.RELOAD if guard.kept else Verdict.SUPPRESSED
        kept = guard.kept or changes
        return Decision(verdict, kept, current, accepted, looping=guard.looping)

    def reloaded(self, decision: Decision) -> Mapping[str, Stat | None]:
        """The reload was carried out (by a host whose process survives it): the state
        it was decided on becomes the baseline. Not called after a failed reload, so the
        next tick finds the change again and tries again."""
        return self._accept(decision.current)

    def _accept(self, current: Mapping[str, Stat]) -> dict[str, Stat | None]:
        moved = snapshot.diff(self.detector.baseline, current)
        self.detector.accept(dict(current))
        return {path: current.get(path) for path in moved.paths}


def run_loop(
    tick: Callable[[], object],
    stop: threading.Event,
    period: float,
    log: Callable[[str], None],
) -> None:
    """Call ``tick`` every ``period`` seconds until ``stop`` is set; never raises (the
    loop of hosts that own a thread or a process: gunicorn's arbiter, the CLI)."""
    while not stop.wait(period):
        try:
            tick()
        except Exception:
            log(
                "internal error in the check (the next check runs as usual):\n"
                + traceback.format_exc()
            )
