"""Never silently stale: ways reloading could stop or lag without telling, on real uWSGI."""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import threading
import time

import pytest
from servers import GENERATION, READY, write

pytestmark = pytest.mark.integration

APP = """\
import os, time

def application(environ, start_response):
    if environ.get("QUERY_STRING", "").startswith("sleep="):
        time.sleep(float(environ["QUERY_STRING"][6:]))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"version-{n} pid={{os.getpid()}}".encode()]
"""

# seconds between seeing a version served and the next save: a developer's rhythm
PAUSES = (0.5, 1.0, 2.0, 0.7, 1.5, 0.5, 1.2, 0.6, 1.8)


@pytest.mark.parametrize("lazy", [False, True], ids=["preforked", "lazy-apps"])
def test_ten_quick_saves_are_all_served_and_never_trip_the_loop_guard(tmp_path, uwsgi_server, lazy):
    write(tmp_path / "app.py", APP.format(n=0))
    server = uwsgi_server("wsgi-file = app.py\n" + ("lazy-apps = true\n" if lazy else ""))
    server.wait_for_log(READY)
    server.wait_every_worker("version-0 ")
    for n in range(1, 11):
        write(tmp_path / "app.py", APP.format(n=n))
        # every worker, so that the next save finds no worker still loading this one
        took = server.wait_every_worker(f"version-{n} ", timeout=10)
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


HELPER_APP = """\
import helper

def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [helper.TEXT.encode()]
"""


@pytest.mark.parametrize("lazy", [False, True], ids=["preforked", "lazy-apps"])
@pytest.mark.parametrize("delay", [0.3, 1.0, 2.0])
def test_module_renamed_away_right_after_the_reload_that_imported_it(
    tmp_path, uwsgi_server, delay, lazy
):
    write(tmp_path / "app.py", APP.format(n=0))
    server = uwsgi_server("wsgi-file = app.py\n" + ("lazy-apps = true\n" if lazy else ""))
    server.wait_for_log(READY)
    write(tmp_path / "helper.py", "TEXT = 'from-helper'\n")
    write(tmp_path / "app.py", HELPER_APP)
    # the new generation serves (under lazy-apps a worker of the old one that loads the
    # app after the save serves "from-helper" too, before any reload: not what we test)
    server.wait_for_log(GENERATION, count=2)
    server.wait_for_body("from-helper")
    time.sleep(delay)  # the developer renames the new module soon after the reload
    os.rename(tmp_path / "helper.py", tmp_path / "helper_renamed.py")
    started = time.monotonic()
    server.wait_until(
        lambda: all(server.get()[0] == 500 for _ in range(6)),
        8,
        "every worker failing without helper.py (no worker on the old code)",
    )
    print(f"renamed {delay}s after the reload -> noticed in {time.monotonic() - started:.2f}s")
    server.wait_for_log(r"helper\.py\b.* -> graceful reload")


def test_new_subfolder_of_an_include_root_that_is_also_a_module_folder(tmp_path, uwsgi_server):
    write(tmp_path / "app.py", APP.format(n=0))
    server = uwsgi_server("wsgi-file = app.py\nuwsgi-reload-include = .\n")
    server.wait_for_log(READY)
    server.wait_for_body("version-0")
    (tmp_path / "templates" / "deep").mkdir(parents=True)
    time.sleep(0.2)  # the folders exist before the file is written in them
    write(tmp_path / "templates" / "deep" / "page.html", "x")
    server.wait_for_log(r"added \S*templates/deep/page\.html -> graceful reload", timeout=5)


@pytest.fixture
def fuse_mount(tmp_path):
    """A bindfs mount of ``src`` at ``mnt``: writes made in ``src`` reach the mount but
    give no inotify event there, as on Docker Desktop's and VMs' shares."""
    bindfs = shutil.which("bindfs")
    if not bindfs or os.geteuid() != 0 or not os.path.exists("/dev/fuse"):
        pytest.skip("needs bindfs (make test installs it), root and /dev/fuse")
    src, mnt = tmp_path / "src", tmp_path / "mnt"
    src.mkdir()
    mnt.mkdir()
    mounted = subprocess.run([bindfs, str(src), str(mnt)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"bindfs cannot mount here: {mounted.stderr.strip()[-200:]}")
    yield src, mnt
    subprocess.run(["fusermount", "-u", "-z", str(mnt)], capture_output=True)


def test_events_missed_on_a_fuse_mount_switch_to_polling(fuse_mount, uwsgi_server):
    src, mnt = fuse_mount
    write(src / "app.py", APP.format(n=0))
    server = uwsgi_server(
        "wsgi-file = app.py\nprocesses = 1\nuwsgi-reload-backend = inotify\n", cwd=mnt
    )
    line = server.wait_for_log(READY + r".*").group(0)
    assert "backend inotify" in line, line
    server.wait_for_body("version-0")
    write(src / "app.py", APP.format(n=1))  # underneath the mount: no event
    # found by the full check that runs every 30th check, then polling from there on
    switch = server.wait_for_log(
        r"uwsgi_reload: inotify reported no event for \S*app\.py \((.*)\), which a full "
        r"check found changed: polling from now on",
        timeout=45,
    )
    assert f"{mnt} is a fuse" in switch.group(1), switch.group(0)
    server.wait_for_body("version-1")
    # the reload made a new backend: it polls too, and says so at each idle check
    served = len(server.log())
    server.wait_until(
        lambda: len(re.findall(r"debug: check \(.*\): scanned", server.log()[served:])) >= 2,
        10,
        "two idle checks that scan (polling) after the reload",
    )
    write(src / "app.py", APP.format(n=2))
    took = server.wait_for_body("version-2", timeout=5)
    print(f"after the switch: save -> new code {took:.2f}s")
    assert server.count(r"polling from now on") == 1


def test_auto_polls_on_a_fuse_mount_from_the_start(fuse_mount, uwsgi_server):
    src, mnt = fuse_mount
    write(src / "app.py", APP.format(n=0))
    server = uwsgi_server("wsgi-file = app.py\nuwsgi-reload-backend = auto\n", cwd=mnt)
    line = server.wait_for_log(READY + r".*").group(0)
    assert f"backend poll ({mnt} is a fuse mount" in line, line
    server.wait_for_body("version-0")
    write(src / "app.py", APP.format(n=1))
    took = server.wait_for_body("version-1", timeout=5)
    print(f"auto on FUSE: save underneath -> new code {took:.2f}s")


SLOW_SECOND_WORKER_APP = """\
import os, time, uwsgi
if uwsgi.worker_id() == 2:
    while not os.path.exists("go"):  # the test saves greeting.py before this worker loads
        time.sleep(0.05)
import greeting

def application(environ, start_response):
    if environ.get("QUERY_STRING", "").startswith("sleep="):
        open("busy", "w").close()
        time.sleep(float(environ["QUERY_STRING"][6:]))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"{greeting.TEXT} pid={os.getpid()}".encode()]
"""


def test_lazy_workers_that_loaded_different_versions_are_reloaded(tmp_path, uwsgi_server):
    """Under lazy-apps each worker loads the app itself: a save between two workers'
    loads leaves them on different versions, whichever worker runs the checks."""
    write(tmp_path / "greeting.py", "TEXT = 'v1'\n")
    write(tmp_path / "app.py", SLOW_SECOND_WORKER_APP)
    server = uwsgi_server("wsgi-file = app.py\nlazy-apps = true\n")
    server.wait_for_log(READY)  # worker 1 has loaded v1 and checked
    # worker 1 (the only one serving yet) is kept busy, so worker 2 runs the checks
    busy = threading.Thread(target=server.get, args=("/?sleep=6", 15))
    busy.start()
    try:
        server.wait_until((tmp_path / "busy").exists, 5, "the long request to start")
        write(tmp_path / "greeting.py", "TEXT = 'v2'\n")
        (tmp_path / "go").touch()  # worker 2 loads v2 now
        server.wait_for_log(r"greeting\.py -> graceful reload", timeout=4)
    finally:
        busy.join()
    server.wait_every_worker("v2 ", timeout=15)


def test_a_graceful_reload_does_not_wait_for_the_masters_idle_second(tmp_path, uwsgi_server):
    """The master notices dead workers only when its loop wakes up, once a second when
    nothing else happens; the waker gives it events meanwhile, so old workers are buried
    within milliseconds of their end, not up to a second later."""
    write(tmp_path / "app.py", APP.format(n=0))
    server = uwsgi_server("wsgi-file = app.py\nlog-encoder = format ${micros} ${msg}\n")
    server.wait_for_log(READY)
    for n in (1, 2, 3):
        write(tmp_path / "app.py", APP.format(n=n))
        server.wait_for_log(GENERATION, count=n + 1)
    # from the master's "gracefully killing" to each old worker buried (the encoder
    # writes the lines without line breaks: find the stamps by their 16 digits)
    delays = []
    killing = None
    events = r"(\d{16}) (\.\.\.gracefully killing workers|worker \d+ buried)"
    for stamp, what in re.findall(events, server.log()):
        if what.startswith("..."):
            killing = int(stamp)
        elif killing is not None:
            delays.append((int(stamp) - killing) / 1e6)
    assert len(delays) == 6, server.explain(f"burials seen: {delays}")
    assert statistics.median(delays) < 0.3, server.explain(f"burial delays {delays} s")
    print(f"old workers buried {delays} s after the reload began")
