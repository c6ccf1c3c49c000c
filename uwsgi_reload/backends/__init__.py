"""How changes are noticed: one module per backend, each implementing the contract in
``base.py``; :data:`BACKENDS` names them for ``uwsgi-reload-backend``. A new backend is
a module with a class implementing :class:`~uwsgi_reload.backends.base.Backend`, and
an entry here."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from uwsgi_reload.backends import filesystems, inotify
from uwsgi_reload.backends.base import Backend, BackendFailed
from uwsgi_reload.backends.poll import PollBackend

Excludes = Callable[[str], bool]  # folders never to watch below a recursive root

BACKENDS: dict[str, Callable[[Excludes], Backend]] = {
    "poll": lambda excludes: PollBackend(),
    "inotify": inotify.InotifyBackend,
}


def open_backend(name: str, roots: Iterable[str], excludes: Excludes) -> tuple[Backend, str]:
    """The backend ``name`` names (``auto``: inotify where it can be trusted), and why
    another one was chosen ("" when it was not). A backend that fails to open falls
    back to polling, which needs nothing from the kernel."""
    if name == "auto":
        if not inotify.available():
            return PollBackend(), "inotify is not available here"
        for root in roots:
            why = filesystems.unreliable_filesystem(root)
            if why:
                return PollBackend(), f"{why}, which may deliver no events"
        name = "inotify"
    try:
        return BACKENDS[name](excludes), ""
    except BackendFailed as error:
        return PollBackend(), f"{name} failed to start ({error.strerror or error})"
