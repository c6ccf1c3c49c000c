"""Leaving fast (``uwsgi-reload-fast-exit``, on by default): a worker replaced by a reload we
asked for runs the handlers of Python's ``atexit`` module, then exits without Python's
teardown (``Py_Finalize``). With a Wagtail site loaded the teardown takes about 0.5 s,
during which the old worker holds its slot and a graceful reload waits for it. uWSGI's
own ``skip-atexit-teardown`` skips the ``atexit`` handlers too (they run inside the
teardown); objects' ``__del__`` methods do not run either way.
"""

from __future__ import annotations

import atexit
import os
import sys
from collections.abc import Callable
from typing import NoReturn

import uwsgi

RELOAD_EXIT_CODE = 17  # uWSGI's UWSGI_RELOAD_CODE: what a worker leaving for a reload exits with


def install(leaving_for_reload: Callable[[], bool]) -> None:
    """Set ``uwsgi.atexit`` (calling any one set before), which uWSGI calls in a
    worker that exits between requests, before the teardown."""
    previous = getattr(uwsgi, "atexit", None)

    def at_exit() -> None:
        if previous is not None:
            previous()
        if uwsgi.worker_id() == 0:
            return
        try:
            if not leaving_for_reload():
                return
        except Exception:  # unsure: leave as uWSGI would
            return
        atexit._run_exitfuncs()
        leave(RELOAD_EXIT_CODE)

    uwsgi.atexit = at_exit


def leave(status: int) -> NoReturn:
    """Exit this process now with ``status``, without Python's teardown (what is
    buffered for stdout and stderr is written first)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    os._exit(status)
