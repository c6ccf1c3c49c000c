"""The Linux inotify system calls through ctypes: which paths in a set of folders were
touched, without polling.

Pure: no ``uwsgi`` import, standard library only. One :class:`Inotify` owns one kernel
inotify instance. Its :attr:`Inotify.fd` is non-blocking, so a process can ask
:meth:`Inotify.read` on its own schedule; an instance made before ``fork()`` is shared
by the children (uWSGI workers): whichever process reads gets the pending events,
once. The map from watch descriptors to folders lives in each process's memory; a
process that meets a watch another process added answers :data:`RESCAN` once and
learns the watch again.

Folders are watched, not files: an editor that saves by writing a new file and
renaming it over the old one replaces the file's inode, and a watch on the file would
be lost. A folder watch reports creations, writes (on close), renames in and out,
deletions and attribute changes (``touch``) of the files in it.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct
import sys
from collections.abc import Callable, Iterable

from uwsgi_reload.backends.base import RESCAN, BackendFailed, Rescan

# <sys/inotify.h>
IN_ATTRIB = 0x00000004
IN_CLOSE_WRITE = 0x00000008
IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_DELETE_SELF = 0x00000400
IN_MOVE_SELF = 0x00000800
IN_UNMOUNT = 0x00002000
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_ONLYDIR = 0x01000000
IN_EXCL_UNLINK = 0x04000000
IN_ISDIR = 0x40000000
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC

# What a folder watch asks for. IN_MODIFY (one event per write()) is left out:
# a log file kept open in a watched folder would wake the reader at every
# line, while IN_CLOSE_WRITE reports a saved file once, when the save is complete.
MASK = (
    IN_CLOSE_WRITE
    | IN_ATTRIB
    | IN_CREATE
    | IN_DELETE
    | IN_MOVED_FROM
    | IN_MOVED_TO
    | IN_DELETE_SELF
    | IN_MOVE_SELF
    | IN_ONLYDIR
    | IN_EXCL_UNLINK
)

_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len; then len bytes of NUL-padded name
_READ_SIZE = 65536
_MAX_READS = 64  # per read(): a folder written without pause cannot keep us in the loop


class InotifyError(BackendFailed):
    """inotify cannot be used here: the caller should poll instead."""


class WatchLimitError(InotifyError):
    """The per-user inotify watch limit is reached (``ENOSPC``)."""


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.inotify_init1.argtypes = [ctypes.c_int]
        libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
        libc.inotify_rm_watch.argtypes = [ctypes.c_int, ctypes.c_int]
    except (OSError, AttributeError):
        return None
    return libc


_LIBC = _libc()


def _limit(name: str) -> str:
    try:
        with open(f"/proc/sys/fs/inotify/{name}") as f:
            return f.read().strip()
    except OSError:
        return "?"


class Inotify:
    """One inotify instance watching folders, each non-recursively, and whole trees
    under recursive roots (folders created there later are watched as they appear).

    ``excludes(path)`` names folders never to watch below a recursive root
    (``node_modules``, ``.git``, ...).
    """

    def __init__(self, excludes: Callable[[str], bool] | None = None):
        if _LIBC is None:
            raise InotifyError(errno.ENOSYS, "inotify is not available on this system")
        fd = _LIBC.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            code = ctypes.get_errno()
            hint = ""
            if code == errno.EMFILE:
                hint = f" (fs.inotify.max_user_instances = {_limit('max_user_instances')})"
            raise InotifyError(code, f"inotify_init1: {os.strerror(code)}{hint}")
        self._fd = fd
        self._excludes = excludes or (lambda path: False)
        self.mask = MASK
        self._paths: dict[int, list[str]] = {}  # wd -> folders (several: symlinked paths)
        self._wds: dict[str, int] = {}  # folder -> wd
        self._roots: set[str] = set()  # recursive roots
        self._stale = False  # met a watch made by another process sharing the fd
        self._dropped: set[int] = set()  # watches removed here, IN_IGNORED not yet read

    @property
    def fd(self) -> int:
        """The non-blocking inotify fd: readable when events are pending."""
        if self._fd < 0:
            raise ValueError("inotify instance is closed")
        return self._fd

    def fileno(self) -> int:
        return self.fd

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
            self._paths.clear()
            self._wds.clear()

    def __enter__(self) -> Inotify:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def watched(self) -> set[str]:
        """The folders watched now."""
        return set(self._wds)

    def watch_dirs(self, paths: Iterable[str], recursive: bool = False) -> set[str]:
        """Watch these folders (already watched ones cost nothing). With ``recursive``
        each is a root: its subfolders are watched too, now and when they appear.
        Returns the folders that could not be watched (missing, not a folder, no
        permission). Raises :class:`WatchLimitError` when the watch limit is reached."""
        failed = set()
        for path in paths:
            path = os.path.abspath(path)
            if recursive:
                if path in self._roots and path in self._wds:
                    continue  # new subfolders are watched as their events arrive
                self._roots.add(path)
                if not self._watch_tree(path, None):
                    failed.add(path)
            elif path not in self._wds and not self._add(path):
                failed.add(path)
        return failed

    def read(self) -> set[str] | Rescan:
        """Paths touched since the last read (never blocks; empty when nothing
        happened): files created, written, renamed in or out, deleted or touched, and
        watched folders that were deleted or moved (the files below them are affected). A new
        folder under a recursive root is watched and the files already in it are
        reported. :data:`RESCAN` when events were lost: compare everything. Raises
        :class:`WatchLimitError` if a new folder cannot be watched."""
        touched: set[str] = set()
        rescan = False
        for _ in range(_MAX_READS):
            try:
                data = os.read(self.fd, _READ_SIZE)
            except BlockingIOError:
                break
            if not data:
                break
            rescan |= self._parse(data, touched)
        if self._stale:
            self._stale = False
            self._resync()
            rescan = True
        return RESCAN if rescan else touched

    # --- internals ---------------------------------------------------------------

    def _add(self, path: str) -> bool:
        wd = _LIBC.inotify_add_watch(self.fd, os.fsencode(path), self.mask)  # type: ignore[union-attr]
        if wd < 0:
            code = ctypes.get_errno()
            if code == errno.ENOSPC:
                raise WatchLimitError(
                    code,
                    f"inotify watch limit reached watching {path} "
                    f"(fs.inotify.max_user_watches = {_limit('max_user_watches')}, shared by "
                    "every process of this user; in a container the host's setting counts): "
                    "raise it with `sysctl fs.inotify.max_user_watches=524288`, or poll",
                )
            if code == errno.ENOMEM:
                raise InotifyError(code, f"inotify_add_watch {path}: {os.strerror(code)}")
            return False  # ENOENT, ENOTDIR, EACCES, ELOOP, ...: nothing to watch there
        paths = self._paths.setdefault(wd, [])
        if path not in paths:
            paths.append(path)
        self._wds[path] = wd
        return True

    def _forget(self, wd: int, path: str | None = None) -> None:
        """Drop ``path`` (or every path) of watch ``wd`` from the map."""
        paths = self._paths.get(wd, [])
        for known in [p for p in paths if path is None or p == path]:
            paths.remove(known)
            if self._wds.get(known) == wd:
                del self._wds[known]
        if not paths:
            self._paths.pop(wd, None)

    def _in_tree(self, path: str) -> bool:
        return any(path == root or path.startswith(root + os.sep) for root in self._roots)

    def _watch_tree(self, root: str, found: set[str] | None) -> bool:
        """Watch ``root`` and every folder below it; add the files seen to ``found``."""
        if not self._add(root):
            return False
        stack = [root]
        while stack:
            folder = stack.pop()
            try:
                with os.scandir(folder) as scan:
                    entries = list(scan)
            except OSError:  # vanished or unreadable meanwhile
                continue
            for entry in entries:
                try:
                    is_dir = entry.is_dir(follow_symlinks=False)
                except OSError:
                    continue
                if is_dir:
                    if not self._excludes(entry.path) and self._add(entry.path):
                        stack.append(entry.path)
                elif found is not None:
                    found.add(entry.path)
        return True

    def _drop_tree(self, top: str) -> None:
        """Stop watching ``top`` and below: it moved away, the watches would follow it."""
        prefix = top + os.sep
        for path in [p for p in self._wds if p == top or p.startswith(prefix)]:
            wd = self._wds[path]
            self._forget(wd, path)
            if wd not in self._paths:
                self._dropped.add(wd)  # its pending events and IN_IGNORED are expected
                _LIBC.inotify_rm_watch(self._fd, wd)  # type: ignore[union-attr]

    def _parse(self, data: bytes, touched: set[str]) -> bool:
        rescan = False
        offset = 0
        size = _EVENT.size
        while offset + size <= len(data):
            wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
            name = os.fsdecode(data[offset + size : offset + size + length].rstrip(b"\0"))
            offset += size + length
            if mask & IN_Q_OVERFLOW:
                rescan = True
                self._stale = True  # folders made since may be unwatched: walk the roots
                continue
            folders = self._paths.get(wd)
            if folders is None:
                if mask & IN_IGNORED:
                    self._dropped.discard(wd)
                elif wd not in self._dropped:  # a watch another process added
                    self._stale = True
                continue
            for folder in list(folders):
                path = os.path.join(folder, name) if name else folder
                touched.add(path)
                if not name:
                    if mask & IN_IGNORED:  # deleted or unmounted: the kernel dropped it
                        self._forget(wd)
                    elif mask & IN_MOVE_SELF:  # the watch would follow it elsewhere
                        self._drop_tree(path)
                    continue
                if mask & IN_ISDIR:
                    if mask & (IN_CREATE | IN_MOVED_TO) and self._in_tree(path):
                        if not self._excludes(path):
                            self._watch_tree(path, touched)
                    elif mask & (IN_MOVED_FROM | IN_DELETE):
                        self._drop_tree(path)
        return rescan

    def _resync(self) -> None:
        """Learn the watches other processes added: adding a watch that exists returns
        its descriptor. Walks the recursive roots again."""
        for path in list(self._wds):
            self._add(path)
        for root in list(self._roots):
            self._watch_tree(root, None)
