"""Debounce: wait until a burst of writes (a git checkout, a formatter) is over, so it
gives one reload that sees the final content. Pure: the clock and sleep are passed in."""

from __future__ import annotations

import time
from collections.abc import Callable

from uwsgi_reload.core import snapshot
from uwsgi_reload.core.snapshot import Changes, Stat


def settle_changes(
    scan: Callable[[], dict[str, Stat]],
    baseline: dict[str, Stat],
    delay: float,
    max_delay: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    wall: Callable[[], float] | None = None,
) -> tuple[Changes, dict[str, Stat]]:
    """Scan until nothing changed for ``delay`` seconds, or ``max_delay`` has passed.

    Quiet time counts from the newest modification time of the changed files when that
    is in the past (a save found by the next poll has usually been quiet long enough),
    else from the first scan (deletions, clocks of network or VM filesystems ahead)."""
    started = clock()
    state = scan()
    quiet_since = started
    if wall is not None:
        changed = snapshot.diff(baseline, state)
        mtimes = [state[p].mtime_ns for p in changed.added | changed.modified]
        if mtimes and not changed.deleted:
            age = wall() - max(mtimes) / 1e9
            if age > 0:
                quiet_since = started - min(age, delay)
    step = min(0.05, delay) if delay > 0 else 0
    while delay > 0:
        now = clock()
        if now - quiet_since >= delay or now - started >= max_delay:
            break
        sleep(min(step, max(delay - (now - quiet_since), 0)))
        latest = scan()
        if latest != state:
            state = latest
            quiet_since = clock()
    return snapshot.diff(baseline, state), state
