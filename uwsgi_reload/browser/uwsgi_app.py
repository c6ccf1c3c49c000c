"""Putting the middleware around the app uWSGI loads.

uWSGI loads the app after ``import = uwsgi_reload`` (in the master before the fork, or
in each worker with ``lazy-apps``) and keeps the callable in a C struct: nothing in its
Python API replaces it afterwards. ``wsgi-file`` runs the file's code into a module
dict and takes ``application`` (or ``callable``) from it; ``module`` imports the module
and does the same (see uWSGI's plugins/python/pyloader.c). So we wrap the callable
where uWSGI will look for it, at the moment the entry file's module code has run: a
trace function, set only in this process until that moment, sees the entry module's
frame return and replaces the callable in its globals. The trace function costs one
Python call per function call during the app's import, and is removed as soon as the
entry module has run (or at the first check, when the app failed to load).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from types import FrameType
from typing import Any

from uwsgi_reload.browser.middleware import wrap


def callable_name(options: Mapping[str, Any], option_text: Callable[[Any], str]) -> str:
    """The name uWSGI takes the app from: ``module = pkg.wsgi:app``, else ``callable``,
    else ``application``."""
    for name in ("module", "wsgi"):
        value = option_text(options.get(name))
        if ":" in value:
            return value.split(":", 1)[1]
    return option_text(options.get("callable")) or "application"


class EntryHook:
    def __init__(self, entry_files: set[str], name: str, state_file: str, log: Callable) -> None:
        self.targets = {os.path.realpath(p) for p in entry_files}
        self.name = name
        self.state_file = state_file
        self.log = log
        self.previous: Any = None
        self.done = False

    def install(self) -> None:
        if self.name.endswith("()"):
            self.log(
                f"browser: the app comes from a factory ({self.name}): pages are not refreshed"
            )
            return
        self.previous = sys.gettrace()
        sys.settrace(self._global)

    def remove(self) -> None:
        if not self.done:
            self.done = True
            if sys.gettrace() == self._global:
                sys.settrace(self.previous)

    def _global(self, frame: FrameType, event: str, arg: Any) -> Any:
        local = self.previous(frame, event, arg) if self.previous is not None else None
        code = frame.f_code
        if code.co_name == "<module>" and os.path.realpath(code.co_filename) in self.targets:
            frame.f_trace_lines = False
            return self._entry_module(local)
        return local

    def _entry_module(self, chained: Any) -> Callable:
        def trace(frame: FrameType, event: str, arg: Any) -> Any:
            if event == "return":
                self._wrap_in(frame.f_globals)
                self.remove()
            return chained(frame, event, arg) if chained is not None else trace

        return trace

    def _wrap_in(self, namespace: dict) -> None:
        app = namespace.get(self.name)
        if app is None or not callable(app):
            return  # the load fails; uWSGI says why
        namespace[self.name] = wrap(app, self.state_file)
