"""Telling processes apart: a pid is only comparable with its start time, inside one
pid namespace and one boot."""

from __future__ import annotations

import os
from collections.abc import Callable

from uwsgi_reload.hosts.state.files import read_small


def run_detached(work: Callable[[], None]) -> None:
    """Run ``work`` in a grandchild in its own session, holding none of the caller's
    files but 0-2 (no socket of the server). Returns at once; leaves no zombie."""
    child = os.fork()
    if child:
        os.waitpid(child, 0)  # the first child exits at once
        return
    try:
        if os.fork():
            os._exit(0)
        _detach_and_run(work)
    finally:
        os._exit(0)


_left_behind: list[int] = []  # children of run_before_exit not reaped yet


def run_before_exit(work: Callable[[], None]) -> None:
    """:func:`run_detached` for a caller about to exit, such as a worker asking for its
    own replacement: one fork instead of two, not waited for (a 100-MB worker forks in
    3 ms; the double fork and wait took 12.6 ms). When the caller exits, init adopts
    the child. If it lives on, the child is reaped at its next call: one zombie at most."""
    for pid in list(_left_behind):
        try:
            if os.waitpid(pid, os.WNOHANG)[0]:
                _left_behind.remove(pid)
        except ChildProcessError:
            _left_behind.remove(pid)
    child = os.fork()
    if child:
        _left_behind.append(child)
        return
    try:
        _detach_and_run(work)
    finally:
        os._exit(0)


def _detach_and_run(work: Callable[[], None]) -> None:
    os.setsid()
    os.closerange(3, os.sysconf("SC_OPEN_MAX"))
    work()


def alive(pid: int) -> bool:
    """True while the process exists, zombies included: a zombie is what the master
    has not collected yet, which is exactly what the waker waits for."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def start_time(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return "0"


def runs(pid: int, started: str) -> bool:
    if started != "0":
        return start_time(pid) == started
    return alive(pid)  # no /proc: the start time was not known, the pid is all there is


def boot_id() -> str:
    try:
        return read_small("/proc/sys/kernel/random/boot_id").decode().strip()
    except (OSError, UnicodeDecodeError):
        return ""


def pid_namespace() -> int:
    """The inode of our pid namespace: pids and start times are only comparable inside
    one (containers that share a folder each have their own)."""
    try:
        return os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return 0


def identity(pid: int, started: str) -> dict:
    return {"pid": pid, "started": started, "pidns": pid_namespace(), "boot": boot_id()}
