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
        os.setsid()
        os.closerange(3, os.sysconf("SC_OPEN_MAX"))
        work()
    finally:
        os._exit(0)


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
