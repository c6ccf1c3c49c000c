"""Never silently stale: ways reloading could stop or lag without telling, on real uWSGI."""

from __future__ import annotations

import os
import time

import pytest
from servers import GENERATION, READY, write

pytestmark = pytest.mark.integration

APP = """\
def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"version-{n}"]
"""

# seconds between seeing a version served and the next save: a developer's rhythm
PAUSES = (0.5, 1.0, 2.0, 0.7, 1.5, 0.5, 1.2, 0.6, 1.8)


@pytest.mark.parametrize("lazy", [False, True], ids=["preforked", "lazy-apps"])
def test_ten_quick_saves_are_all_served_and_never_trip_the_loop_guard(tmp_path, uwsgi_server, lazy):
    write(tmp_path / "app.py", APP.format(n=0))
    server = uwsgi_server("wsgi-file = app.py\n" + ("lazy-apps = true\n" if lazy else ""))
    server.wait_for_log(READY)
    server.wait_for_body("version-0")
    for n in range(1, 11):
        write(tmp_path / "app.py", APP.format(n=n))
        took = server.wait_for_body(f"version-{n}", timeout=10)
        print(f"save {n} -> served in {took:.2f}s")
        assert "loop guard" not in server.log(), server.explain(f"guard tripped at save {n}")
        if n < 10:
            time.sleep(PAUSES[n - 1])  # the developer looks, then saves again
    assert server.count(r"-> graceful reload") == 10, server.explain("expected 10 reloads")
    server.wait_for_log(GENERATION, count=11)
    assert "loop guard" not in server.log()


def test_new_code_serving_line_after_each_reload(tmp_path, uwsgi_server):
    write(tmp_path / "app.py", APP.format(n=0))
    server = uwsgi_server("wsgi-file = app.py\n")
    server.wait_for_log(READY)
    saved = time.time()
    write(tmp_path / "app.py", APP.format(n=1))
    server.wait_for_body("version-1")
    line = server.wait_for_log(r"uwsgi_reload: new code serving, ([0-9.]+) s after the save")
    reported = float(line.group(1))
    assert 0 < reported < time.time() - saved + 0.5, server.explain(f"reported {reported}")
    assert server.count(READY) == 1, server.explain("the banner is logged once per server")
    write(tmp_path / "app.py", APP.format(n=2))
    server.wait_for_body("version-2")
    server.wait_for_log(r"new code serving, [0-9.]+ s after the save", count=2)
    server.holds(lambda: server.count(READY) == 1, 2, "one banner")


def test_failed_chain_fifo_write_keeps_reloading_on(tmp_path, uwsgi_server):
    write(tmp_path / "app.py", APP.format(n=0))
    fifo = tmp_path / "master.fifo"
    server = uwsgi_server(
        f"wsgi-file = app.py\nlazy-apps = true\nuwsgi-reload-mode = chain\nmaster-fifo = {fifo}\n"
    )
    server.wait_for_log(READY)
    server.wait_for_body("version-0")
    # the master re-creates its FIFO only when a writer closes it: gone now, it stays gone
    os.unlink(fifo)
    write(tmp_path / "app.py", APP.format(n=1))
    server.wait_for_log(r"cannot ask for the chain reload: writing 'c' to the master FIFO")
    os.mkfifo(fifo)  # not the master's: nobody reads it
    os.unlink(fifo)
    write(tmp_path / "app.py", APP.format(n=2))
    server.wait_for_log(r"cannot ask for the chain reload", count=2)
    assert "reloading is OFF" not in server.log()


def test_a_fifo_that_is_not_the_servers_is_a_config_error(tmp_path, uwsgi_server):
    write(tmp_path / "app.py", APP.format(n=0))
    server = uwsgi_server(
        f"wsgi-file = app.py\nmaster-fifo = {tmp_path / 'master.fifo'}\n"
        f"uwsgi-reload-fifo = {tmp_path / 'typo.fifo'}\n"
    )
    status = server.wait_exit(20)
    assert status == 1, server.explain(f"exit status {status}")
    assert "uwsgi-reload-fifo = " in server.log() and "is not a master FIFO" in server.log()
