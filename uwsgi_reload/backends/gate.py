"""The scan gate: whether a check must scan, from what the backend reported.

Every backend feeds the same decision: scan when the backend saw something, when a new
watch was added (a file in it may have changed before), and every ``SAFETY_EVERY``
checks anyway. A backend that fails while running (watch limit, ``ENOSPC``,
``EMFILE``), or that missed a change the safety scan found, is replaced by polling for
the rest of the run, with one line saying why; polling scans at every check, so
nothing is lost.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from uwsgi_reload.backends import filesystems
from uwsgi_reload.backends.base import RESCAN, Backend, BackendFailed
from uwsgi_reload.backends.poll import PollBackend
from uwsgi_reload.core import globs, sources
from uwsgi_reload.core.detector import Detector
from uwsgi_reload.core.snapshot import Changes

SAFETY_EVERY = 30


class ScanGate:
    """Watches the folders of the tracked files and tells whether a check must scan."""

    def __init__(
        self,
        detector: Detector,
        backend: Backend,
        log: Callable[[str], None],
        on_fall_back: Callable[[str], None] | None = None,
    ) -> None:
        self.detector = detector
        self.backend = backend
        self.log = log
        self.on_fall_back = on_fall_back  # a host remembers it across its reloads
        self.checks = 0
        self.extra_roots: set[str] = set()  # more trees to watch (a framework's folders)
        self._seen: set[str] = set()
        self._roots: set[str] = set()  # watched recursively
        self._version: tuple[int, int] | None = None
        self._safety_only = False  # the current scan runs only because it is due

    @property
    def name(self) -> str:
        return self.backend.name

    def include_roots(self) -> set[str]:
        """Folders to watch recursively: included folders and the fixed part of globs."""
        config = self.detector.config
        roots = set()
        for pattern in config.include:
            path = sources.absolute(pattern, config.base_dir)
            if globs.has_glob(pattern):
                roots.add(globs.static_root(path))
            elif os.path.isdir(path):
                roots.add(path)
            else:
                roots.add(os.path.dirname(path))
        return roots | self.extra_roots

    def watch_file(self, path: str) -> None:
        """Watch the folder of one trackable file (a module just loaded)."""
        self._guarded(lambda: self.backend.watch([os.path.dirname(path)]))

    def watch_tracked(self) -> bool:
        """Watch the folders of every tracked file not yet watched, and the include
        roots recursively; True if any watch is new (a file in it may have changed
        before the watch existed: scan)."""
        version = self.detector.known_version()
        roots = self.include_roots()
        if version == self._version and roots <= self._roots:
            return False
        self._version = version
        fresh = self.detector.known_files() - self._seen
        self._seen |= fresh
        folders = {os.path.dirname(p) for p in fresh} - self.backend.watched()
        new_roots = roots - self._roots
        self._roots |= new_roots

        def watch() -> None:
            self.backend.watch(folders)
            # a root may be watched already as a module's folder: now below it too
            self.backend.watch(new_roots, recursive=True)

        self._guarded(watch)
        return bool(folders or new_roots)

    def pending(self, timeout: float = 0.0) -> bool:
        """True when events wait (without reading them); waits up to ``timeout``."""
        return self._guarded(lambda: self.backend.pending(timeout), False)

    def needs_scan(self) -> bool:
        """Read what the backend saw (consuming it for every process sharing it)."""
        self.checks += 1
        touched = self._guarded(self.backend.changed, RESCAN)
        if touched is RESCAN:
            self._safety_only = False
            return True
        grew = self.watch_tracked()
        due = self.checks % SAFETY_EVERY == 1
        self._safety_only = due and not touched and not grew and self.checks > 1
        return bool(touched) or grew or due

    def after_scan(self, changes: Changes) -> None:
        """A scan that ran only because it was due found ``changes``: if the backend
        still reports nothing of them, it misses events here: poll from now on."""
        if not (self._safety_only and changes):
            return
        self._safety_only = False
        touched = self._guarded(self.backend.changed, RESCAN)
        if touched is RESCAN or touched & set(changes.paths):
            return  # the events were only late
        where = filesystems.mount_description(changes.paths[0])
        self.fall_back(
            f"{self.backend.name} reported no event for {changes.paths[0]}"
            + (f" ({where})" if where else "")
            + ", which a full check found changed"
        )

    def fall_back(self, why: str) -> None:
        if isinstance(self.backend, PollBackend):
            return
        self.log(f"{why}: polling from now on (uwsgi-reload-backend = poll skips {self.name})")
        self.backend.close()
        self.backend = PollBackend()
        if self.on_fall_back is not None:
            self.on_fall_back(why)

    def _guarded(self, call: Callable, failed=None):
        try:
            return call()
        except BackendFailed as error:
            self.fall_back(f"{self.backend.name} failed: {error.strerror or error}")
            return failed
