"""The event backend: a check scans only when inotify saw something happen.

The scan itself stays the one the poll backend does (same baseline, same rules, same
results); events only say when it is worth doing. An idle check then costs one
non-blocking read instead of a stat of every tracked file. A full scan still runs
every ``SAFETY_EVERY`` checks, for whatever a filesystem fails to report.

Pure: no ``uwsgi`` import. The host decides when to call :meth:`EventGate.needs_scan`.
"""

from __future__ import annotations

import os
import select
from collections.abc import Iterable

from uwsgi_reload.backends import inotify
from uwsgi_reload.core import sources
from uwsgi_reload.core.config import Config
from uwsgi_reload.core.detector import Detector

SAFETY_EVERY = 30


def open_events(config: Config, roots: Iterable[str]) -> tuple[inotify.Inotify | None, str]:
    """An inotify instance for ``config.backend``, or None with the reason to poll.
    ``auto`` polls on filesystems that do not deliver events for changes made
    elsewhere (Docker Desktop and VM shares, NFS, SMB); ``inotify`` trusts the user."""
    if config.backend == "poll":
        return None, "backend poll"
    if not inotify.available():
        return None, "inotify is not available on this system"
    if config.backend == "auto":
        for root in roots:
            kind = inotify.unreliable_filesystem(root)
            if kind:
                return None, f"{root} is on {kind}, which may deliver no events"
    try:
        return inotify.Inotify(), "inotify"
    except OSError as error:
        return None, f"inotify failed ({error})"


class EventGate:
    """Watches the folders of the tracked files and tells whether a check must scan."""

    def __init__(self, detector: Detector, events: inotify.Inotify) -> None:
        self.detector = detector
        self.events = events
        self.checks = 0
        self.extra_roots: set[str] = set()  # more trees to watch (Django's template dirs)
        self._seen: set[str] = set()
        self._version: tuple[int, int] | None = None

    def include_roots(self) -> set[str]:
        """Folders to watch recursively: included folders and the fixed part of globs."""
        config = self.detector.config
        roots = set()
        for pattern in config.include:
            path = sources.absolute(pattern, config.base_dir)
            if sources.has_glob(pattern):
                roots.add(sources.static_root(path))
            elif os.path.isdir(path):
                roots.add(path)
            else:
                roots.add(os.path.dirname(path))
        return roots | self.extra_roots

    def watch_file(self, path: str) -> None:
        """Watch the folder of one trackable file (a module just loaded)."""
        self.events.watch_dirs([os.path.dirname(path)])

    def watch_tracked(self) -> bool:
        """Watch the folders of every tracked file not yet watched; True if any was
        new (a file in it may have changed before its watch existed: scan)."""
        version = self.detector.known_version()
        if version == self._version:
            return False
        self._version = version
        files = self.detector.known_files()
        fresh = files - self._seen
        self._seen |= fresh
        new = {os.path.dirname(p) for p in fresh} - self.events.watched()
        self.events.watch_dirs(new)
        roots = self.include_roots()
        new_roots = roots - self.events.watched()
        self.events.watch_dirs(new_roots, recursive=True)
        return bool(new or new_roots)

    def pending(self) -> bool:
        """True when events wait in the queue (without reading them)."""
        readable, _, _ = select.select([self.events.fd], [], [], 0)
        return bool(readable)

    def needs_scan(self) -> bool:
        """Read the pending events (consuming them for every process sharing the fd)."""
        self.checks += 1
        touched = self.events.read()
        if touched is inotify.RESCAN:
            return True
        grew = self.watch_tracked()
        return bool(touched) or grew or self.checks % SAFETY_EVERY == 1
