"""The browser follows (``uwsgi-reload-browser = true``): open pages refresh once new
code serves, and a held save shows in them.

- ``middleware.py``: answers ``/__uwsgi_reload__/state`` and ``client.js`` at once,
  before the app, and adds the script tag to the app's HTML pages;
- ``client.py``: the script, which polls the state every 0.5 s;
- ``state.py``: the small JSON file a host publishes to (generation, held saves);
- ``uwsgi_app.py``: how the middleware gets around the callable uWSGI loads.

The hosts call only what this module defines.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from uwsgi_reload.browser.middleware import wrap
from uwsgi_reload.browser.state import Publisher, state_path

__all__ = ["GunicornBrowser", "UwsgiBrowser", "wrap"]


class UwsgiBrowser:
    """The uWSGI host's side: wraps the app it is about to load, and publishes."""

    def __init__(
        self,
        folder: str,
        options: Mapping[str, Any],
        entry_files: set[str],
        option_text: Callable[[Any], str],
        log: Callable[[str], None],
    ) -> None:
        from uwsgi_reload.browser.uwsgi_app import EntryHook, callable_name

        self.publisher = Publisher(folder)
        self.hook = EntryHook(
            entry_files, callable_name(options, option_text), self.publisher.path, log
        )
        self.hook.install()

    def serving(self, generation_key: str) -> None:
        """A check of server generation ``generation_key`` runs with every worker on the
        new code (after a chain reload: once the chain has finished)."""
        self.hook.remove()  # the app has loaded (or failed to) by the first check
        self.publisher.serving(generation_key)

    def decided(self, applied: bool, syntax_gate: Any) -> None:
        if applied:
            self.publisher.applied()
        self.publisher.held(syntax_gate.broken, syntax_gate.config_checks)


class GunicornBrowser:
    """The gunicorn host's side: the arbiter publishes held saves; each worker serves
    the generation it was forked in (the arbiter counts its reloads), so a page polling
    a new worker knows that new code serves."""

    def __init__(self, folder: str) -> None:
        self.publisher = Publisher(folder)
        self.reloads = 0
        self.arbiter_pid = os.getpid()

    def wrap(self, app: Callable) -> Callable:
        generation = f"gunicorn-{self.arbiter_pid}-{self.reloads}"
        return wrap(app, state_path(os.path.dirname(self.publisher.path)), lambda: generation)

    def reloading(self) -> None:
        """Called before the HUP: workers forked from now on serve the next generation."""
        self.reloads += 1
        self.publisher.serving(f"gunicorn-{self.arbiter_pid}-{self.reloads}")

    def decided(self, syntax_gate: Any) -> None:
        self.publisher.held(syntax_gate.broken, syntax_gate.config_checks)
