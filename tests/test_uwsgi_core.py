"""The core promise on real uWSGI: a save gives the new code on the next requests."""

from __future__ import annotations

import re
import threading
import time

import pytest
from servers import (
    BACKEND,
    GENERATION,
    READY,
    RETRIES_PER_RELOAD,
    get_idempotent,
    make_app,
    serve_app,
    write,
)

pytestmark = pytest.mark.integration


def test_edit_reloads_with_new_code(tmp_path, uwsgi_server):
    server = serve_app(tmp_path, uwsgi_server)
    write(tmp_path / "greeting.py", "TEXT = 'v2'\n")
    took = server.wait_every_worker("v2", timeout=10)
    line = server.wait_for_log(r"uwsgi_reload: modified .*greeting\.py -> graceful reload")
    assert str(tmp_path / "greeting.py") in line.group(0)
    print(f"save -> new code in both workers: {took:.2f}s")
    assert took < 5, server.explain(f"new code after {took:.1f}s")
    # a second reload would come a period or more after the first: watch three periods
    server.holds(lambda: server.count(r"-> graceful reload") == 1, 3, "exactly one reload")


def test_start_line_names_period_files_and_mode(tmp_path, uwsgi_server):
    make_app(tmp_path)
    server = uwsgi_server("wsgi-file = app.py\n", period=2)
    line = server.wait_for_log(READY + r".*").group(0)
    assert "mode graceful" in line and "period 2s" in line, line
    expected = "backend poll" if BACKEND == "poll" else "backend inotify"
    assert expected in line, line
    tracked = int(line.split("tracking ")[1].split()[0])
    # app.py, greeting.py and the ini (never uwsgi_reload's own files)
    assert tracked == 3, line
    server.holds(lambda: server.count(READY) == 1, 2.5, "one start line over two more checks")


def test_save_before_first_check_is_not_missed(tmp_path, uwsgi_server):
    """The baseline is the stat at load time, not at the first check: a save made
    while the workers start, before or during the generation's first check (raised as
    soon as the first worker runs), is never missed."""
    make_app(tmp_path)
    server = uwsgi_server("wsgi-file = app.py\n", period=3)
    server.wait_for_log(r"spawned uWSGI worker 1")
    write(tmp_path / "greeting.py", "TEXT = 'saved-early'\n")
    server.wait_for_body("saved-early", timeout=12)


# What only the checks use (they run in the workers). A graceful reload re-executes the
# master and waits for its imports: the master must not pay for these at every reload.
WORKER_ONLY = (
    "uwsgi_reload.core.pipeline",
    "uwsgi_reload.core.syntax",
    "uwsgi_reload.core.loopguard",
    "uwsgi_reload.hosts.records",
    "uwsgi_reload.frameworks",
    "traceback",
)

MODULES_APP = f"""\
import sys
import greeting

MASTER_HAD = [name for name in {WORKER_ONLY!r} if name in sys.modules]  # loaded in the master

def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"{{greeting.TEXT}} master-had={{','.join(MASTER_HAD) or 'none'}}".encode()]
"""


def test_the_master_imports_no_worker_only_module_and_saves_still_reload(tmp_path, uwsgi_server):
    """The master (which loads the app here, before it forks) has not imported what
    only the checks use, before or after a graceful reload; the workers import it at
    their first check, and a save made right after the master started still reloads."""
    write(tmp_path / "app.py", MODULES_APP)
    write(tmp_path / "greeting.py", "TEXT = 'v1'\n")
    server = uwsgi_server("wsgi-file = app.py\n", period=3)
    server.wait_for_log(r"spawned uWSGI worker 1")
    write(tmp_path / "greeting.py", "TEXT = 'v2'\n")  # before the first check
    server.wait_for_body("v2 master-had=none", timeout=12)
    server.wait_for_log(r"modified .*greeting\.py -> graceful reload")
    write(tmp_path / "greeting.py", "TEXT = 'v3'\n")
    server.wait_for_body("v3 master-had=none", timeout=12)


def test_module_imported_after_start_then_edited(tmp_path, uwsgi_server):
    """A module first imported by a worker at request time is tracked by every worker."""
    write(
        tmp_path / "app.py",
        "def application(environ, start_response):\n"
        "    import late\n"
        "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
        "    return [late.TEXT.encode()]\n",
    )
    write(tmp_path / "late.py", "TEXT = 'late-v1'\n")
    server = uwsgi_server("wsgi-file = app.py\n")
    server.wait_for_log(READY)
    server.wait_for_body("late-v1")  # one worker imports `late` now, after the fork
    # A same-size rewrite within the file system's timestamp tick (a few ms) would keep
    # mtime, size and inode: no stat-based detector can see it. An editor is slower.
    time.sleep(0.05)
    write(tmp_path / "late.py", "TEXT = 'late-v2'\n")
    server.wait_for_body("late-v2", timeout=10)
    server.wait_for_log(r"modified .*late\.py -> graceful reload")


def test_deleted_module_reloads_and_restoring_it_recovers(tmp_path, uwsgi_server):
    server = serve_app(tmp_path, uwsgi_server)
    (tmp_path / "greeting.py").unlink()
    server.wait_for_log(r"deleted .*greeting\.py -> graceful reload")
    server.wait_until(lambda: server.get()[0] == 500, 10, "no app after the module was deleted")
    write(tmp_path / "greeting.py", "TEXT = 'back'\n")
    server.wait_for_body("back", timeout=10)


def test_include_folder_glob_new_and_deleted_files(tmp_path, uwsgi_server):
    make_app(tmp_path)
    write(tmp_path / "templates" / "a.html", "<p>a</p>")
    write(tmp_path / "conf" / "settings.toml", "x = 1")
    server = uwsgi_server(
        "wsgi-file = app.py\n"
        "uwsgi-reload-include = templates, conf/**/*.toml\n"
        "uwsgi-reload-exclude = templates/drafts/**\n"
    )
    server.wait_for_log(READY)
    write(tmp_path / "templates" / "drafts" / "wip.html", "draft")  # excluded
    write(tmp_path / "conf" / "notes.txt", "not a toml")  # does not match the glob
    write(tmp_path / "app.log", "log line")  # logs are never tracked
    server.holds(lambda: server.count(r"-> graceful") == 0, 2.5, "no reload for untracked files")
    write(tmp_path / "templates" / "b.html", "<p>b</p>")  # new file in an included folder
    server.wait_for_log(r"added .*templates/b\.html -> graceful reload")
    server.wait_for_log(GENERATION, count=2)
    write(tmp_path / "conf" / "deep" / "more.toml", "y = 2")  # ** matches nested folders
    server.wait_for_log(r"added .*conf/deep/more\.toml -> graceful reload")
    server.wait_for_log(GENERATION, count=3)
    (tmp_path / "templates" / "a.html").unlink()
    server.wait_for_log(r"deleted .*templates/a\.html -> graceful reload")


def test_lazy_apps_each_worker_checks_once(tmp_path, uwsgi_server):
    make_app(tmp_path)
    server = uwsgi_server("wsgi-file = app.py\nlazy-apps = true\n")
    server.wait_for_log(READY)
    # both loaded: a worker still loading at the save would simply load the new code
    server.wait_every_worker("v1")
    write(tmp_path / "greeting.py", "TEXT = 'lazy-v2'\n")
    server.wait_every_worker("lazy-v2", timeout=10)  # each worker loaded the app itself
    server.holds(lambda: server.count(r"-> graceful reload") == 1, 3, "one save, one reload")
    assert "error managing signal" not in server.log(), server.explain("signal to a wrong worker")


def test_lazy_apps_respawned_worker_adds_no_timer(tmp_path, uwsgi_server):
    """uWSGI never prunes its timer table: a respawned worker must reuse its signal,
    or each respawn adds one more check per period."""
    write(
        tmp_path / "app.py",
        "import os, time, uwsgi\n"
        "import uwsgi_reload.hosts.uwsgi.reloader as host\n"
        "original = host.UwsgiReloader._check\n"
        "def logged(self):\n"
        "    uwsgi.log(f'check at {time.time():.3f}')\n"
        "    return original(self)\n"
        "host.UwsgiReloader._check = logged\n"
        "def application(environ, start_response):\n"
        "    if environ['PATH_INFO'] == '/die':\n"
        "        os._exit(3)\n"
        "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
        "    return [b'alive']\n",
    )
    # One process and the poll backend: each tick makes exactly one check (the event
    # backend checks again while events are pending, and log lines are events).
    server = uwsgi_server(
        "wsgi-file = app.py\nlazy-apps = true\nprocesses = 1\nuwsgi-reload-backend = poll\n"
    )
    server.wait_for_log(READY)
    for n in range(3):
        server.get("/die")
        server.wait_for_log(r"trying respawn", count=n + 1)
        server.wait_for_body("alive")
    # Ticks that came while the worker was respawning are delivered at once when it
    # serves again (and each respawned worker checks once as it starts): count from the
    # first tick well after the last respawn.
    respawned = time.time()

    def ticks_after(moment: float) -> int:
        found = re.findall(r"check at ([0-9.]+)", server.log())
        return sum(float(stamp) > moment for stamp in found)

    server.wait_until(lambda: ticks_after(respawned + 1.5) > 0, 10, "a tick after the respawns")
    before = server.count(r"check at")
    window = 5.0
    started = time.monotonic()
    server.wait_until(lambda: time.monotonic() - started > window, window + 1, "5 s of ticks")
    counted = server.count(r"check at") - before
    # one timer, period 1 s: about 5 ticks in 5 s (a tick can be late under load); each
    # timer a respawn added would give 5 more
    assert 3 <= counted <= 7, server.explain(f"{counted} ticks in {window:.0f}s after 3 respawns")
    write(tmp_path / "app.py", (tmp_path / "app.py").read_text().replace("alive", "edited"))
    server.wait_for_body("edited", timeout=10)
    server.holds(lambda: server.count(r"-> graceful reload") == 1, 3, "one save, one reload")
    assert "you have registered this signal" not in server.log(), server.explain("stale handler")
    assert "error managing signal" not in server.log(), server.explain("signal to a wrong worker")


def test_no_request_fails_across_reloads(tmp_path, uwsgi_server):
    make_app(tmp_path)
    server = uwsgi_server("wsgi-file = app.py\nlisten = 256\n")
    server.wait_for_log(READY)
    server.wait_for_body("v1")
    results: list[tuple[int, str]] = []
    retries: list[int] = []
    stop = threading.Event()

    def hammer() -> None:
        deadline = time.monotonic() + 60
        while not stop.is_set() and time.monotonic() < deadline:
            status, body, retried = get_idempotent(server.url + "/", timeout=10)
            results.append((status, body))
            retries.append(retried)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        for n in range(3):
            write(tmp_path / "greeting.py", f"TEXT = 'round-{n}'\n")
            server.wait_for_body(f"round-{n}", timeout=15)
            server.wait_for_log(GENERATION, count=n + 2)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    failed = [r for r in results if r[0] != 200]
    print(
        f"3 graceful reloads under 4 request loops: {len(results)} served, {len(failed)} "
        f"failed, {sum(retries)} retried after a reset before any response byte"
    )
    assert len(results) > 50, server.explain(f"only {len(results)} requests made")
    assert not failed, server.explain(f"{len(failed)} of {len(results)} failed: {failed[:3]}")
    assert sum(retries) <= 3 * RETRIES_PER_RELOAD, server.explain(
        f"{sum(retries)} requests reset during 3 reloads (of {len(results)})"
    )
    assert server.count(r"-> graceful reload") == 3


def test_repeated_include_lines_all_count(tmp_path, uwsgi_server):
    """uWSGI keeps only the last line of a repeated placeholder in uwsgi.opt: every
    `uwsgi-reload-include` line must still be tracked (here the first of three)."""
    make_app(tmp_path)
    for name in ("first", "second", "third"):
        write(tmp_path / name / "page.html", name)
    server = uwsgi_server(
        "wsgi-file = app.py\n"
        "uwsgi-reload-include = first\nuwsgi-reload-include = second\n"
        "uwsgi-reload-include = third\n"
        "uwsgi-reload-exclude = *.skip1\nuwsgi-reload-exclude = *.skip2\n"
    )
    line = server.wait_for_log(READY + r".*").group(0)
    assert "tracking 6 files" in line, server.explain("app.py, greeting.py, 3 pages, the ini")
    settings = server.wait_for_log(r"uwsgi_reload: settings: .*").group(0)
    assert "include=first second third" in settings, settings
    assert "exclude=*.skip1 *.skip2" in settings, settings
    write(tmp_path / "first" / "x.skip1", "excluded by the first exclude line")
    server.holds(lambda: server.count(r"-> graceful") == 0, 2.5, "no reload for *.skip1")
    write(tmp_path / "first" / "page.html", "first, edited")
    server.wait_for_log(r"modified .*first/page\.html -> graceful reload")


def test_included_package_in_a_virtualenv_reloads(tmp_path, uwsgi_server):
    """The default exclusion `.venv` must not veto an explicit include below it."""
    site = ".venv/lib/python3.11/site-packages"
    write(tmp_path / site / "somepkg" / "__init__.py", "TEXT = 'pkg-v1'\n")
    write(
        tmp_path / "app.py",
        "import somepkg\n\n"
        "def application(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
        "    return [somepkg.TEXT.encode()]\n",
    )
    (tmp_path / "logs").mkdir()
    write(tmp_path / "logs" / "old.log", "only logs here")
    server = uwsgi_server(
        f"wsgi-file = app.py\npythonpath = {site}\nuwsgi-reload-include = {site}/somepkg logs\n"
    )
    line = server.wait_for_log(READY + r".*").group(0)
    assert "tracking 3 files" in line, server.explain("app.py, somepkg/__init__.py, the ini")
    server.wait_for_log(
        r"uwsgi_reload: warning: uwsgi-reload-include 'logs' tracks no file: every file it "
        r"names is excluded \(for example .*/logs/old\.log, by the exclusion '\*\.log'\)"
    )
    server.wait_for_body("pkg-v1")
    write(tmp_path / site / "somepkg" / "__init__.py", "TEXT = 'pkg-v2'\n")
    server.wait_for_body("pkg-v2", timeout=10)
    server.wait_for_log(r"modified .*somepkg/__init__\.py -> graceful reload")


@pytest.mark.skipif(BACKEND == "poll", reason="the file monitors serve the event backend")
def test_request_log_lines_in_a_project_folder_do_not_run_checks(tmp_path, uwsgi_server):
    """The server's log is in the project folder (as ``logto = uwsgi.log`` often is), and
    uWSGI's file monitor there fires on every line written: with request logging on, one
    per request. Each used to run a whole check in a worker (about one per request;
    3,344 checks for 300 requests with the test servers' debug lines, which are log
    lines too); now it costs a look at the backend, and checks stay at one per period."""
    server = serve_app(tmp_path, uwsgi_server)
    server.wait_for_log(r"debug: check \(")
    before = server.count(r"debug: check")
    started = time.monotonic()
    served = sum(get_idempotent(server.url)[0] == 200 for _ in range(300))
    elapsed = time.monotonic() - started
    checks = server.count(r"debug: check") - before
    assert served == 300, server.explain(f"{served} of 300 requests served")
    assert server.count(r"\] GET / =>") >= 300, server.explain("request logging is off")
    assert checks <= elapsed / 1 + 4, server.explain(
        f"{checks} checks in {elapsed:.2f}s for 300 requests (period 1s)"
    )
    write(tmp_path / "greeting.py", "TEXT = 'v2'\n")  # and a save still acts at once
    server.wait_every_worker("v2", timeout=10)


@pytest.mark.skipif(BACKEND == "poll", reason="the file monitors serve the event backend")
def test_a_save_closed_after_its_write_is_handled_at_once_not_at_the_next_tick(
    tmp_path, uwsgi_server
):
    """An in-place save is a truncate, writes, then the close. uWSGI's file monitor
    fires on the writes; the event backend reports the file at its close, which uWSGI
    does not watch. A check woken by the writes used to find nothing yet and return, and
    the save waited for the timer (here 10 s); editors that sync before closing leave
    such a gap. Each save here closes 20 ms after its write. The server's log is kept
    out of the project, whose folder would otherwise wake a check at every line."""
    site = tmp_path / "site"
    server = serve_app(site, lambda body: uwsgi_server(body, period=10), f"chdir = {site}\n")
    for text in ("v2", "v3", "v4"):
        with open(site / "greeting.py", "w") as f:
            f.write(f"TEXT = {text!r}\n")
            f.flush()
            time.sleep(0.02)
        took = server.wait_every_worker(text, timeout=15)
        assert took < 3, server.explain(f"{text} served {took:.2f}s after the close")
