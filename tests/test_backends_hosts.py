"""Every host on every backend, on real servers: gunicorn and the watcher on inotify,
the loop guard under gunicorn, and a watch limit too small for the tree (uWSGI starts,
says it polls and why, and still reloads)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from servers import (
    BIN,
    GENERATION,
    LOOP_APP,
    READY,
    UWSGI,
    Server,
    free_port,
    make_app,
    uwsgi_ini,
    write,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def processes():
    started: list[Server] = []

    def start(argv: list[str], cwd: Path, env: dict | None = None) -> Server:
        server = Server(argv, cwd, free_port(), env)
        started.append(server)
        return server

    yield start
    for server in reversed(started):
        server.stop()


def test_gunicorn_backend_inotify_is_really_inotify(tmp_path, processes):
    pytest.importorskip("gunicorn")
    from test_gunicorn import start_gunicorn

    make_app(tmp_path)
    server = start_gunicorn(
        tmp_path, env={"UWSGI_RELOAD_BACKEND": "inotify"}, app="app:application"
    )
    try:
        line = server.wait_for_log(r"uwsgi_reload: reloading on: .*").group(0)
        assert "backend inotify" in line, line
        server.wait_for_body("v1")
        write(tmp_path / "greeting.py", "TEXT = 'v2'\n")
        server.wait_for_body("v2", timeout=10)
        server.wait_for_log(r"modified \S*greeting\.py -> graceful reload \(HUP\)")
    finally:
        server.stop()


def test_gunicorn_loop_guard_stops_an_app_that_writes_its_tracked_files(tmp_path):
    pytest.importorskip("gunicorn")
    from test_gunicorn import start_gunicorn

    write(tmp_path / "app.py", LOOP_APP)
    (tmp_path / "data").mkdir()
    server = start_gunicorn(tmp_path, env={"UWSGI_RELOAD_INCLUDE": "data"}, app="app:application")
    try:
        server.wait_for_log(r"uwsgi_reload: loop guard: .*data/state", 60)
        reloads = server.count(r"-> graceful reload \(HUP\)")
        server.holds(
            lambda: server.count(r"-> graceful reload \(HUP\)") == reloads, 4, "the loop stopped"
        )
        write(tmp_path / "app.py", (tmp_path / "app.py").read_text().replace("app-v1", "app-v2"))
        server.wait_for_body("app-v2", timeout=15)
    finally:
        server.stop()


def test_watch_uses_inotify_by_default_on_a_local_disk(tmp_path, processes):
    write(tmp_path / "a.py", "A = 1\n")
    watcher = processes(
        [str(BIN / "uwsgi-reload"), "watch", "--exec", "true", "--period", "0.2"], tmp_path
    )
    line = watcher.wait_for_log(r"uwsgi_reload: watching \d+ files.*").group(0)
    assert "backend inotify" in line, line
    write(tmp_path / "a.py", "A = 2\n")
    watcher.wait_for_log(r"modified \S*a\.py -> run `true`")


def test_watch_limit_too_small_polls_says_why_and_still_reloads(tmp_path):
    if not shutil.which("unshare"):
        pytest.skip("no unshare")
    probe = subprocess.run(
        ["unshare", "-Ur", "sh", "-c", "echo 4 > /proc/sys/user/max_inotify_watches"],
        capture_output=True,
        text=True,
    )
    if probe.returncode != 0:
        pytest.skip(f"user namespaces or their inotify limit not usable: {probe.stderr[-200:]}")
    make_app(tmp_path)
    for n in range(8):  # more folders than the limit allows
        (tmp_path / "templates" / f"part{n}").mkdir(parents=True)
    port = free_port()
    ini = tmp_path / "uwsgi.ini"
    body = "wsgi-file = app.py\nuwsgi-reload-include = templates\nuwsgi-reload-backend = inotify\n"
    ini.write_text(uwsgi_ini(port, body))
    script = f"echo 4 > /proc/sys/user/max_inotify_watches && exec {UWSGI} --ini {ini}"
    server = Server(["unshare", "-Ur", "sh", "-c", script], tmp_path, port)
    try:
        server.wait_for_log(r"uwsgi_reload: inotify failed: .*watch limit.*polling from now on")
        line = server.wait_for_log(READY + r".*").group(0)
        assert "backend poll" in line, line
        server.wait_for_body("v1")
        write(tmp_path / "greeting.py", "TEXT = 'v2'\n")
        server.wait_for_body("v2", timeout=10)
        server.wait_for_log(GENERATION, count=2)
    finally:
        server.stop()
