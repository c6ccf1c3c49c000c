"""Framework extensions: more files to track, and changes a framework applies itself
without a restart (Django's template and translation caches).

An extension is found lazily, at the first check, because ``import = uwsgi_reload``
runs before the app (and its framework) is loaded.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Protocol


class Framework(Protocol):
    name: str

    def files(self) -> Iterable[str]:
        """Extra files to track (absolute paths), asked at every check."""
        ...

    def watched(self) -> tuple[list[str], list[tuple[str, str]]]:
        """The same as :meth:`files` as data: files, and (folder, glob) pairs."""
        ...

    def folders(self) -> list[str]:
        """The folders of :meth:`watched`, for backends that watch trees."""
        ...

    def handle(self, paths: list[str]) -> set[str]:
        """Apply the changes to ``paths`` in this process where the framework can do so
        without a restart; return the paths so handled. Called in every worker."""
        ...


def discover() -> list[Framework]:
    """The extensions for what this process has loaded. Imports nothing new: a
    framework that the app did not import is not there."""
    found: list[Framework] = []
    if "django" in sys.modules:
        from uwsgi_reload.frameworks import django as django_support

        extension = django_support.extension()
        if extension is not None:
            found.append(extension)
    return found


Extension = Framework  # the name frameworks had before
