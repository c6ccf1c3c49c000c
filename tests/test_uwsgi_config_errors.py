"""A configuration error stops uWSGI at start with a message naming key, value and
what is allowed: reloading silently off is the failure users do not notice."""

from __future__ import annotations

import pytest
from servers import UWSGI, Server, free_port, plain_uwsgi_ini, write

pytestmark = pytest.mark.integration

APP = "def application(e, s):\n    s('200 OK', [])\n    return [b'ok']\n"


def run_to_exit(tmp_path, ini_body: str, master: bool = True) -> tuple[int, str]:
    write(tmp_path / "app.py", APP)
    port = free_port()
    ini = tmp_path / "bad.ini"
    ini.write_text(
        "[uwsgi]\n"
        f"http-socket = 127.0.0.1:{port}\n"
        f"master = {'true' if master else 'false'}\n"
        "wsgi-file = app.py\n"
        "import = uwsgi_reload\n" + ini_body
    )
    server = Server([UWSGI, "--ini", str(ini)], tmp_path, port)
    try:
        code = server.wait_exit(20)
    finally:
        server.stop()
    return code, server.log()


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
    assert code != 0, log
    assert f"uwsgi_reload: ERROR: {expected}" in log, log
    assert "uWSGI stops here" in log


def test_without_master_it_says_add_master(tmp_path):
    code, log = run_to_exit(tmp_path, "", master=False)
    assert code != 0, log
    assert "add `master = true`" in log, log


def test_strict_mode_works_with_set_placeholder(tmp_path):
    """`strict = true` refuses unknown keys; `set-ph` still defines ours."""
    write(tmp_path / "app.py", APP)
    port = free_port()
    ini = tmp_path / "strict.ini"
    ini.write_text(
        plain_uwsgi_ini(
            port,
            "strict = true\nwsgi-file = app.py\nimport = uwsgi_reload\n"
            "set-ph = uwsgi-reload-period=2\n",
        )
    )
    server = Server([UWSGI, "--ini", str(ini)], tmp_path, port)
    try:
        line = server.wait_for_log(r"uwsgi_reload: reloading on: .*")
        assert "period 2s" in line.group(0)
    finally:
        server.stop()
