"""The inotify backend (Linux): a check scans only after the kernel reported a change
in a watched folder, so an idle check costs one non-blocking read."""

from __future__ import annotations

import select
from collections.abc import Callable, Iterable

from uwsgi_reload.backends.base import RESCAN, Rescan
from uwsgi_reload.backends.inotify_kernel import Inotify, InotifyError, WatchLimitError

__all__ = ["RESCAN", "Inotify", "InotifyBackend", "InotifyError", "WatchLimitError", "available"]


def available() -> bool:
    """True when this process can make an inotify instance (Linux, libc has it, the
    per-user instance limit is not reached)."""
    try:
        Inotify().close()
    except InotifyError:
        return False
    return True


class InotifyBackend:
    """The :class:`~uwsgi_reload.backends.base.Backend` on Linux inotify. Made before
    uWSGI forks, its fd is shared by the workers: whichever checks reads the events."""

    name = "inotify"

    def __init__(self, excludes: Callable[[str], bool] | None = None) -> None:
        self.events = Inotify(excludes)

    def watch(self, folders: Iterable[str], recursive: bool = False) -> None:
        self.events.watch_dirs(folders, recursive)

    def watched(self) -> set[str]:
        return self.events.watched()

    def changed(self) -> set[str] | Rescan:
        return self.events.read()

    def pending(self, timeout: float = 0.0) -> bool:
        readable, _, _ = select.select([self.events.fd], [], [], timeout)
        return bool(readable)

    def close(self) -> None:
        self.events.close()
