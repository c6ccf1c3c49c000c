"""Django: the files Django's own reloader watches besides modules, and the changes
Django applies without a restart (template loader reset, translation cache clear).

Built on ``django.utils.autoreload`` as Django 4.2 to 5.2 have it: apps register
folders on ``autoreload_started`` (``watch_dir``), and ``file_changed`` receivers
return True when they handled a change in this process. ``code_changed()``, which
older recipes call, was removed in Django 2.2.

Imported only when the app imported Django (see :func:`uwsgi_reload.frameworks.discover`);
it never configures settings nor sets Django up.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from uwsgi_reload.frameworks import files_matching

if TYPE_CHECKING:
    from django.utils.autoreload import StatReloader


def extension() -> DjangoExtension | None:
    """The Django extension, or None when this process has no Django project loaded
    (settings not configured or apps not ready, for example after a failed load)."""
    conf = sys.modules.get("django.conf")
    registry = sys.modules.get("django.apps")
    if conf is None or registry is None:
        return None
    if not conf.settings.configured or not registry.apps.ready:
        return None
    return DjangoExtension()


class DjangoExtension:
    name = "django"

    def __init__(self) -> None:
        from django.conf import settings
        from django.utils import autoreload

        if settings.USE_I18N:
            # Django connects its translation receivers (.mo folders to watch, cache
            # clear on change) at the first use of a translation function; the app may
            # not have used one yet in this process.
            from django.utils import translation

            translation.get_language()
        self._file_changed = autoreload.file_changed
        # Never run: it only collects what apps ask to watch. StatReloader, not
        # get_reloader(), which would ask a Watchman server for nothing.
        self.reloader: StatReloader = autoreload.StatReloader()
        # Apps register their folders here: template dirs ("**/*"), locale dirs
        # ("**/*.mo"), and whatever third-party apps hook in.
        autoreload.autoreload_started.send(sender=self.reloader)

    def watched(self) -> tuple[list[str], list[tuple[str, str]]]:
        """What apps asked Django's reloader to watch besides modules: extra files, and
        (folder, glob) pairs. Plain data, for a host whose checks run in another process
        (gunicorn's arbiter)."""
        globs = [
            (str(directory), pattern)
            for directory, patterns in self.reloader.directory_globs.items()
            for pattern in sorted(patterns)
        ]
        return [str(path) for path in self.reloader.extra_files], globs

    def files(self) -> list[str]:
        """What ``reloader.watched_files()`` yields after the module files, which the host
        tracks already (and which cost a sort of ``sys.modules`` per call)."""
        return files_matching(*self.watched())

    def folders(self) -> list[str]:
        """The folders apps asked to watch (for the event backend, which watches them
        recursively)."""
        return [str(directory) for directory in self.reloader.directory_globs]

    def handle(self, paths: list[str]) -> set[str]:
        """Send ``file_changed`` for each path, as Django's reloader does; the paths
        some receiver handled (returned True) need no restart. A receiver's error
        propagates to the caller."""
        handled: set[str] = set()
        for path in paths:
            results = self._file_changed.send(sender=self.reloader, file_path=Path(path))
            if any(result for _, result in results):
                handled.add(path)
        return handled
