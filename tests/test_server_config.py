"""The server's own configuration is tracked: an edit of the ini uWSGI was started
with (or of an ini it included) reloads gracefully and takes effect; a bad edit is held
like a SyntaxError, naming the file and line; gunicorn's config file likewise."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from servers import (
    BIN,
    GENERATION,
    READY,
    UWSGI,
    Server,
    free_port,
    get_idempotent,
    uwsgi_ini,
    write,
)

pytestmark = pytest.mark.integration

ENV_APP = """\
import os

def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [("greeting=" + os.environ.get("GREETING", "-")).encode()]
"""


@pytest.fixture
def servers():
    started: list[Server] = []
    yield started
    for server in started:
        server.stop()


def start_with_ini(servers: list, folder: Path, body: str) -> tuple[Server, Path]:
    port = free_port()
    ini = folder / "uwsgi.ini"
    ini.write_text(uwsgi_ini(port, "wsgi-file = app.py\n" + body))
    server = Server([UWSGI, "--ini", str(ini)], folder, port)
    servers.append(server)
    server.wait_for_log(READY)
    return server, ini


def test_ini_edit_reloads_under_load_with_no_failed_request(tmp_path, servers):
    write(tmp_path / "app.py", ENV_APP)
    server, ini = start_with_ini(servers, tmp_path, "env = GREETING=hello\n")
    server.wait_for_body("greeting=hello")
    stop = threading.Event()
    results: list[tuple[int, str, int]] = []

    def hammer() -> None:
        while not stop.is_set():
            results.append(get_idempotent(server.url + "/", timeout=10))

    threads = [threading.Thread(target=hammer) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        ini.write_text(ini.read_text().replace("GREETING=hello", "GREETING=bonjour"))
        took = server.wait_for_body("greeting=bonjour", timeout=15)
        server.wait_for_log(r"modified \S*uwsgi\.ini -> graceful reload")
        server.wait_until(lambda: len(results) > 50, 10, "requests after the reload")
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    failed = [r for r in results if r[0] != 200]
    retried = sum(r[2] for r in results)
    print(
        f"ini edit -> new env served in {took:.2f}s; {len(results)} served, "
        f"{len(failed)} failed, {retried} retried"
    )
    assert not failed, server.explain(f"{len(failed)} failed: {failed[:3]}")
    assert retried <= 2, server.explain(f"{retried} requests reset")


def test_bad_ini_edit_is_held_naming_file_and_line_and_the_fix_reloads(tmp_path, servers):
    write(tmp_path / "app.py", ENV_APP)
    server, ini = start_with_ini(servers, tmp_path, "env = GREETING=hello\n")
    server.wait_for_body("greeting=hello")
    good = ini.read_text()
    bad = good.replace("GREETING=hello", "GREETING=bonjour") + "uwsgi-reload-period = fast\n"
    ini.write_text(bad)
    line_no = bad.splitlines().index("uwsgi-reload-period = fast") + 1
    held = server.wait_for_log(
        r"uwsgi_reload: not reloading, the server would not start with it: (\S+):(\d+): "
        r"uwsgi-reload-period = 'fast' is not allowed"
    )
    assert held.group(1) == str(ini) and int(held.group(2)) == line_no, held.group(0)
    server.holds(lambda: "greeting=hello" in server.get()[1], 2.5, "the old config serves on")
    assert server.count(r"-> graceful reload") == 0
    ini.write_text(good.replace("GREETING=hello", "GREETING=fixed"))
    server.wait_for_body("greeting=fixed", timeout=15)
    server.wait_for_log(GENERATION, count=2)


def test_an_included_ini_is_tracked_too(tmp_path, servers):
    write(tmp_path / "app.py", ENV_APP)
    write(tmp_path / "conf" / "env.ini", "[uwsgi]\nenv = GREETING=included\n")
    server, _ = start_with_ini(servers, tmp_path, "ini = %d/conf/env.ini\n")
    server.wait_for_body("greeting=included")
    write(tmp_path / "conf" / "env.ini", "[uwsgi]\nenv = GREETING=included-v2\n")
    server.wait_for_body("greeting=included-v2", timeout=15)
    server.wait_for_log(r"modified \S*conf/env\.ini -> graceful reload")


def test_gunicorn_config_file_edit_reloads(tmp_path, servers):
    pytest.importorskip("gunicorn")
    from test_gunicorn import NO_CONTROL_SOCKET

    write(tmp_path / "app.py", ENV_APP)
    conf = tmp_path / "gunicorn.conf.py"
    conf.write_text(
        "from uwsgi_reload.gunicorn import on_starting, when_ready\nraw_env = ['GREETING=hello']\n"
    )
    port = free_port()
    argv = [str(BIN / "gunicorn"), "-c", str(conf), "-w", "2", "-b", f"127.0.0.1:{port}"]
    server = Server(
        [*argv, *NO_CONTROL_SOCKET, "app:application"],
        tmp_path,
        port,
        {"UWSGI_RELOAD_DELAY": "0.1"},
    )
    servers.append(server)
    server.wait_for_body("greeting=hello")
    conf.write_text(conf.read_text().replace("GREETING=hello", "GREETING=bonjour"))
    server.wait_for_body("greeting=bonjour", timeout=15)
    server.wait_for_log(r"modified \S*gunicorn\.conf\.py -> graceful reload \(HUP\)")
    conf.write_text(conf.read_text() + "raw_env = [\n")  # a SyntaxError: held
    server.wait_for_log(r"not reloading, this file does not compile: \S*gunicorn\.conf\.py")
    server.holds(lambda: "greeting=bonjour" in server.get()[1], 2, "gunicorn serves on")
