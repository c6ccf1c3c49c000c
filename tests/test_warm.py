"""Warm mode on real uWSGI: the master keeps the libraries the workers imported (each
proven to import cleanly first), a save replaces only the workers, and whatever the
master holds that changed restarts it after all."""

from __future__ import annotations

import pytest
from servers import READY, write
from test_uwsgi_modes import assert_none_failed, request_load

pytestmark = pytest.mark.integration

# plain_lib and needs_config live in vendor/, excluded from tracking: libraries, as
# site-packages are. needs_config refuses to import before the app configured itself,
# as Django models do, so the master must leave it to the workers.
APP = """\
import gc, os, sys, time
import uwsgi
KEPT = "plain_lib" in sys.modules and "xml.dom.minidom" in sys.modules
FROZEN = gc.get_freeze_count() > 0  # the master's objects, out of the workers' collections
os.environ["APP_CONFIGURED"] = "1"
import plain_lib, needs_config, xml.dom.minidom
import greeting

def application(environ, start_response):
    if environ.get("QUERY_STRING", "").startswith("sleep="):
        time.sleep(float(environ["QUERY_STRING"][6:]))
    start_response("200 OK", [("Content-Type", "text/plain")])
    body = f"{greeting.TEXT} kept={KEPT} lib={plain_lib.VERSION} frozen={FROZEN} pid={os.getpid()}"
    return [body.encode()]
"""
NEEDS_CONFIG = """\
import os
if os.environ.get("APP_CONFIGURED") != "1":
    raise RuntimeError("configure the app first")
"""
WARM = (
    "wsgi-file = app.py\nlazy-apps = true\nforkbomb-delay = 0\nmaster-fifo = master.fifo\n"
    "pythonpath = vendor\n"
    "shared-import = uwsgi_reload\nuwsgi-reload-mode = warm\nuwsgi-reload-exclude = vendor\n"
)
SORTED = r"warm: \d+ library modules can stay in the master, \d+ are left to the workers"
MASTER_STARTS = r"spawned uWSGI master process|gracefully \(RE\)spawned uWSGI master"


def make_project(folder) -> None:
    write(folder / "app.py", APP)
    write(folder / "greeting.py", "TEXT = 'v1'\n")
    write(folder / "vendor" / "plain_lib.py", "VERSION = 1\n")
    write(folder / "vendor" / "needs_config.py", NEEDS_CONFIG)


def test_warm_mode_keeps_the_libraries_and_replaces_only_the_workers(tmp_path, uwsgi_server):
    make_project(tmp_path)
    server = uwsgi_server(WARM)
    server.wait_for_body("v1 kept=False lib=1")
    server.wait_for_log(SORTED, timeout=30)  # the workers' imports, sorted in the background
    # the master learns them at a graceful reload, once
    write(tmp_path / "greeting.py", "TEXT = 'v2'\n")
    server.wait_for_log(r"warm: a graceful reload this time: the master learns \d+ library")
    server.wait_every_worker("v2 kept=True lib=1 frozen=True", timeout=20)
    kept = server.wait_for_log(r"warm: the master keeps (\d+) library modules imported")
    assert int(kept.group(1)) > 0
    left = r"left to the workers, such as .*needs_config \(RuntimeError: configure the app first"
    assert server.count(left) == 1, server.explain("needs_config, left to the workers")
    masters = server.count(MASTER_STARTS)

    # from now on a save replaces the workers only, with no failed request
    with request_load(server) as results:
        write(tmp_path / "greeting.py", "TEXT = 'v3'\n")
        server.wait_for_log(r"modified .*greeting\.py -> warm reload")
        server.wait_until(
            lambda: sum("v3" in r[1] for r in results) >= 20, 20, "20 answers with v3"
        )
    server.wait_every_worker("v3 kept=True lib=1", timeout=20)
    assert_none_failed(server, results)
    assert server.count(MASTER_STARTS) == masters, server.explain("the master was restarted")

    # a library the master holds changed: the master restarts after all
    write(tmp_path / "vendor" / "plain_lib.py", "VERSION = 2\n")
    write(tmp_path / "greeting.py", "TEXT = 'v4'\n")
    server.wait_for_log(r"warm: a graceful reload this time: \S*plain_lib\.py changed, and the")
    server.wait_every_worker("v4 kept=True lib=2", timeout=20)


def test_warm_mode_a_module_that_fails_to_load_then_is_fixed(tmp_path, uwsgi_server):
    make_project(tmp_path)
    server = uwsgi_server(WARM)
    server.wait_for_body("v1 kept=False lib=1")
    write(tmp_path / "greeting.py", "TEXT = undefined_name\n")  # valid syntax, fails to run
    server.wait_for_log(r"modified .*greeting\.py -> (?:warm|graceful) reload")
    server.wait_until(lambda: server.get()[0] == 500, 20, "the failed load served as an error")
    write(tmp_path / "greeting.py", "TEXT = 'fixed'\n")
    server.wait_every_worker("fixed kept=", timeout=20)


@pytest.mark.parametrize("mode", ["graceful", "chain"])
def test_lazy_apps_with_the_master_import_reload_in_every_mode(tmp_path, uwsgi_server, mode):
    """`shared-import = uwsgi_reload` (as warm mode needs) under lazy-apps runs our
    import in the master in the other modes too: they must reload all the same."""
    make_project(tmp_path)
    server = uwsgi_server(WARM.replace("uwsgi-reload-mode = warm", f"uwsgi-reload-mode = {mode}"))
    server.wait_for_body("v1 kept=False lib=1")
    server.wait_for_log(READY)
    write(tmp_path / "greeting.py", "TEXT = 'v2'\n")
    server.wait_for_log(rf"modified .*greeting\.py -> {mode} reload")
    server.wait_every_worker("v2 kept=False", timeout=20)
