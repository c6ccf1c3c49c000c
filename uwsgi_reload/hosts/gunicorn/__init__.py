"""Reload gunicorn on save, with the same tracking, settle and syntax pre-check as uWSGI.

Use it as gunicorn's config::

    gunicorn -c python:uwsgi_reload.gunicorn -w 2 app:app

or, with a config file of your own, import the hooks into it::

    from uwsgi_reload.gunicorn import on_starting, when_ready

If your file defines these hooks already, call ours from yours
(``uwsgi_reload.gunicorn.when_ready(server)``). ``when_ready`` is the one that
matters; ``on_starting`` only makes a configuration error stop gunicorn before it
binds its sockets. No worker hook is needed (see below).

Settings: see ``settings.py``; how it works: see ``reloader.py``.

``preload_app``: the arbiter then holds the app's code and forks every new worker
from it, so no HUP can bring new code. uwsgi_reload refuses to start with it, with a
message saying so; turn preload off while developing.
"""

from __future__ import annotations

from typing import Any

from uwsgi_reload.hosts.gunicorn.reloader import GunicornReloader
from uwsgi_reload.hosts.gunicorn.settings import load

# gunicorn applies every name of a config module that matches one of its settings:
# this module's globals must not (a name such as `config` or `reload` would).
__all__ = ["on_starting", "when_ready"]

_reloader: GunicornReloader | None = None


def on_starting(server: Any) -> None:
    """gunicorn hook (arbiter, before it binds): validate the settings."""
    load(server)


def when_ready(server: Any) -> None:
    """gunicorn hook (arbiter, before the first fork): start tracking and the watcher."""
    global _reloader
    config = load(server)
    if _reloader is None:
        _reloader = GunicornReloader(server, config)
        _reloader.start()
