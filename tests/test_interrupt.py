"""Ctrl-C right after a save stops the server. uWSGI 2.0 loses a SIGINT that comes
while the master loads the app (the load fails and the server serves errors on) or
while a worker runs its post-fork hooks (the master waits 60 s for it); a reloader
brings those windows at every save. See uwsgi_reload/hosts/uwsgi/interrupt.py."""

from __future__ import annotations

import os
import signal

import pytest
from servers import READY, write

pytestmark = pytest.mark.integration

# Slow where a real app is slow, once a marker file says so: the import (a Django
# project's setup) and a post-fork hook (a connection pool opened in each worker).
APP = """\
import os, time
import uwsgidecorators
import greeting

print("loading the app", flush=True)
if os.path.exists("slow-load"):
    time.sleep(3)

@uwsgidecorators.postfork
def open_pool():
    if os.path.exists("slow-post-fork"):
        print("slow post-fork hook", flush=True)
        time.sleep(3)

def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [greeting.TEXT.encode()]
"""


@pytest.mark.parametrize(
    "window, started",
    [("slow-load", r"loading the app"), ("slow-post-fork", r"slow post-fork hook")],
    ids=["master-loading-the-app", "worker-in-post-fork-hooks"],
)
def test_ctrl_c_right_after_a_save_stops_the_server(tmp_path, uwsgi_server, window, started):
    write(tmp_path / "app.py", APP)
    write(tmp_path / "greeting.py", "TEXT = 'v1'\n")
    server = uwsgi_server("wsgi-file = app.py\n")
    server.wait_for_log(READY)
    server.wait_for_body("v1")
    before = server.count(started)
    write(tmp_path / window, "")
    write(tmp_path / "greeting.py", "TEXT = 'v2'\n")
    server.wait_for_log(started, count=before + 1)  # in the window now, for 3 s
    os.killpg(server.proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C sends
    status = server.wait_exit(timeout=10)
    assert status == 0, server.explain(f"uWSGI exited with {status}")
    if window == "slow-load":
        assert server.count(r"uwsgi_reload: SIGINT came while the master loaded the app"), (
            server.explain("the master's SIGINT must be passed on, and said")
        )
