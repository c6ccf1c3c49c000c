"""Debounce: wait until a burst of writes (a git checkout, a formatter) is over, so it
gives one reload that sees the final content. Pure: the clock and sleep are passed in.

The rule comes from measured saves (bench/save_patterns.py, table in bench/README.md):
an editor's save of one file (vim's write-then-rename, in-place writes, JetBrains' safe
write) is over within 19 ms, and the largest pause between two writes of a
`git checkout` of 200 files or a `ruff format` of a package was 37 ms on a loaded
machine. So a save of one file needs ``delay`` (default 0.05 s) of quiet, and a burst,
visible as changes to several files or a missing file, at least :data:`BURST_QUIET`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from uwsgi_reload.core import snapshot
from uwsgi_reload.core.snapshot import Changes, Stat

# Quiet time a visible burst needs at least: over 5 times the largest pause measured
# inside one (37 ms, a git checkout of 200 files with the machine's load at 9).
BURST_QUIET = 0.2


def settle_changes(
    scan: Callable[[], dict[str, Stat]],
    baseline: dict[str, Stat],
    delay: float,
    max_delay: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    wall: Callable[[], float] | None = None,
    burst_quiet: float = BURST_QUIET,
    first_scan: dict[str, Stat] | None = None,
    events: Callable[[], bool] | None = None,
) -> tuple[Changes, dict[str, Stat]]:
    """Scan until nothing changed for ``delay`` seconds, or ``max_delay`` has passed.

    While a burst is visibly going on (a scan found more than one file changed, or one
    missing) the quiet time needed is ``max(delay, burst_quiet)``.
    ``delay`` 0 scans once and waits for nothing. ``first_scan``: a scan just taken (by the
    check that found the change), used instead of the first scan. ``events``: an event
    backend's "has anything happened since?" (without consuming it); while it says no,
    nothing can have changed and the state stands without a scan (None: always scan).

    Quiet time counts from the newest modification time of the changed files when that
    is in the past (a save found by the next poll has usually been quiet long enough),
    else from the first scan (deletions, clocks of network or VM filesystems ahead)."""
    started = clock()
    state = scan() if first_scan is None else first_scan
    quiet_since = started
    first = snapshot.diff(baseline, state)
    burst = _looks_like_a_burst(first)
    if wall is not None:
        mtimes = [state[p].mtime_ns for p in first.added | first.modified]
        if mtimes and not first.deleted:
            age = wall() - max(mtimes) / 1e9
            # at most `delay`: a burst whose files keep old mtimes (rsync -t, tar x) still
            # waits for the rest of its quiet time
            if age > 0:
                quiet_since = started - min(age, delay)
    step = min(0.05, delay) if delay > 0 else 0
    while delay > 0:
        needed = max(delay, burst_quiet) if burst else delay
        now = clock()
        if now - quiet_since >= needed or now - started >= max_delay:
            break
        sleep(min(step, max(needed - (now - quiet_since), 0)))
        latest = scan() if events is None or events() else state
        if latest != state:
            state = latest
            quiet_since = clock()
            burst = burst or _looks_like_a_burst(snapshot.diff(baseline, state))
    return snapshot.diff(baseline, state), state


def _looks_like_a_burst(changes: Changes) -> bool:
    """Several files changed, or one is missing: a file missing now is often about to
    come back (git unlinks and writes each file, vim renames the old one away before
    writing the new one). A single file written in place, even in several writes, is a
    save of one file."""
    return len(changes.paths) > 1 or bool(changes.deleted)
