"""Wake the uWSGI master while it waits for old workers to die.

The master notices a dead worker only when its event loop wakes up, which happens
once a second when nothing else does (that is the "worker N buried after 1 seconds"
of every reload). A short-lived process that gives the master an event every 2 ms
until the old workers are gone cuts a graceful reload's stall from about 1 s to about
0.1 s (measured: bench/README.md).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from uwsgi_reload.hosts.state.processes import alive, run_before_exit
from uwsgi_reload.hosts.uwsgi import masterfifo

# 2 ms, not 10: the old workers were buried 0.019-0.024 s after the kill instead of
# 0.031-0.035 s (medians, bench/single_save.py, 21 saves, twice each); the helper
# lives only while the old workers leave
POKE_EVERY = 0.002


def spawn(poke: Callable[[], None], pids: list[int], limit: float = 30.0) -> None:
    """Call ``poke()`` every ``POKE_EVERY`` seconds in a detached process until none
    of ``pids`` is alive, or ``limit`` seconds have passed. Returns at once in the
    caller, which is one of ``pids`` (a worker that asked for the reload)."""

    def wake() -> None:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline and any(alive(pid) for pid in pids):
            try:
                poke()
            except OSError:
                pass
            time.sleep(POKE_EVERY)

    run_before_exit(wake)


def touch(path: str) -> Callable[[], None]:
    """A poke that writes a file in a folder the master monitors."""

    def poke() -> None:
        # O_TRUNC: a write event (IN_MODIFY), which the master's file monitor listens to;
        # opening and closing alone is not one
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600))

    return poke


def fifo_byte(path: str) -> Callable[[], None]:
    """A poke that writes a byte the master FIFO ignores (it is no command). The FIFO
    stays open between pokes: the master re-creates it each time its last writer
    closes it, and a command written by someone else must not meet that moment."""
    fds: list[int] = []

    def poke() -> None:
        if not fds:
            fds.append(masterfifo.open_for_writing(path, retry_for=0))
        try:
            os.write(fds[0], b"x")
        except OSError:
            os.close(fds.pop())  # the master went away or re-created it: open again
            raise

    return poke
