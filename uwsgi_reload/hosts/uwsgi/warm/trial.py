"""Import a sequence of modules in a forked child first, to learn how much of it
imports cleanly before doing it for real.

A failed import cannot be undone: modules it imported stay half set up, and removing
them from ``sys.modules`` splits the world in two (measured on a Wagtail site: classes
imported again no longer match their metaclasses). So a process that must stay clean,
the uWSGI master, only imports a prefix a child of its own has imported without error.
"""

from __future__ import annotations

import importlib
import os
import select
import sys
import threading
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass

STALL_LIMIT = 20.0  # seconds one import may take before the child is given up on
_DONE = b"D"
_FAILED = b"F"
_IMPORTED = b"."


@dataclass(frozen=True)
class TrialResult:
    imported: int  # how many names, from the first, imported cleanly
    failure: str = ""  # why names[imported] did not ("" when all did)


def try_imports(names: Sequence[str], forbidden: Collection[str] = ()) -> TrialResult:
    """Import ``names`` in order in a forked child. An import fails when it raises,
    leaves one of ``forbidden`` (the project's modules) imported, or starts a thread
    (only the forking thread lives on in the workers)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        _child(names, frozenset(forbidden), write_end)
    os.close(write_end)
    try:
        report = _read_report(read_end, pid)
    finally:
        os.close(read_end)
    return _result(report, pid)


def _child(names: Sequence[str], forbidden: frozenset[str], out: int) -> None:
    try:
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):  # what the libraries print while tried is not the app's
            os.dup2(null, fd)
        threads = threading.active_count()
        for name in names:
            try:
                importlib.import_module(name)
                pulled = forbidden.intersection(sys.modules)
                if pulled:
                    raise ImportError(f"it imports the project's {min(pulled)}")
                if threading.active_count() > threads:  # a thread would not survive the fork
                    raise ImportError("it starts a thread")
            except BaseException as error:  # SystemExit from a module too
                text = f"{type(error).__name__}: {error}".replace("\n", " ")[:500]
                os.write(out, _FAILED + text.encode("utf-8", "replace"))
                break
            os.write(out, _IMPORTED)
        else:
            os.write(out, _DONE)
    finally:
        os._exit(0)


def _read_report(fd: int, pid: int) -> bytes:
    report = b""
    while True:
        ready, _, _ = select.select([fd], [], [], STALL_LIMIT)
        if not ready:  # an import hangs (waits on the network, a lock...)
            os.kill(pid, 9)
            return report + _FAILED + f"no progress for {STALL_LIMIT:g} s".encode()
        chunk = os.read(fd, 65536)
        if not chunk:
            return report
        report += chunk


def _result(report: bytes, pid: int) -> TrialResult:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.005)
    else:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        status = 0
    failed_at = report.find(_FAILED)
    if failed_at >= 0:
        why = report[failed_at + 1 :].decode("utf-8", "replace")
        return TrialResult(report.count(_IMPORTED, 0, failed_at), why)
    imported = report.count(_IMPORTED)
    if report.endswith(_DONE):
        return TrialResult(imported)
    how = f"signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status) else "an exit"
    return TrialResult(imported, f"the import ended the process ({how})")
