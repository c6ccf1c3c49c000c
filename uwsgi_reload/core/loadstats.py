"""The stat of every source file at the moment Python loads it.

A reloader that takes its baseline at its first check misses a save made between the
app's import and that check. Recording the stat when the import system reads a source
file closes that window: the baseline is exactly what was loaded.

The import system asks ``SourceFileLoader.path_stats(path)`` once per source module it
loads (to validate the cached bytecode); wrapping that method is the one place that
sees every ``.py`` load, in whichever process (uWSGI master or worker) imports it.
"""

from __future__ import annotations

import os
import sysconfig
from collections.abc import Callable
from importlib.machinery import SourceFileLoader

from uwsgi_reload.core.snapshot import Stat, file_stat

Listener = Callable[[str, Stat], None]

_recorded: dict[str, Stat] = {}
listener_errors: list[str] = []  # the host logs and clears these
_listener: Listener | None = None


def _path_stats(self: SourceFileLoader, path: str) -> dict:
    st = os.stat(path)
    stat = file_stat(st)
    key = os.path.normpath(path)
    _recorded[key] = stat
    if _listener is not None:
        try:
            _listener(key, stat)
        except Exception as error:  # never break an import because of us; reported later
            if len(listener_errors) < 10:
                listener_errors.append(f"{key}: {type(error).__name__}: {error}")
    return {"mtime": st.st_mtime, "size": st.st_size}


def install(listener: Listener | None = None) -> None:
    """Start recording (idempotent). ``listener`` is told of each load as it happens."""
    global _listener
    # A listener asks sysconfig for the system folders (sources.system_dirs). sysconfig
    # loads _sysconfigdata at its first use; a listener told of that load would ask
    # sysconfig again while it is half set up (Python 3.13: AttributeError 'abi_thread').
    sysconfig.get_config_vars()
    _listener = listener
    SourceFileLoader.path_stats = _path_stats  # type: ignore[method-assign]


def recorded() -> dict[str, Stat]:
    """Path -> stat at load time, for every source file loaded since :func:`install`."""
    return _recorded
