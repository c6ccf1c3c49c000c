"""The history of a server: recent reloads, the loop guard's verdicts, notices already
logged, the workers of a running chain reload. It outlives reloads (the master
re-executes itself, so memory does not)."""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

from uwsgi_reload.hosts.state.files import open_lock, read_json, write_json

KEEP_NOTICES = 100


def _list(data: object) -> list:
    if not isinstance(data, list):
        raise TypeError("not a list")
    return data


class History:
    """Recent reloads, kept across reloads: [(time, [paths], quick)], newest last."""

    def __init__(self, folder: str, keep: int = 20) -> None:
        self.path = os.path.join(folder, "history.json")
        self.suppressed_path = os.path.join(folder, "suppressed.json")
        self.notices_path = os.path.join(folder, "notices.json")
        self.count_path = os.path.join(folder, "reloads.json")
        self.chain_path = os.path.join(folder, "chain.json")
        self.fallback_path = os.path.join(folder, "fallback.json")
        self.keep = keep

    def load(self) -> list:
        return read_json(self.path, [], _list)

    def add(self, paths: list[str], quick: bool = False, now: float | None = None) -> list:
        entry = [time.time() if now is None else now, paths, quick]
        entries = [*self.load(), entry][-self.keep :]
        write_json(self.path, entries)
        write_json(self.count_path, self.count() + 1)
        return entries

    def set_chain(self, pids: list[int]) -> None:
        """The workers a chain reload is replacing."""
        write_json(self.chain_path, pids)

    def chain(self) -> list[int]:
        return read_json(self.chain_path, [], lambda data: [int(pid) for pid in _list(data)])

    def count(self) -> int:
        """How many reloads this server has had (the history keeps only the last ones)."""
        return read_json(self.count_path, 0, int)

    def suppressed(self) -> set[str]:
        """Files the loop guard stopped tracking for the life of this server."""
        return read_json(self.suppressed_path, set(), lambda data: {str(p) for p in _list(data)})

    def suppress(self, paths: set[str]) -> None:
        write_json(self.suppressed_path, sorted(self.suppressed() | paths))

    def fallback(self) -> str:
        """Why the event backend was given up for polling ("" if it never was): a
        reload makes a new backend, which must not trust events that were missed."""
        return read_json(self.fallback_path, "", str)

    def set_fallback(self, why: str) -> None:
        write_json(self.fallback_path, why)

    @contextmanager
    def _notices(self) -> Iterator[list]:
        fd = open_lock(self.notices_path + ".lock")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # workers starting together ask at once
            yield read_json(self.notices_path, [], _list)
        finally:
            os.close(fd)

    def first_time(self, notice: str) -> bool:
        """True the first time ``notice`` is seen in the life of this server (so that a
        warning is logged once, not at every check, worker or reload). The last
        ``KEEP_NOTICES`` are remembered."""
        with self._notices() as seen:
            if notice in seen:
                return False
            write_json(self.notices_path, [*seen, notice][-KEEP_NOTICES:])
            return True

    def trim_notices(self) -> None:
        with self._notices() as seen:
            if len(seen) > KEEP_NOTICES:
                write_json(self.notices_path, seen[-KEEP_NOTICES:])
