"""Ctrl-C (SIGINT) in the windows where uWSGI 2.0 loses it.

uWSGI 2.0.31 sets its own SIGINT handlers late (read in core/master.c, core/uwsgi.c,
and measured with bare uWSGI): the master's (stop every worker) when its loop starts,
after the app has loaded; a worker's (exit) after the post-fork hooks and, under
lazy-apps, after the app's load. Until then Python's handler has SIGINT:

- the master loading the app gets a KeyboardInterrupt there: the load fails, and the
  server goes on serving errors instead of stopping;
- a worker in its post-fork hooks gets the KeyboardInterrupt there and serves on, and
  the stopping master waits for it until ``worker-reload-mercy`` (60 s) runs out.

Without a reloader that is a narrow window at the start. With one, the master loads the
app again at every save (1.6 s on a Wagtail site). So from our start until uWSGI's own
handler replaces ours, a worker exits as uWSGI's handler would make it, and the master
lets the load fail as Python would, then its first worker's check passes the SIGINT on
to the master, whose own handler is in place by then.
"""

from __future__ import annotations

# The C module behind `signal`, loaded at every interpreter start: `import signal` builds
# its enums, 1.3 ms that every graceful reload would wait for in the master.
import _signal as signal
import os
from collections.abc import Callable

import uwsgi

from uwsgi_reload.hosts.uwsgi import fastexit

END_CODE = 30  # uWSGI's UWSGI_END_CODE: what a worker stopped by SIGINT exits with

received_by_the_master = False  # during the app's load; workers inherit it at the fork


def install() -> None:
    """Take SIGINT until uWSGI sets its own handler (main thread only)."""
    signal.signal(signal.SIGINT, _on_sigint)


def _on_sigint(signum: int, frame: object) -> None:
    if uwsgi.worker_id() > 0 or getattr(uwsgi, "mule_id", lambda: 0)() > 0:
        fastexit.leave(END_CODE)
    global received_by_the_master
    received_by_the_master = True
    signal.default_int_handler(signum, frame)  # KeyboardInterrupt, as Python's own


def pass_on(log: Callable[[str], None]) -> None:
    """In a worker: if the master got SIGINT while it loaded the app, send it again."""
    global received_by_the_master
    if not received_by_the_master:
        return
    received_by_the_master = False
    log("SIGINT came while the master loaded the app, where uWSGI 2.0 loses it: stopping")
    os.kill(uwsgi.masterpid(), signal.SIGINT)
