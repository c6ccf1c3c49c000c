"""The poll backend: watches nothing, so every check scans. Works on every filesystem."""

from __future__ import annotations

from collections.abc import Iterable

from uwsgi_reload.backends.base import RESCAN, Rescan


class PollBackend:
    name = "poll"

    def watch(self, folders: Iterable[str], recursive: bool = False) -> None:
        pass

    def watched(self) -> set[str]:
        return set()

    def changed(self) -> set[str] | Rescan:
        return RESCAN

    def pending(self, timeout: float = 0.0) -> bool:
        return False

    def close(self) -> None:
        pass
