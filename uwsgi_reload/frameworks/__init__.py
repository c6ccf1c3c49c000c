"""Framework extensions: more files to track, and changes a framework applies itself
without a restart (Django's template and translation caches, Flask's Jinja cache).

An extension is found lazily, at the first check, because ``import = uwsgi_reload``
runs before the app (and its framework) is loaded. Supporting another framework is one
module here with an ``extension()`` function (None when the app does not use it) and
one line in :data:`SUPPORT`.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterable
from pathlib import Path
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


# The top-level module an app imports -> the module that supports it. The support module
# is imported only when the app has imported the framework: we never import a framework.
SUPPORT = {
    "django": "uwsgi_reload.frameworks.django",
    "flask": "uwsgi_reload.frameworks.flask",
}


def discover() -> list[Framework]:
    """The extensions for what this process has loaded. Imports nothing new: a
    framework that the app did not import is not there."""
    found: list[Framework] = []
    for framework, support in SUPPORT.items():
        if framework in sys.modules:
            extension = importlib.import_module(support).extension()
            if extension is not None:
                found.append(extension)
    return found


def files_matching(files: list[str], globs: list[tuple[str, str]]) -> list[str]:
    """``files``, then the files matching each (folder, glob) now. Globbed at each call,
    as Django's own loop does: a new file in a watched folder must show up."""
    found = list(files)
    for directory, pattern in globs:
        found.extend(str(path) for path in Path(directory).glob(pattern))
    return found
