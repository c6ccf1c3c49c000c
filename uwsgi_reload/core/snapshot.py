"""Snapshots of file metadata and the difference between two of them. Pure."""

from __future__ import annotations

import os
import stat as stat_module
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple


class FileStat(NamedTuple):
    """What a check compares of a file. The inode catches an editor's write-then-rename
    save even when it keeps the old mtime and size; the permission bits and owner catch
    a fix that only makes the file readable (``chmod 644``, ``chown``), which changes
    neither. (Not ctime: it also moves on every rename, link count change and xattr
    write, none of which changes what Python loads.)"""

    mtime_ns: int
    size: int
    ino: int
    mode: int  # permission bits only (the file type is always "regular" here)
    uid: int
    gid: int


Stat = FileStat  # the name the rest of the package uses
Snapshot = Mapping[str, FileStat]

# Linux stamps a write with the coarse clock's last tick (or a later fine reading),
# which can be up to a tick (4 ms) behind time.time_ns(): a file written just after a
# time.time_ns() reading may carry an earlier mtime. Not in the time module's constants.
CLOCK_REALTIME_COARSE = 5
# Elsewhere, how far behind the file times may be, at most.
OTHER_SYSTEMS_SLACK_NS = 20_000_000


def file_clock_ns() -> int:
    """Now, on the clock file times come from: a file written after this reading has an
    mtime and ctime at or after it (compare with ``>=``)."""
    if sys.platform == "linux":
        return time.clock_gettime_ns(CLOCK_REALTIME_COARSE)
    return time.time_ns() - OTHER_SYSTEMS_SLACK_NS


def file_stat(st: os.stat_result) -> FileStat:
    """The one place a :class:`FileStat` is made from an ``os.stat`` result."""
    return FileStat(
        st.st_mtime_ns, st.st_size, st.st_ino, stat_module.S_IMODE(st.st_mode), st.st_uid, st.st_gid
    )


def from_record(value: Sequence[int]) -> FileStat:
    """A stat read back from a JSON record (where it was written as a list)."""
    return FileStat(*value)


def stat_file(path: str) -> FileStat | None:
    """The stat of a regular file, or None if it is missing, unreadable or not a file."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    if not stat_module.S_ISREG(st.st_mode):  # a folder or FIFO in its place is a deletion
        return None
    return file_stat(st)


def changed_since(path: str, ns: int) -> bool:
    """True when the content or the metadata (mode, owner) of ``path`` changed at or
    after ``ns`` (a :func:`file_clock_ns`). Uses ctime, which a chmod or chown moves
    and mtime does not; a rename moves it too, which is fine for the callers: files a
    failed load named, where one reload too many costs nothing."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return False
    return max(st.st_mtime_ns, st.st_ctime_ns) >= ns


def take(paths: Iterable[str]) -> dict[str, FileStat]:
    """Stat every path; missing ones are left out, so they show as deleted in a diff."""
    snapshot = {}
    for path in paths:
        stat = stat_file(path)
        if stat is not None:
            snapshot[path] = stat
    return snapshot


def unchanged(paths: Iterable[str], baseline: Snapshot) -> bool:
    """True when ``take(paths)`` would equal ``baseline`` restricted to ``paths``: every
    path has its baseline stat, and the ones missing from ``baseline`` are still absent.
    Stops at the first difference. This is the idle check of the poll backend, once a
    second over every tracked file: it compares the fields of :func:`file_stat` as a
    plain tuple (equal to a FileStat), without building one per file."""
    stat, known = os.stat, baseline.get
    for path in paths:
        try:
            st = stat(path)
        except (OSError, ValueError):
            st = None
        if st is None or st.st_mode & 0o170000 != 0o100000:  # missing, or not a file
            if known(path) is not None:
                return False
            continue
        fields = (st.st_mtime_ns, st.st_size, st.st_ino, st.st_mode & 0o7777, st.st_uid, st.st_gid)
        if fields != known(path):
            return False
    return True


class Changes(NamedTuple):
    added: frozenset[str] = frozenset()
    modified: frozenset[str] = frozenset()
    deleted: frozenset[str] = frozenset()

    def __bool__(self) -> bool:  # a tuple of three sets would always be true
        return bool(self.added or self.modified or self.deleted)

    @property
    def paths(self) -> list[str]:
        return sorted(self.added | self.modified | self.deleted)

    def describe(self, limit: int = 10) -> str:
        """`modified a.py, added b.py` with at most ``limit`` paths named."""
        parts = []
        shown = 0
        for label, paths in (
            ("modified", self.modified),
            ("added", self.added),
            ("deleted", self.deleted),
        ):
            if not paths:
                continue
            names = sorted(paths)[: max(limit - shown, 0)]
            shown += len(names)
            more = len(paths) - len(names)
            text = ", ".join(names) + (f" (+{more} more)" if more else "")
            parts.append(f"{label} {text}" if names else f"{label} {more} more")
        return "; ".join(parts)

    def __or__(self, other: Changes) -> Changes:
        return Changes(
            self.added | other.added, self.modified | other.modified, self.deleted | other.deleted
        )


def diff(old: Snapshot, new: Snapshot) -> Changes:
    """What differs from ``old`` to ``new``: paths only in ``new`` were added, only in
    ``old`` deleted, in both with another stat modified."""
    old_keys, new_keys = old.keys(), new.keys()
    return Changes(
        added=frozenset(new_keys - old_keys),
        deleted=frozenset(old_keys - new_keys),
        modified=frozenset(p for p in old_keys & new_keys if old[p] != new[p]),
    )
