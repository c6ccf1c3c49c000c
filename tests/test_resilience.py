"""Broken saves, bursts, reload loops and filesystem faults on real uWSGI."""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from servers import APP, GENERATION, LOOP_APP, READY, get, make_app, serve_app, write

from uwsgi_reload.core.config import Config

pytestmark = pytest.mark.integration


def test_syntax_error_is_kept_out_then_the_fix_reloads(tmp_path, uwsgi_server):
    server = serve_app(tmp_path, uwsgi_server)
    write(tmp_path / "greeting.py", "TEXT = 'v2'\ndef broken(:\n")
    server.wait_for_log(r"not reloading, this file does not compile: .*greeting\.py:2: SyntaxError")
    server.holds(  # over two more checks
        lambda: server.count(r"does not compile") == 1 and server.count(r"graceful reload") == 0,
        2.5,
        "the broken file logged once per change, and no reload",
    )
    server.wait_every_worker("v1 pid=", timeout=5)  # the old code serves on, in each worker
    fixed_at = time.monotonic()
    write(tmp_path / "greeting.py", "TEXT = 'fixed'\n")
    server.wait_for_body("fixed", timeout=10)
    print(f"fix -> first good response: {time.monotonic() - fixed_at:.2f}s")


def test_syntax_check_can_be_switched_off(tmp_path, uwsgi_server):
    make_app(tmp_path)
    server = uwsgi_server("wsgi-file = app.py\nuwsgi-reload-check-syntax = false\n")
    server.wait_for_log(READY)
    write(tmp_path / "greeting.py", "def broken(:\n")
    server.wait_for_log(r"modified .*greeting\.py -> graceful reload")
    server.wait_until(lambda: server.get()[0] == 500, 10, "no app after a broken reload")
    write(tmp_path / "greeting.py", "TEXT = 'recovered'\n")  # named in the SyntaxError
    server.wait_for_body("recovered", timeout=10)


def test_import_error_at_start_then_fixed_wsgi_file(tmp_path, uwsgi_server):
    write(tmp_path / "app.py", APP)  # greeting.py does not exist yet
    server = uwsgi_server("wsgi-file = app.py\n")
    server.wait_for_log(r"a load failed; tracking the files its error named")
    assert server.get()[0] == 500
    write(tmp_path / "greeting.py", "TEXT = 'now-there'\n")
    server.wait_for_body("now-there", timeout=10)


@pytest.mark.parametrize("lazy", [False, True], ids=["preforked", "lazy-apps"])
def test_name_error_in_module_app_then_fixed(tmp_path, uwsgi_server, lazy):
    write(tmp_path / "pkg" / "__init__.py", "")
    write(tmp_path / "pkg" / "web.py", APP.replace("import greeting", "from pkg import greeting"))
    write(tmp_path / "pkg" / "greeting.py", "TEXT = 'v1'\n")
    server = uwsgi_server("module = pkg.web:application\n" + ("lazy-apps = true\n" if lazy else ""))
    server.wait_for_log(READY)
    server.wait_for_body("v1")
    # compiles, so the pre-check lets it through; fails when the module runs
    write(tmp_path / "pkg" / "greeting.py", "TEXT = undefined_name\n")
    server.wait_for_log(r"modified .*pkg/greeting\.py -> graceful reload")
    server.wait_until(lambda: server.get()[0] == 500, 10, "no app after NameError")
    write(tmp_path / "pkg" / "greeting.py", "TEXT = 'back'\n")
    server.wait_for_body("back", timeout=10)


def test_burst_of_50_files_over_2s_gives_one_reload_with_final_content(tmp_path, uwsgi_server):
    names = [f"m{i}" for i in range(50)]
    for name in names:
        write(tmp_path / f"{name}.py", "VALUE = 'a'\n")
    write(
        tmp_path / "app.py",
        f"import {', '.join(names)}\n"
        "def application(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
        f"    return [''.join(m.VALUE for m in ({', '.join(names)},)).encode()]\n",
    )
    # The writes are paced 40 ms apart, but under a loaded machine (-n 3 on 2 cores) a
    # gap can stretch: the delay leaves 25 times the pace, and the gaps are checked.
    delay = 1.0
    server = uwsgi_server(f"wsgi-file = app.py\nuwsgi-reload-delay = {delay}\n")
    server.wait_for_log(READY)
    server.wait_for_body("a" * 50)
    written = []
    for name in names:  # 50 writes, 40 ms apart: 2 s
        write(tmp_path / f"{name}.py", "VALUE = 'b'\n")
        written.append(time.monotonic())
        time.sleep(0.04)
    gap = max(b - a for a, b in itertools.pairwise(written))
    assert gap < delay, f"the test itself stalled {gap:.2f}s between two writes of the burst"
    server.wait_for_body("b" * 50, timeout=15)
    server.wait_for_log(GENERATION, count=2)
    server.holds(lambda: server.count(r"-> graceful reload") == 1, 2.5, "no second reload")
    reloads = server.count(r"-> graceful reload")
    print(f"burst of 50 files: {reloads} reload(s)")
    assert reloads == 1, server.explain(f"{reloads} reloads for one burst")


def package_module(i: int, version: int, formatted: bool = True) -> str:
    """A module of the 200-module package; ``formatted=False`` is the same code as
    `ruff format` would not leave it (quotes, spaces), so the formatter rewrites it."""
    q, eq = ('"', " = ") if formatted else ("'", "  =  ")
    functions = "".join(
        f"\n\ndef function_{n}(a, b={n}):\n    return {{{q}a{q}: a, {q}n{q}: {n}}}\n"
        for n in range(10)
    )
    head = f"import os\n\nVERSION{eq}{q}{version}{q}\nSIZE = os.path.getsize(__file__)\n"
    return head + functions


PACKAGE_APP = """\
import importlib

MODULES = [importlib.import_module(f"pkg.sub{i // 20}.mod{i}") for i in range(200)]

def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    versions = ",".join(sorted({m.VERSION for m in MODULES}))
    return [f"versions={versions} size={sum(m.SIZE for m in MODULES)} end".encode()]
"""


def write_package(folder: Path, version: int, formatted: bool = True) -> list[Path]:
    files = []
    for i in range(200):
        files.append(folder / "pkg" / f"sub{i // 20}" / f"mod{i}.py")
        write(files[-1], package_module(i, version, formatted))
    for sub in {folder / "pkg", *(f.parent for f in files)}:
        write(sub / "__init__.py", "")
    write(folder / "app.py", PACKAGE_APP)
    return files


def default_delay() -> str:
    """The ini line that puts the default delay back (the test ini sets 0.1)."""
    return f"uwsgi-reload-delay = {Config().delay}\n"


def test_git_checkout_of_200_files_gives_one_reload_with_the_default_delay(tmp_path, uwsgi_server):
    if shutil.which("git") is None:
        pytest.skip("git is not installed")

    def git(*args: str) -> None:
        identity = ["-c", "user.name=test", "-c", "user.email=test@localhost"]
        subprocess.run(["git", *identity, *args], cwd=tmp_path, check=True, capture_output=True)

    write_package(tmp_path, 1)
    git("init", "-q")
    git("add", "-A")
    git("commit", "-q", "-m", "one")
    git("tag", "one")
    write_package(tmp_path, 2)
    git("commit", "-q", "-am", "two")
    server = uwsgi_server("wsgi-file = app.py\n" + default_delay())
    server.wait_for_log(READY)
    server.wait_for_body("versions=2 ")
    checkout_started = time.monotonic()
    git("checkout", "-q", "one")
    print(f"git checkout of 200 files took {time.monotonic() - checkout_started:.2f}s")
    took = server.wait_for_body("versions=1 ", timeout=20)
    print(f"checkout -> all 200 modules at version 1 served in {took:.2f}s")
    server.wait_for_log(GENERATION, count=2)
    server.holds(lambda: server.count(r"-> graceful reload") == 1, 2.5, "no second reload")
    assert server.count(r"-> graceful reload") == 1, server.explain("one reload for the checkout")


def test_ruff_format_of_a_package_gives_one_reload_with_the_default_delay(tmp_path, uwsgi_server):
    ruff = Path(sys.executable).parent / "ruff"
    if not ruff.exists():
        pytest.skip(f"ruff is not installed next to {sys.executable} (the test extra)")
    files = write_package(tmp_path, 1, formatted=False)
    before = sum(f.stat().st_size for f in files)
    server = uwsgi_server("wsgi-file = app.py\n" + default_delay())
    server.wait_for_log(READY)
    server.wait_for_body(f"size={before} ")
    subprocess.run([ruff, "format", "--isolated", "-q", "pkg"], cwd=tmp_path, check=True)
    after = sum(f.stat().st_size for f in files)
    assert after != before, "ruff format changed nothing: the test's package is wrong"
    took = server.wait_for_body(f"size={after} ", timeout=20)
    print(f"ruff format of 200 files -> the formatted package served in {took:.2f}s")
    server.wait_for_log(GENERATION, count=2)
    server.holds(lambda: server.count(r"-> graceful reload") == 1, 2.5, "no second reload")
    assert server.count(r"-> graceful reload") == 1, server.explain("one reload for the format")


def test_loop_guard_stops_an_app_that_writes_into_its_tracked_tree(tmp_path, uwsgi_server):
    write(tmp_path / "app.py", LOOP_APP)
    (tmp_path / "data").mkdir()
    server = uwsgi_server("wsgi-file = app.py\nuwsgi-reload-include = data\n")
    server.wait_for_log(r"uwsgi_reload: loop guard: .*data/state\.json was written during each", 40)
    assert server.count(r"-> graceful reload") == 2, server.explain("expected 2 reloads")
    server.holds(lambda: server.count(r"-> graceful reload") == 2, 3, "the loop stopped")
    # other files still reload
    write(tmp_path / "app.py", (tmp_path / "app.py").read_text().replace("app-v1", "app-v2"))
    server.wait_for_body("app-v2", timeout=10)


def test_filesystem_faults_do_not_stop_detection(tmp_path, uwsgi_server):
    make_app(tmp_path)
    inc = tmp_path / "inc"
    write(inc / "plain.txt", "x")
    write(inc / "becomes_folder.txt", "x")
    os.symlink(inc, inc / "loop")  # a symlink loop under an include
    bad_name = os.fsencode(str(inc)) + b"/caf\xe9.txt"  # not UTF-8
    with open(bad_name, "wb") as f:
        f.write(b"x")
    server = uwsgi_server("wsgi-file = app.py\nuwsgi-reload-include = inc\n")
    server.wait_for_log(READY)
    with open(bad_name, "wb") as f:
        f.write(b"changed")
    server.wait_for_log(r"modified .*caf.*\.txt -> graceful reload")
    server.wait_for_log(GENERATION, count=2)
    (inc / "becomes_folder.txt").unlink()
    (inc / "becomes_folder.txt").mkdir()
    server.wait_for_log(r"deleted .*becomes_folder\.txt -> graceful reload")
    server.wait_for_log(GENERATION, count=3)
    write(tmp_path / "greeting.py", "TEXT = 'still-works'\n")
    server.wait_for_body("still-works", timeout=10)
    assert "internal error" not in server.log(), server.explain("handler raised")


def test_huge_include_folder_is_capped_and_logged_once(tmp_path, uwsgi_server):
    make_app(tmp_path)
    big = tmp_path / "big"
    big.mkdir()
    for i in range(25):  # 25,000 files: over the 20,000 cap, and quick to create
        sub = big / f"d{i}"
        sub.mkdir()
        for j in range(1000):
            os.close(os.open(sub / f"f{j}", os.O_CREAT | os.O_WRONLY, 0o644))
    server = uwsgi_server("wsgi-file = app.py\nuwsgi-reload-include = big\n", period=2)
    server.wait_for_log(r"uwsgi-reload-include 'big' names more than 20000 files", timeout=30)
    server.wait_for_log(READY)
    write(tmp_path / "greeting.py", "TEXT = 'seen'\n")
    server.wait_for_body("seen", timeout=20)
    assert server.count(r"names more than 20000 files") == 1, server.explain("logged once")


def test_internal_error_in_the_check_is_logged_and_the_next_check_works(tmp_path, uwsgi_server):
    write(
        tmp_path / "app.py",
        "import os\n"
        "import uwsgi_reload.hosts.uwsgi.reloader as host\n"
        "original = host.UwsgiReloader._check\n"
        "def fail_once(self):\n"
        "    if not os.path.exists('failed-once'):\n"
        "        open('failed-once', 'w').close()\n"
        "        raise RuntimeError('injected fault')\n"
        "    return original(self)\n"
        "host.UwsgiReloader._check = fail_once\n" + APP,
    )
    write(tmp_path / "greeting.py", "TEXT = 'v1'\n")
    server = uwsgi_server("wsgi-file = app.py\n")
    server.wait_for_log(r"RuntimeError: injected fault")
    assert "internal error in the check" in server.log()
    server.wait_for_log(READY)
    write(tmp_path / "greeting.py", "TEXT = 'v2'\n")
    server.wait_for_body("v2", timeout=10)


def test_busy_worker_does_not_delay_detection(tmp_path, uwsgi_server):
    write(
        tmp_path / "app.py",
        "import time, greeting\n"
        "def application(environ, start_response):\n"
        "    if environ['PATH_INFO'] == '/slow':\n"
        "        print('slow request started', flush=True)\n"
        "        time.sleep(6)\n"
        "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
        "    return [greeting.TEXT.encode()]\n",
    )
    write(tmp_path / "greeting.py", "TEXT = 'v1'\n")
    server = uwsgi_server("wsgi-file = app.py\n")
    server.wait_for_log(READY)
    slow = threading.Thread(target=get, args=(server.url + "/slow", 20))
    slow.start()
    try:
        server.wait_for_log(r"slow request started")  # it now occupies one worker
        write(tmp_path / "greeting.py", "TEXT = 'v2'\n")
        took = server.wait_until(
            lambda: server.count(r"modified .*greeting\.py") == 1, 5, "detection while busy"
        )
        assert took < 2.5, server.explain(f"detected after {took:.1f}s")
    finally:
        slow.join()
    server.wait_for_body("v2", timeout=15)
