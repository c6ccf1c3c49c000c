"""uwsgi-reload-fast-exit on real uWSGI: workers replaced by our reload run the
handlers of Python's atexit module, and do not wait for Python's teardown."""

from __future__ import annotations

import time

import pytest
from servers import both_workers, write

pytestmark = pytest.mark.integration

# SlowTeardown stands for a large app (Wagtail: 0.5 s of teardown): its __del__ runs in
# Python's teardown only, and takes 2 s there.
APP = """\
import atexit, os, time
import greeting

def note_exit():
    with open("exits.log", "a") as f:
        f.write(f"atexit {os.getpid()}\\n")

atexit.register(note_exit)

class SlowTeardown:
    # the teardown empties modules first: keep what __del__ needs
    def __del__(self, sleep=time.sleep, pid=os.getpid, open=open):
        sleep(2)
        with open("exits.log", "a") as f:
            f.write(f"teardown {pid()}\\n")

KEEP = SlowTeardown()

def application(environ, start_response):
    if environ.get("QUERY_STRING", "").startswith("sleep="):
        time.sleep(float(environ["QUERY_STRING"][6:]))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"{greeting.TEXT} pid={os.getpid()}".encode()]
"""


@pytest.mark.parametrize("fast_exit", [True, False], ids=["fast-exit", "teardown"])
def test_workers_replaced_by_a_reload_skip_the_teardown_but_run_atexit(
    tmp_path, uwsgi_server, fast_exit
):
    # The server's log stays out of the project: uWSGI's file monitor on the project's
    # folder fires at each line, and the line that announces the reload wakes a check in
    # the other worker just as the master stops it; a worker inside a signal handler
    # then runs no exit hook (uWSGI counts it busy), and neither old worker would.
    site = tmp_path / "site"
    write(site / "app.py", APP)
    write(site / "greeting.py", "TEXT = 'v1'\n")
    server = uwsgi_server(
        f"chdir = {site}\nwsgi-file = app.py\nuwsgi-reload-fast-exit = {str(fast_exit).lower()}\n"
    )
    server.wait_every_worker("v1")
    old = set(both_workers(server).values())  # both: the one asking runs no exit hook
    saved = time.monotonic()
    write(site / "greeting.py", "TEXT = 'v2'\n")
    server.wait_for_body("v2", timeout=20)
    took = time.monotonic() - saved
    exits = (site / "exits.log").read_text()
    atexit_pids = {line.split()[1] for line in exits.splitlines() if line.startswith("atexit")}
    old_pids = {body.split("pid=")[1] for body in old}
    # The worker whose check asked for the reload leaves from inside a uWSGI signal
    # handler and runs no exit hook, with or without us (uwsgi_worker_is_busy: its
    # signal flag is set, and uWSGI's Python plugin skips atexit for a busy worker).
    assert atexit_pids & old_pids, server.explain(f"no atexit handler ran: {exits}")
    if fast_exit:
        assert "teardown" not in exits, server.explain(exits)
        assert took < 1.8, server.explain(f"save -> new code took {took:.2f} s")
    else:  # what the option saves: the old workers' teardown holds the reload back
        assert "teardown" in exits and took > 2, server.explain(f"{took:.2f} s; {exits}")
