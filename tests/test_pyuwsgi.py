"""uWSGI from the pyuwsgi wheel (no compiler), in its own venv: ``.venv/pyuwsgi``, made by
``make test`` (``PYUWSGI_VENV`` names it). A graceful reload re-executes the master; before
uwsgi_reload prepared that re-exec, the first save killed the server ("No module named
'pyuwsgi'"). The app shows its pid, its interpreter's prefix and whether the reload's
trampoline leaked into the worker's environment."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from servers import GENERATION, READY, Server, free_port, make_app, uwsgi_ini, write

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(os.environ.get("PYUWSGI_VENV") or ROOT / ".venv" / "pyuwsgi").absolute()
if not (VENV / "bin" / "uwsgi").exists():
    if os.environ.get("PYUWSGI_VENV"):  # `make test` made it: its absence is a failure
        raise RuntimeError(f"PYUWSGI_VENV={VENV} has no bin/uwsgi")
    pytestmark = [pytestmark, pytest.mark.skip(reason=f"no pyuwsgi venv at {VENV}")]

APP = """\
import os
import sys

import greeting


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    leaked = "UWSGI_RELOAD_PYUWSGI_PYTHON" in os.environ or "reexec" in os.environ.get(
        "PYTHONPATH", ""
    )
    text = f"{greeting.TEXT} pid={os.getpid()} prefix={sys.prefix} leaked={leaked}"
    return [text.encode()]
"""


@pytest.fixture
def pyuwsgi_server(tmp_path: Path) -> Iterator:
    started: list[Server] = []

    def start(body: str) -> Server:
        port = free_port()
        ini = tmp_path / f"uwsgi-{port}.ini"
        ini.write_text(uwsgi_ini(port, body))
        server = Server([str(VENV / "bin" / "uwsgi"), "--ini", str(ini)], tmp_path, port)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def serve(folder: Path, start, body: str = "") -> Server:
    make_app(folder)
    write(folder / "app.py", APP)
    server = start("wsgi-file = app.py\ndisable-logging = true\n" + body)
    server.wait_for_log(READY)
    server.wait_for_body("v1")
    return server


def three_saves(folder: Path, server: Server, reload_line: str, done_line: str = "") -> list[float]:
    """Save greeting.py three times, each once the reload before it has finished (a save
    made while the new workers load is in their code and needs no reload); the seconds
    from each save to the new text."""
    took = []
    for count, version in enumerate(("v2", "v3", "v4"), start=1):
        saved = time.monotonic()
        write(folder / "greeting.py", f"TEXT = {version!r}\n")
        server.wait_for_body(f"{version} ", timeout=20)
        took.append(round(time.monotonic() - saved, 2))
        server.wait_for_log(reload_line, count=count)
        server.wait_for_log(GENERATION, count=count + 1)  # the new code's first check
        if done_line:
            server.wait_for_log(done_line, count=count)
    assert server.proc.poll() is None, server.explain("uWSGI exited")
    status, body = server.get()
    assert status == 200 and f"prefix={VENV}" in body, server.explain("not the venv's Python")
    assert "leaked=False" in body, server.explain("the trampoline is in the worker's env")
    assert "No module named" not in server.log(), server.explain("a re-exec failed")
    return took


def test_graceful_reloads_keep_the_server_alive(tmp_path, pyuwsgi_server, capsys):
    server = serve(tmp_path, pyuwsgi_server)
    took = three_saves(tmp_path, server, r"modified \S*greeting\.py -> graceful reload")
    assert server.count(r"binary reloading uWSGI") == 3, server.explain("3 re-execs expected")
    with capsys.disabled():
        print(f"\n[pyuwsgi] graceful: save -> new code {took} s")


def test_chain_reloads_keep_the_server_alive(tmp_path, pyuwsgi_server, capsys):
    fifo = tmp_path / "master.fifo"
    body = (
        f"lazy-apps = true\nmaster-fifo = {fifo}\nforkbomb-delay = 0\nuwsgi-reload-mode = chain\n"
    )
    server = serve(tmp_path, pyuwsgi_server, body)
    took = three_saves(
        tmp_path, server, r"modified \S*greeting\.py -> chain reload", "chain reloading complete"
    )
    with capsys.disabled():
        print(f"\n[pyuwsgi] chain: save -> new code {took} s")


def test_warm_reloads_keep_the_server_alive(tmp_path, pyuwsgi_server, capsys):
    """Warm mode's master imports us, so its graceful reload (when it learns the
    libraries) is prepared like a plain one."""
    fifo = tmp_path / "master.fifo"
    body = (
        f"lazy-apps = true\nmaster-fifo = {fifo}\nforkbomb-delay = 0\n"
        "shared-import = uwsgi_reload\nuwsgi-reload-mode = warm\n"
    )
    server = serve(tmp_path, pyuwsgi_server, body)
    server.wait_for_log(r"warm: \d+ library modules can stay in the master", timeout=30)
    took = three_saves(tmp_path, server, r"modified \S*greeting\.py -> (?:graceful|warm) reload")
    assert server.count(r"binary reloading uWSGI") == 1, server.explain("the learning re-exec")
    assert server.count(r"-> warm reload") == 2, server.explain("2 warm reloads expected")
    with capsys.disabled():
        print(f"\n[pyuwsgi] warm: save -> new code {took} s")


def test_graceful_with_lazy_apps_is_refused_at_start(tmp_path, pyuwsgi_server):
    """The error is logged at start and reloading stays off. (uWSGI does not exit yet: a
    configuration error found in a lazy-apps worker never stops uWSGI, compiled or not;
    reported to the lead, see the branch report.)"""
    make_app(tmp_path)
    server = pyuwsgi_server("wsgi-file = app.py\nlazy-apps = true\n")
    server.wait_for_log(r"ERROR: uwsgi-reload-mode = graceful with lazy-apps does not work")
    server.wait_for_log(r"binary-path = \S*python")
    assert server.count(READY) == 0, server.explain("reloading was switched on")


def test_binary_path_in_the_ini_lifts_the_refusal(tmp_path, pyuwsgi_server):
    """The documented alternative: with the venv's interpreter as ``binary-path`` uWSGI
    re-executes it directly; graceful then works with lazy-apps too."""
    python = VENV / "bin" / "python"
    server = serve(tmp_path, pyuwsgi_server, f"lazy-apps = true\nbinary-path = {python}\n")
    three_saves(tmp_path, server, r"modified \S*greeting\.py -> graceful reload")
