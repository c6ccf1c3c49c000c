"""Where the time of one reload goes, read from uWSGI's own log.

The benchmark runs every server with ``log-encoder = format ${micros} ${msgnl}``
(uWSGI 2.0.31): each line the master's logger handles starts with the wall-clock
time in microseconds. The encoder runs in the master when it reads the log pipe, so
a line is stamped when the master reads it, not when it was written. While the master
runs its loop that is at once; but the lines a re-executed master and its app write
before the master's loop starts (the banner, the imports, "WSGI app 0 ... ready",
"spawned uWSGI worker") are all read, and stamped, together when the loop starts,
which is right after the new workers were forked. So the "app loaded" step below ends
when the new generation's workers exist (the app imported and forked), not at the
"ready" line's own moment; the lines' own times are lost.

Steps of one save (graceful reload), each from the end of the one before:

  detected       saved -> the reloader's line: ours "modified ... -> graceful reload",
                 uWSGI's py-autoreload "... has been modified", touch-reload
                 "... has been touched"
  reload begins  -> uWSGI "...gracefully killing workers..." (or "chain reload starting",
                 or "Gracefully killing worker N" for a workers-only reload)
  old gone       -> the last "worker N buried after" before the re-exec; for a
                 workers-only reload (warm mode), the first "worker N killed successfully"
  exec           -> "binary reloading uWSGI..." (the master re-executes itself)
  app loaded     -> the first "WSGI app 0 ... ready" after that: after a re-exec,
                 when the new workers exist (see above); in chain mode (lazy-apps),
                 when the first new worker has imported the app
  first response -> the first response with the new code, seen by the benchmark

A step whose line is missing (no reloader line for the trigger variants, no re-exec
in chain mode) is None; the next step then counts from the last line found.
"""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass

STAMPED = re.compile(r"^(\d{16}) (.*)$")
STEPS = ("detected", "reload begins", "old gone", "exec", "app loaded", "first response")
DETECTED = re.compile(
    r"uwsgi_reload: modified .* -> "
    r"|\[uwsgi-python-reloader\] module/file .* has been modified"
    r"|has been touched\.\.\. grace them all"
)
RELOAD_BEGINS = re.compile(
    r"\.\.\.gracefully killing workers\.\.\.|chain reload starting|Gracefully killing worker \d+"
)
KILLED = re.compile(r"worker \d+ killed successfully")
BURIED = re.compile(r"worker \d+ buried after")
EXEC = re.compile(r"binary reloading uWSGI")
APP_READY = re.compile(r"WSGI app \d+ \(mountpoint='[^']*'\) ready")


@dataclass(frozen=True)
class LogLine:
    at: float  # wall-clock seconds, as stamped by the master
    text: str


def stamped_lines(log: str) -> list[LogLine]:
    """The lines of a uWSGI log that carry a ``${micros}`` stamp, in log order
    (lines written before the encoder was set up carry none and are skipped)."""
    lines = []
    for raw in log.splitlines():
        match = STAMPED.match(raw)
        if match:
            lines.append(LogLine(int(match.group(1)) / 1e6, match.group(2)))
    return lines


def reload_steps(
    lines: list[LogLine], saved: float, seen: float | None, until: float
) -> dict[str, float | None]:
    """Durations (seconds) of the steps of the reload that followed a save at wall
    time ``saved``, whose new code was first seen at ``seen`` (None: never), from the
    log lines stamped between ``saved`` and ``until`` (the next save)."""
    window = [line for line in lines if saved <= line.at < until]
    times: dict[str, float | None] = dict.fromkeys(STEPS)

    def first(pattern: re.Pattern[str], after: float) -> LogLine | None:
        return next((ln for ln in window if ln.at >= after and pattern.search(ln.text)), None)

    cursor = saved
    found = first(DETECTED, cursor)
    if found:
        times["detected"] = cursor = found.at
    begins = first(RELOAD_BEGINS, cursor)
    if begins:
        times["reload begins"] = cursor = begins.at
        executed = first(EXEC, cursor)
        end = executed.at if executed else until
        buried = [ln for ln in window if cursor <= ln.at <= end and BURIED.search(ln.text)]
        if buried and executed:  # in chain mode workers die one by one: no "all gone"
            times["old gone"] = cursor = buried[-1].at
        if executed:
            times["exec"] = cursor = executed.at
        else:  # workers only (FIFO w, warm mode): the first old worker gone frees a slot
            killed = first(KILLED, cursor)
            if killed and not first(re.compile("chain reload starting"), saved):
                times["old gone"] = cursor = killed.at
        ready = first(APP_READY, cursor)
        if ready:
            times["app loaded"] = cursor = ready.at
    if seen is not None:
        times["first response"] = seen
    durations: dict[str, float | None] = {}
    previous = saved
    for step in STEPS:
        at = times[step]
        if at is None:
            durations[step] = None
            continue
        durations[step] = max(0.0, at - previous)
        previous = at
    return durations


def median_steps(rows: list[dict[str, float | None]]) -> dict[str, float | None]:
    """The median of each step over the saves where that step was found."""
    result: dict[str, float | None] = {}
    for step in STEPS:
        values = [row[step] for row in rows if row.get(step) is not None]
        result[step] = statistics.median(values) if values else None  # type: ignore[type-var]
    return result
