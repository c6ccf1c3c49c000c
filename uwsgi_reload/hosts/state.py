"""State shared by the processes of one server instance, in files.

uWSGI runs our check in whichever worker is free, and each worker has its own memory:
a module one worker imported after the fork, or a change one worker handled without a
reload, must be known to the next worker that checks. The journal is an append-only
file of such facts; each process reads what it has not read yet. A lock file makes
sure only one process checks at a time. The history file outlives reloads (the master
re-executes itself, so memory does not) and feeds the loop guard.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from uwsgi_reload.core.snapshot import Stat
from uwsgi_reload.hosts.uwsgi.waker import alive


def instance_dir(server_pid: int, root: str | None = None) -> str:
    """A folder private to one server instance: its pid and the pid's start time, which
    both survive uWSGI's re-exec at a reload, and tell a reused pid apart."""
    root = (
        root
        or os.environ.get("UWSGI_RELOAD_STATE_DIR")
        or os.path.join(tempfile.gettempdir(), f"uwsgi-reload-{os.getuid()}")
    )
    path = os.path.join(root, f"{server_pid}-{_start_time(server_pid)}")
    os.makedirs(path, mode=0o700, exist_ok=True)
    return path


def remove_dead_instances(folder: str) -> list[str]:
    """Remove the folders beside ``folder`` whose server is gone (its pid no longer
    runs, or runs another program started at another time). Returns what was removed."""
    root = os.path.dirname(folder)
    removed = []
    for name in os.listdir(root):
        pid, _, started = name.partition("-")
        if not (pid.isdigit() and started) or os.path.join(root, name) == folder:
            continue
        if not _runs(int(pid), started):
            shutil.rmtree(os.path.join(root, name), ignore_errors=True)
            removed.append(name)
    return removed


def _runs(pid: int, started: str) -> bool:
    if started != "0":
        return _start_time(pid) == started
    return alive(pid)  # no /proc: the start time was not known, the pid is all there is


def _start_time(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return "0"


class Journal:
    """Append-only facts of one generation (from one (re)start of the server to the next)."""

    def __init__(self, folder: str, generation: str) -> None:
        self.folder = folder
        self.path = os.path.join(folder, f"journal-{generation}")
        self._offset = 0
        self._lock_fd: int | None = None

    def clear_old(self) -> None:
        """Remove the journals of earlier generations (called by the process that
        starts a generation)."""
        for name in os.listdir(self.folder):
            if name.startswith("journal-") and os.path.join(self.folder, name) != self.path:
                with suppress(OSError):
                    os.unlink(os.path.join(self.folder, name))

    def _append(self, record: dict) -> None:
        line = (json.dumps(record, separators=(",", ":")) + "\n").encode("utf-8", "surrogatepass")
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line)  # one write with O_APPEND: lines from processes never mix
        finally:
            os.close(fd)

    def record_baseline(self, stats: dict[str, Stat | None]) -> None:
        """These paths now have this baseline (None: gone, and that is known)."""
        if stats:
            self._append({"baseline": stats})

    def record_loaded(self, path: str, stat: Stat) -> None:
        """This process imported ``path`` at ``stat``."""
        self._append({"loaded": [path, stat]})

    def record(self, **fact: object) -> None:
        self._append(fact)

    def read_new(self) -> list[dict]:
        """The records appended since this process last read."""
        try:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                data = f.read()
        except FileNotFoundError:
            return []
        end = data.rfind(b"\n") + 1  # leave a half-written line for next time
        self._offset += end
        records = []
        for line in data[:end].splitlines():
            try:
                records.append(json.loads(line.decode("utf-8", "surrogatepass")))
            except ValueError:
                continue
        return records

    @contextmanager
    def exclusive(self) -> Iterator[bool]:
        """Yield True if this process got the check lock, False if another holds it."""
        fd = os.open(os.path.join(self.folder, "lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


class History:
    """Recent reloads, kept across reloads: [(time, [paths], quick)], newest last."""

    def __init__(self, folder: str, keep: int = 20) -> None:
        self.path = os.path.join(folder, "history.json")
        self.suppressed_path = os.path.join(folder, "suppressed.json")
        self.notices_path = os.path.join(folder, "notices.json")
        self.count_path = os.path.join(folder, "reloads.json")
        self.chain_path = os.path.join(folder, "chain.json")
        self.keep = keep

    def load(self) -> list:
        try:
            with open(self.path, encoding="utf-8", errors="surrogateescape") as f:
                data = json.load(f)
            return data if isinstance(data, list) else []
        except (OSError, ValueError):
            return []

    def add(self, paths: list[str], quick: bool = False, now: float | None = None) -> list:
        entry = [time.time() if now is None else now, paths, quick]
        entries = [*self.load(), entry][-self.keep :]
        _write_json(self.path, entries)
        _write_json(self.count_path, self.count() + 1)
        return entries

    def set_chain(self, pids: list[int]) -> None:
        """The workers a chain reload is replacing."""
        _write_json(self.chain_path, pids)

    def chain(self) -> list[int]:
        try:
            with open(self.chain_path) as f:
                return [int(pid) for pid in json.load(f)]
        except (OSError, ValueError, TypeError):
            return []

    def count(self) -> int:
        """How many reloads this server has had (the history keeps only the last ones)."""
        try:
            with open(self.count_path) as f:
                return int(json.load(f))
        except (OSError, ValueError, TypeError):
            return 0

    def suppressed(self) -> set[str]:
        """Files the loop guard stopped tracking for the life of this server."""
        try:
            with open(self.suppressed_path, encoding="utf-8", errors="surrogateescape") as f:
                return set(json.load(f))
        except (OSError, ValueError, TypeError):
            return set()

    def suppress(self, paths: set[str]) -> None:
        _write_json(self.suppressed_path, sorted(self.suppressed() | paths))

    def first_time(self, notice: str) -> bool:
        """True the first time ``notice`` is seen in the life of this server (so that a
        warning is logged once, not at every check, worker or reload)."""
        fd = os.open(self.notices_path + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # workers starting together ask at once
            try:
                with open(self.notices_path, encoding="utf-8", errors="surrogateescape") as f:
                    seen = json.load(f)
            except (OSError, ValueError):
                seen = []
            if notice in seen:
                return False
            _write_json(self.notices_path, [*seen, notice])
            return True
        finally:
            os.close(fd)


def _write_json(path: str, data: object) -> None:
    tmp = f"{path}.{os.getpid()}"
    with open(tmp, "w", encoding="utf-8", errors="surrogateescape") as f:
        json.dump(data, f)
    os.replace(tmp, path)
