"""The polling loop of hosts that own a thread or process (``uwsgi-reload watch``,
gunicorn's arbiter): check, settle, hold back code that does not compile, act."""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable, Mapping

from uwsgi_reload.core import syntax
from uwsgi_reload.core.detector import Detector
from uwsgi_reload.core.snapshot import Changes, Stat


class Watcher:
    """Poll a :class:`Detector`; on a change wait until it settles, hold it back while a
    changed ``.py`` file does not compile, else hand it to ``act``.

    One per host that owns a loop (this command, gunicorn's arbiter). A change becomes
    the baseline once ``act`` handled it; when ``act`` returns False (the server could
    not be told) it stays pending and the next check tries again.
    """

    def __init__(
        self,
        detector: Detector,
        act: Callable[[Changes], bool | None],
        log: Callable[[str], None],
        before: Callable[[], None] | None = None,
    ) -> None:
        self.detector = detector
        self.act = act
        self.log = log  # what is held back, and internal errors; `act` logs what it does
        self.before = before
        self.syntax_gate = syntax.SyntaxGate(log)

    def step(self) -> Changes:
        """One check; returns the changes handed to ``act`` (empty if none were)."""
        if self.before is not None:
            self.before()
        if not self.detector.check():
            return Changes()
        changes, current = self.detector.settle()
        if not changes or self._held_back(changes, current):
            self.detector.accept(current)
            return Changes()
        if self.act(changes) is False:
            return Changes()  # the action failed: not the baseline, the next check retries
        self.detector.accept(current)
        return changes

    def _held_back(self, changes: Changes, current: Mapping[str, Stat]) -> bool:
        return self.detector.config.check_syntax and self.syntax_gate.holds(changes, current)

    def run(self, stop: threading.Event, period: float) -> None:
        """Check every ``period`` seconds until ``stop`` is set; never raises."""
        while not stop.wait(period):
            try:
                self.step()
            except Exception:
                self.log(
                    "internal error in the check (the next check runs as usual):\n"
                    + traceback.format_exc()
                )
