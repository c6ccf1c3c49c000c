"""A configuration error stops uWSGI at start with a message naming key, value and
what is allowed: reloading silently off is the failure users do not notice."""

from __future__ import annotations

import os
import time

import pytest
from servers import UWSGI, UWSGI_BOUND, Server, plain_uwsgi_ini, start_on_free_port, write

pytestmark = pytest.mark.integration

APP = "def application(e, s):\n    s('200 OK', [])\n    return [b'ok']\n"


def run_to_exit(tmp_path, ini_body: str, master: bool = True) -> tuple[int, str]:
    code, log, _ = timed_run_to_exit(tmp_path, ini_body, master)
    return code, log


def timed_run_to_exit(tmp_path, ini_body: str, master: bool = True) -> tuple[int, str, float]:
    """(exit status, log, seconds from start to exit); fails if any process of the
    instance (its own process group) outlives the master."""
    write(tmp_path / "app.py", APP)
    ini = tmp_path / "bad.ini"

    def start(port: int) -> Server:
        ini.write_text(
            "[uwsgi]\n"
            f"http-socket = 127.0.0.1:{port}\n"
            f"master = {'true' if master else 'false'}\n"
            "processes = 2\n"
            "wsgi-file = app.py\n"
            "import = uwsgi_reload\n" + ini_body
        )
        return Server([UWSGI, "--ini", str(ini)], tmp_path, port)

    started = time.monotonic()
    server = start_on_free_port(start, UWSGI_BOUND)
    try:
        code = server.wait_exit(20)
        took = time.monotonic() - started
        try:
            os.killpg(server.proc.pid, 0)
            left = True
        except ProcessLookupError:
            left = False
        assert not left, server.explain("a process of the instance outlived the master")
    finally:
        server.stop()
    return code, server.log(), took


@pytest.mark.parametrize(
    "line, expected",
    [
        (
            "uwsgi-reload-period = 0.5",
            "uwsgi-reload-period = '0.5' is not allowed: expected a whole number of seconds",
        ),
        ("uwsgi-reload-period = fast", "uwsgi-reload-period = 'fast' is not allowed"),
        (
            "uwsgi-reload-perod = 2",
            "uwsgi-reload-perod is not a known key (did you mean uwsgi-reload-period?)",
        ),
        (
            "uwsgi-reload-include = nowhere/",
            "uwsgi-reload-include names 'nowhere/', which does not exist",
        ),
        ("uwsgi-reload-mode = chain", "uwsgi-reload-mode = chain needs `lazy-apps = true`"),
    ],
)
def test_bad_value_stops_uwsgi_with_a_clear_error(tmp_path, line, expected):
    code, log = run_to_exit(tmp_path, line + "\n")
    assert code == 1, log
    assert f"uwsgi_reload: ERROR: {expected}" in log, log
    assert "uWSGI stops here" in log


LAZY = "lazy-apps = true\n"
CHAIN = LAZY + "master-fifo = %dmaster.fifo\nuwsgi-reload-mode = chain\n"


@pytest.mark.parametrize("setup", [LAZY, CHAIN], ids=["lazy-apps", "chain"])
def test_config_error_under_lazy_apps_stops_every_process_at_once(tmp_path, setup):
    """Under lazy-apps the error is found in the workers, after the fork. They used to
    keep serving (with reloading off) until uWSGI's 60 s worker mercy: the master's
    SIGINT reached them while loading, as a KeyboardInterrupt the load swallowed."""
    for run in range(3):  # it failed 3 runs in 4 before: more than one run
        folder = tmp_path / f"run{run}"
        folder.mkdir()
        code, log, took = timed_run_to_exit(folder, setup + "uwsgi-reload-period = 0.5\n")
        assert "uwsgi_reload: ERROR: uwsgi-reload-period = '0.5' is not allowed" in log, log
        assert took < 6, f"run {run}: uWSGI took {took:.1f}s to stop\n{log}"
        # uWSGI 2.0's master ends every signalled stop with exit(0) (master_checks.c):
        # no worker can make it exit 1 (see uwsgi_reload/hosts/uwsgi/stop.py)
        assert code == 0, log
        assert "goodbye to uWSGI" in log, log


def test_without_master_it_says_add_master(tmp_path):
    code, log = run_to_exit(tmp_path, "", master=False)
    assert code != 0, log
    assert "add `master = true`" in log, log


def test_strict_mode_works_with_set_placeholder(tmp_path):
    """`strict = true` refuses unknown keys; `set-ph` still defines ours."""
    write(tmp_path / "app.py", APP)
    ini = tmp_path / "strict.ini"

    def start(port: int) -> Server:
        ini.write_text(
            plain_uwsgi_ini(
                port,
                "strict = true\nwsgi-file = app.py\nimport = uwsgi_reload\n"
                "set-ph = uwsgi-reload-period=2\n",
            )
        )
        return Server([UWSGI, "--ini", str(ini)], tmp_path, port)

    server = start_on_free_port(start, UWSGI_BOUND)
    try:
        line = server.wait_for_log(r"uwsgi_reload: reloading on: .*")
        assert "period 2s" in line.group(0)
    finally:
        server.stop()
