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

from uwsgi_reload.core import sources


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
    as Django's own loop does: a new file in a watched folder must show up. Folders of
    installed packages are skipped: their files are never tracked, and the template and
    locale trees of a large app's dependencies (Wagtail's) took 150 ms per walk."""
    found = list(files)
    for directory, pattern in project_globs(globs):
        found.extend(str(path) for path in Path(directory).glob(pattern))
    return found


def project_globs(globs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The (folder, glob) pairs outside the standard library and site-packages."""
    return [(folder, glob) for folder, glob in globs if not sources.in_system_dir(folder)]


def project_folders(folders: Iterable[str]) -> list[str]:
    """The folders outside the standard library and site-packages (worth a watch)."""
    return [folder for folder in folders if not sources.in_system_dir(folder)]
