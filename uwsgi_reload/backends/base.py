"""The contract every backend implements.

A backend tells *when* a check is worth scanning, never *what* changed: the scan is
the same for every backend (the detector stats the tracked files against their
baseline), so a backend that misses an event costs time, not correctness.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import Protocol


class Rescan(enum.Enum):
    """The backend cannot tell what happened (events lost, polling): scan everything."""

    RESCAN = "rescan"


RESCAN = Rescan.RESCAN


class BackendFailed(OSError):
    """The backend cannot go on (watch limit, no more instances, kernel refused): the
    caller switches to polling, which needs nothing from the kernel."""


class Backend(Protocol):
    """Watches folders and reports the paths touched in them since the last call."""

    name: str

    def watch(self, folders: Iterable[str], recursive: bool = False) -> None:
        """Report changes of the files in ``folders`` from now on; ``recursive``: in
        every folder below them too, including folders created later. A folder that
        does not exist is skipped. Raises :class:`BackendFailed`."""
        ...

    def watched(self) -> set[str]:
        """The folders watched now (empty for a backend that watches nothing)."""
        ...

    def changed(self) -> set[str] | Rescan:
        """Paths touched since the last call, never blocking; :data:`RESCAN` when the
        backend cannot tell. Raises :class:`BackendFailed`."""
        ...

    def pending(self, timeout: float = 0.0) -> bool:
        """True when something happened that :meth:`changed` has not reported yet;
        waits up to ``timeout`` seconds for it."""
        ...

    def close(self) -> None: ...
