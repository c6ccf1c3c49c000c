"""Stop the whole uWSGI instance after a configuration error, from whichever process
found it.

Before the fork (the master imports us: no `lazy-apps`) the master simply exits with
status 1: nothing serves yet. Under `lazy-apps` (chain mode included) each worker
imports us after the fork, and stopping the stack from a worker needs care (uWSGI
2.0.31, read in core/uwsgi.c, core/master.c, core/master_checks.c):

- SIGINT to the master runs ``kill_them_all``: the master respawns nobody from then on
  and sends SIGINT to every worker. But a worker still loading its app has Python's
  own SIGINT handler, so that SIGINT becomes a ``KeyboardInterrupt`` inside the load,
  which uWSGI logs and then serves on: the master waits for it until
  ``worker-reload-mercy`` (60 s) runs out. That was the 30-60 s of serving with
  reloading off. So after telling the master, the worker that found the error kills
  its sibling workers itself (SIGKILL: they are loading, there is nothing to finish)
  and exits; the master sees every worker gone and ends at once.
- The master's exit status after a signalled stop is fixed by uWSGI:
  ``exit(uwsgi.status.dying_for_need_app ? 22 : 0)`` ("goodbye to uWSGI."). No signal
  and no Python call from a worker gives status 1, so under `lazy-apps` uWSGI stops
  within a second or two with status 0, after the ``uwsgi_reload: ERROR`` lines.
  (SIGKILL of the master would give a non-zero status but leaves an ``http =``
  router, attached daemons, pidfiles and unix sockets behind.)
"""

from __future__ import annotations

import os
from typing import NoReturn

import uwsgi


def stop_instance() -> NoReturn:
    """Stop every process of this uWSGI instance and exit this one."""
    import signal  # only then: a master imports this module at every start

    master = uwsgi.masterpid()
    if uwsgi.worker_id() == 0 or not master:
        os._exit(1)  # the master, before it forks: nothing is serving yet
    # The master answers with SIGINT to every worker, this one included: blocked here,
    # or it would interrupt this function as a KeyboardInterrupt.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    # First the master, so that it respawns none of the workers killed below.
    os.kill(master, signal.SIGINT)
    me = os.getpid()
    for worker in uwsgi.workers():
        pid = worker.get("pid") or 0
        if pid > 0 and pid != me:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    os._exit(1)
