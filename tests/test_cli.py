"""The command line: `uwsgi-reload check --ini` and `uwsgi-reload watch` (argument and
target errors, the actions, the loop) without servers; then the watcher driving a real
uWSGI (pidfile, master FIFO) and a real gunicorn (pidfile)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from servers import (
    BIN,
    UWSGI,
    Server,
    free_port,
    gunicorn_control_socket_off,
    plain_uwsgi_ini,
    write,
)

from uwsgi_reload.cli import actions
from uwsgi_reload.cli import arguments as cli_main
from uwsgi_reload.cli import check as cli_check
from uwsgi_reload.core.config import ConfigError, parse_config
from uwsgi_reload.core.detector import Detector
from uwsgi_reload.core.pipeline import Pipeline, Verdict, run_loop
from uwsgi_reload.core.snapshot import Changes
from uwsgi_reload.core.syntax import SyntaxGate
from uwsgi_reload.hosts.uwsgi import ini as uwsgi_ini
from uwsgi_reload.hosts.uwsgi.options import load_uwsgi_config

# --------------------------------------------------------------------------- uwsgi.ini


def test_ini_is_read_like_uwsgi(tmp_path, monkeypatch):
    monkeypatch.setenv("PERIOD_FROM_ENV", "4")
    write(
        tmp_path / "conf" / "app.ini",
        "[other]\n"
        "uwsgi-reload-period = 9\n"
        "[uwsgi]\n"
        "; a comment\n"
        "  # an indented comment\n"
        "uwsgi-reload-period = 2\n"
        "uwsgi-reload-period = $(PERIOD_FROM_ENV)\n"
        "base = %dsrc\n"
        "uwsgi-reload-include = %(base) $(NOT_SET_ANYWHERE) a;b #c\n"
        "set-ph = uwsgi-reload-delay=0.5\n"
        "master\n"
        "name = %n.%e in %c, %%, %z\n",
    )
    ini = uwsgi_ini.read_uwsgi_ini(str(tmp_path / "conf" / "app.ini"))
    folder = str(tmp_path / "conf")
    assert ini.options["uwsgi-reload-period"] == ["2", "4"]  # repeated: all kept, last wins
    assert ini.last("uwsgi-reload-period") == "4"
    assert ini.last("base") == folder + "/src"  # %d has a trailing slash
    # placeholders resolved, unset $(ENV) left as written, no inline comments
    assert ini.last("uwsgi-reload-include") == f"{folder}/src $(NOT_SET_ANYWHERE) a;b #c"
    assert ini.last("uwsgi-reload-delay") == "0.5"
    assert ini.options["master"] == [True]  # a key without `=` is a flag
    assert ini.last("name") == "app.ini in conf, %,"  # unknown magic is empty, then stripped
    assert ini.notes == []


def test_ini_section_include_and_missing_section(tmp_path):
    write(tmp_path / "base.ini", "[uwsgi]\nmaster = true\nuwsgi-reload-mode = chain\n")
    write(tmp_path / "dev.ini", "[uwsgi]\nini = %dbase.ini\n[dev]\nuwsgi-reload-period = 3\n")
    ini = uwsgi_ini.read_uwsgi_ini(str(tmp_path / "dev.ini"))
    assert ini.last("uwsgi-reload-mode") == "chain" and ini.last("master") == "true"
    assert uwsgi_ini.read_uwsgi_ini(f"{tmp_path}/dev.ini:dev").last("uwsgi-reload-period") == "3"
    assert "no [nope] section" in uwsgi_ini.read_uwsgi_ini(f"{tmp_path}/dev.ini:nope").notes[0]


def run_check(*argv: str) -> tuple[int, str]:
    lines: list[str] = []
    status = cli_check.check(cli_main.parser().parse_args(["check", *argv]), lines.append)
    return status, "\n".join(lines)


GOOD_INI = """\
[uwsgi]
chdir = %d
wsgi-file = app.py
master = true
import = uwsgi_reload
uwsgi-reload-period = 2
uwsgi-reload-include = templates
uwsgi-reload-exclude = *.tmp.html
"""


def test_check_good_ini_prints_configuration_and_tracked_files(tmp_path):
    write(tmp_path / "app.py", "")
    write(tmp_path / "templates" / "index.html", "")
    write(tmp_path / "templates" / "draft.tmp.html", "")
    write(tmp_path / "uwsgi.ini", GOOD_INI)
    status, out = run_check("--ini", str(tmp_path / "uwsgi.ini"))
    assert status == 0, out
    assert f"base folder: {tmp_path} (chdir)" in out
    assert "uwsgi-reload-period        = 2\n" in out
    assert "uwsgi-reload-delay         = 0.05   (default)" in out
    assert f"app entry files: 1 file\n    {tmp_path}/app.py" in out
    assert f"{tmp_path}/templates/index.html" in out
    assert "draft.tmp.html" not in out
    assert "known only once the app runs" in out
    assert out.endswith("OK: uWSGI would start with reloading on")


def test_check_bad_ini_gives_the_server_messages(tmp_path):
    body = (
        "[uwsgi]\nimport = uwsgi_reload\nuwsgi-reload-mode = chain\nuwsgi-reload-include = gone\n"
    )
    write(tmp_path / "uwsgi.ini", body)
    status, out = run_check("--ini", str(tmp_path / "uwsgi.ini"))
    assert status == 1, out
    options = uwsgi_ini.read_uwsgi_ini(str(tmp_path / "uwsgi.ini")).options
    with pytest.raises(ConfigError) as server:
        load_uwsgi_config(options, os.getcwd())  # what uWSGI would log
    assert len(server.value.problems) == 4  # include, master, lazy-apps, master-fifo
    for problem in server.value.problems:
        assert f"ERROR: {problem}" in out


def test_check_bad_value_and_missing_import(tmp_path):
    write(
        tmp_path / "uwsgi.ini",
        "[uwsgi]\nmaster = true\nwsgi-file = gone.py\nuwsgi-reload-period = 0.5\n",
    )
    status, out = run_check("--ini", str(tmp_path / "uwsgi.ini"))
    assert status == 1, out
    with pytest.raises(ConfigError) as server:
        parse_config({"uwsgi-reload-period": "0.5"})
    assert f"ERROR: {server.value.problems[0]}" in out
    assert "does not load uwsgi_reload, so nothing reloads: add `import = uwsgi_reload`" in out
    assert "note: `wsgi-file = gone.py` names no file under" in out


def test_check_unreadable_ini(tmp_path):
    status, out = run_check("--ini", str(tmp_path / "nope.ini"))
    assert status == 2 and "cannot read" in out and "No such file" in out


def test_module_entry_point_and_help():
    run = [sys.executable, "-m", "uwsgi_reload"]
    done = subprocess.run([*run, "watch", "--help"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    for flag in ("--pidfile", "--signal", "--fifo", "--fifo-command", "--touch", "--exec"):
        assert flag in done.stdout
    done = subprocess.run([*run, "check"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and "--ini" in done.stderr


# --------------------------------------------------------------------------- watch: errors


def run_watch(capsys, *argv: str) -> tuple[int, str]:
    try:
        status = cli_main.main(["watch", *argv])
    except SystemExit as exit:  # argparse
        status = int(exit.code or 0)
    return status, capsys.readouterr().err


def test_watch_needs_exactly_one_action(capsys):
    status, err = run_watch(capsys)
    assert status == 2 and "one of the arguments --pidfile --fifo --touch --exec" in err
    status, err = run_watch(capsys, "--pidfile", "a", "--touch", "b")
    assert status == 2 and "not allowed with argument" in err
    status, err = run_watch(capsys, "--touch", "b", "--signal", "TERM")
    assert status == 2 and "--signal goes with --pidfile" in err


def test_watch_bad_values(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    status, err = run_watch(capsys, "--exec", "true", "--signal", "NOPE")
    assert status == 2 and "unknown signal 'NOPE'" in err
    status, err = run_watch(capsys, "--exec", "true", "--period", "0")
    assert status == 2 and "expected a number of seconds" in err
    status, err = run_watch(capsys, "--exec", "true", "--delay", "x", "missing")
    assert status == 2
    assert "--delay = 'x' is not allowed: expected a number of seconds from 0 to 10" in err
    status, err = run_watch(capsys, "--exec", "true", "missing")
    assert status == 2 and "PATH 'missing' does not exist" in err


def test_watch_pidfile_errors(capsys, tmp_path):
    pidfile = tmp_path / "app.pid"
    status, err = run_watch(capsys, str(tmp_path), "--pidfile", str(pidfile))
    assert status == 2 and f"pidfile {pidfile} does not exist: is the server running" in err
    pidfile.write_text("hello\n")
    status, err = run_watch(capsys, str(tmp_path), "--pidfile", str(pidfile))
    assert status == 2 and "holds 'hello', not a process id" in err
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    pidfile.write_text(f"{gone.pid}\n")
    status, err = run_watch(capsys, str(tmp_path), "--pidfile", str(pidfile))
    assert status == 2 and f"no process {gone.pid} (from pidfile {pidfile})" in err


def test_watch_waits_for_the_server_then_gives_up(capsys, tmp_path):
    pidfile = tmp_path / "app.pid"
    started = time.monotonic()
    status, err = run_watch(capsys, str(tmp_path), "--pidfile", str(pidfile), "--wait", "0.3")
    assert time.monotonic() - started >= 0.3
    assert status == 2 and f"waiting up to 0.3s for the server: pidfile {pidfile}" in err
    assert "is the server running" in err and "(waited 0.3s)" in err
    status, err = run_watch(capsys, "--exec", "true", "--wait", "soon")
    assert status == 2 and "'soon' is not allowed: expected a number of seconds from 0" in err


def test_watch_fifo_errors(capsys, tmp_path):
    fifo = tmp_path / "master.fifo"
    status, err = run_watch(capsys, str(tmp_path), "--fifo", str(fifo))
    assert status == 2 and f"FIFO {fifo} does not exist: is uWSGI running with" in err
    fifo.write_text("")
    status, err = run_watch(capsys, str(tmp_path), "--fifo", str(fifo))
    assert status == 2 and "is not a FIFO" in err
    fifo.unlink()
    os.mkfifo(fifo)
    status, err = run_watch(capsys, str(tmp_path), "--fifo", str(fifo))  # must not hang
    assert status == 2 and f"nobody reads the FIFO {fifo}: is uWSGI running" in err


def test_watch_touch_folder_missing(capsys, tmp_path):
    status, err = run_watch(capsys, str(tmp_path), "--touch", str(tmp_path / "no" / "t"))
    assert status == 2 and "the folder" in err and "does not exist" in err


# --------------------------------------------------------------------------- actions


def test_touch_creates_then_moves_the_whole_second(tmp_path):
    target = tmp_path / "reload.touch"
    touch = actions.Touch(str(target))
    touch.run(Changes())
    first = target.stat().st_mtime
    touch.run(Changes())
    assert int(target.stat().st_mtime) > int(first)  # uWSGI compares whole seconds


def test_exec_gets_the_changed_paths_and_reports_failure(tmp_path):
    out = tmp_path / "out"
    changes = Changes(modified=frozenset({"/a.py", "/b.py"}))
    actions.Exec(f'printf "%s" "$UWSGI_RELOAD_CHANGED" > {out}').run(changes)
    assert out.read_text() == "/a.py\n/b.py"
    with pytest.raises(actions.ActionError, match="exited with status 3"):
        actions.Exec("exit 3").run(changes)


def test_fifo_write_reaches_the_reader(tmp_path):
    fifo = tmp_path / "f"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        assert actions.WriteFifo(str(fifo), "c").run(Changes()) == f"wrote 'c' to {fifo}"
        assert os.read(reader, 10) == b"c"
    finally:
        os.close(reader)


# --------------------------------------------------------------------------- the loop


class Stepper:
    """What `uwsgi-reload watch` does at each tick, with the action recorded."""

    def __init__(self, pipeline: Pipeline, acted: list, fail: list) -> None:
        self.pipeline = pipeline
        self.acted = acted
        self.fail = fail  # while true-ish, the action fails

    def step(self):
        decision = self.pipeline.tick()
        if decision.verdict is Verdict.RELOAD:
            self.acted.append(decision.changes)
            if not self.fail:
                self.pipeline.reloaded(decision)
        return decision


def make_watcher(folder: Path, fail: list | None = None) -> tuple[Stepper, list, list]:
    config = parse_config({"uwsgi-reload-delay": "0"}, str(folder))
    config = config._replace(include=(".",), track_modules=False)
    detector = Detector(config)
    detector.start()
    acted: list = []
    logged: list = []
    pipeline = Pipeline(detector, SyntaxGate(logged.append))
    return Stepper(pipeline, acted, fail if fail is not None else []), acted, logged


def test_a_failed_action_is_not_accepted_and_the_next_check_tries_again(tmp_path):
    write(tmp_path / "a.py", "A = 1\n")
    fail = [True]
    watcher, acted, _ = make_watcher(tmp_path, fail)
    watcher.step()
    write(tmp_path / "a.py", "A = 22\n")
    watcher.step()
    watcher.step()
    assert len(acted) == 2  # the action failed: the change is tried again
    fail.clear()
    watcher.step()
    watcher.step()
    assert len(acted) == 3  # it worked: accepted, no more


def test_loop_acts_once_per_change_and_holds_back_broken_code(tmp_path):
    write(tmp_path / "a.py", "A = 1\n")
    watcher, acted, logged = make_watcher(tmp_path)
    assert not watcher.step() and acted == []
    write(tmp_path / "a.py", "A = 22\n")
    watcher.step()
    assert [c.paths for c in acted] == [[str(tmp_path / "a.py")]]
    assert not watcher.step()  # the change became the baseline
    write(tmp_path / "a.py", "A = (\n")
    write(tmp_path / "b.txt", "x")
    watcher.step()
    watcher.step()
    assert len(acted) == 1
    assert [m for m in logged if "does not compile" in m] == [
        f"not reloading, this file does not compile: {tmp_path}/a.py:1: SyntaxError: "
        "'(' was never closed"
    ]
    write(tmp_path / "b.txt", "xy")  # another change while a.py is broken
    watcher.step()
    assert len(acted) == 1 and "waiting for a fix of" in logged[-1]
    write(tmp_path / "a.py", "A = 333\n")
    watcher.step()
    assert len(acted) == 2 and acted[-1].paths == [str(tmp_path / "a.py")]


def test_loop_survives_an_internal_error(tmp_path):
    logged: list = []
    stop = threading.Event()

    def boom() -> None:
        stop.set()
        raise RuntimeError("boom")

    run_loop(boom, stop, 0.01, logged.append)
    assert "internal error in the check" in logged[0] and "RuntimeError: boom" in logged[0]


# --------------------------------------------------------------------------- real servers

APP = """\
import greeting

def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [greeting.TEXT.encode()]
"""


def make_app(folder: Path) -> None:
    write(folder / "app.py", APP)
    write(folder / "greeting.py", "TEXT = 'v1'\n")


@pytest.fixture
def processes():
    """Start servers and watchers; every one is stopped at teardown (SIGINT)."""
    started: list[Server] = []

    def start(argv: list[str], cwd: Path, port: int | None = None) -> Server:
        # a watcher serves nothing: the port only names its log file
        server = Server(argv, cwd, port or free_port())
        started.append(server)
        return server

    yield start
    for server in reversed(started):
        server.stop()


def start_watcher(start, cwd: Path, *argv: str) -> Server:
    command = [str(BIN / "uwsgi-reload"), "watch", *argv, "--period", "0.2", "--delay", "0.1"]
    watcher = start(command, cwd)
    watcher.wait_for_log(r"uwsgi_reload: watching \d+ files")
    return watcher


def start_plain_uwsgi(start, cwd: Path, body: str) -> Server:
    """uWSGI without uwsgi_reload inside: the watcher is all there is."""
    port = free_port()
    ini = cwd / "uwsgi.ini"
    ini.write_text(plain_uwsgi_ini(port, f"wsgi-file = app.py\ndie-on-term = true\n{body}"))
    server = start([UWSGI, "--ini", str(ini)], cwd, port)
    server.wait_for_body("v1")
    return server


@pytest.mark.integration
def test_watch_reloads_uwsgi_through_its_pidfile(tmp_path, processes):
    make_app(tmp_path)
    server = start_plain_uwsgi(processes, tmp_path, "pidfile = uwsgi.pid\n")
    watcher = start_watcher(processes, tmp_path, "--pidfile", "uwsgi.pid")
    write(tmp_path / "greeting.py", "TEXT = 'v2'\n")
    server.wait_for_body("v2", timeout=10)
    watcher.wait_for_log(r"modified \S*greeting\.py -> send SIGHUP to the pid in ")
    watcher.wait_for_log(rf"sent SIGHUP to {server.proc.pid}")
    # a late second reload would come periods later: watch three (the period is 0.2 s)
    server.holds(lambda: server.count(r"binary reloading uWSGI") == 1, 1, "exactly one reload")


@pytest.mark.integration
def test_watch_started_before_the_server_waits_for_it(tmp_path, processes):
    make_app(tmp_path)
    command = [str(BIN / "uwsgi-reload"), "watch", "--pidfile", "uwsgi.pid", "--wait", "60"]
    watcher = processes([*command, "--period", "0.2", "--delay", "0.1"], tmp_path)
    watcher.wait_for_log(r"waiting up to 60s for the server: pidfile \S*uwsgi\.pid does not exist")
    server = start_plain_uwsgi(processes, tmp_path, "pidfile = uwsgi.pid\n")
    watcher.wait_for_log(r"the server is there")
    watcher.wait_for_log(r"uwsgi_reload: watching \d+ files")
    write(tmp_path / "greeting.py", "TEXT = 'v2'\n")
    server.wait_for_body("v2", timeout=10)
    watcher.wait_for_log(rf"sent SIGHUP to {server.proc.pid}")


@pytest.mark.integration
def test_watch_holds_back_broken_code_and_reloads_uwsgi_through_its_fifo(tmp_path, processes):
    make_app(tmp_path)
    server = start_plain_uwsgi(processes, tmp_path, "master-fifo = uwsgi.fifo\n")
    watcher = start_watcher(processes, tmp_path, "--fifo", "uwsgi.fifo")
    write(tmp_path / "greeting.py", "TEXT = ('v2'\n")
    watcher.wait_for_log(r"not reloading, this file does not compile: \S*greeting\.py:1:")
    assert "v1" in server.get()[1], server.explain("the old code must serve")
    write(tmp_path / "greeting.py", "TEXT = 'v3'\n")
    server.wait_for_body("v3", timeout=10)
    watcher.wait_for_log(r"wrote 'r' to \S*uwsgi\.fifo")
    server.wait_for_log(r"binary reloading uWSGI")
    watcher.holds(lambda: watcher.count(r"-> write") == 1, 1, "exactly one reload")


@pytest.mark.integration
def test_watch_reloads_gunicorn_through_its_pidfile(tmp_path, processes):
    make_app(tmp_path)
    port = free_port()
    argv = [
        str(BIN / "gunicorn"),
        "-w",
        "2",
        "-b",
        f"127.0.0.1:{port}",
        *gunicorn_control_socket_off(),
    ]
    server = processes([*argv, "--pid", "gunicorn.pid", "app:application"], tmp_path, port)
    server.wait_for_body("v1")
    server.wait_until((tmp_path / "gunicorn.pid").exists, 10, "gunicorn.pid")
    watcher = start_watcher(processes, tmp_path, "--pidfile", "gunicorn.pid")
    write(tmp_path / "greeting.py", "TEXT = 'v2'\n")
    server.wait_for_body("v2", timeout=10)
    watcher.wait_for_log(r"sent SIGHUP to \d+")
    # gunicorn rewrites its pidfile at the reload: that must not count as a change
    watcher.holds(lambda: watcher.count(r" -> send SIGHUP") == 1, 1, "exactly one reload")


# --------------------------------------------------------------------------- issue 11


def test_check_names_an_ini_include_cycle_fast(tmp_path):
    write(tmp_path / "self.ini", "[uwsgi]\n" + "ini = %p\n" * 4)
    write(tmp_path / "a.ini", "[uwsgi]\nini = %db.ini\n")
    write(tmp_path / "b.ini", "[uwsgi]\nmaster = true\nini = %da.ini\n")
    started = time.monotonic()
    status, out = run_check("--ini", str(tmp_path / "self.ini"))
    assert status == 2, out
    assert f"`ini =` includes form a cycle: {tmp_path}/self.ini -> {tmp_path}/self.ini" in out
    status, out = run_check("--ini", str(tmp_path / "a.ini"))
    assert status == 2, out
    assert f"cycle: {tmp_path}/a.ini -> {tmp_path}/b.ini -> {tmp_path}/a.ini" in out
    assert time.monotonic() - started < 2


def test_check_caps_includes_that_multiply(tmp_path):
    for level in range(6):  # no cycle, but 4**6 reads
        write(tmp_path / f"{level}.ini", "[uwsgi]\n" + f"ini = %d{level + 1}.ini\n" * 4)
    write(tmp_path / "6.ini", "[uwsgi]\nmaster = true\n")
    status, out = run_check("--ini", str(tmp_path / "0.ini"))
    assert status == 2 and "more than 200 `ini =` includes" in out, out


@pytest.mark.parametrize(
    "content",
    [b"99999999999999999999\n", b"\x00\xff\xfe junk \x80", b"", b"1" * 10_000_000, b"0\n"],
    ids=["huge-number", "binary", "empty", "huge-file", "zero"],
)
def test_watch_pidfile_content_never_gives_a_traceback(capsys, tmp_path, content):
    pidfile = tmp_path / "app.pid"
    pidfile.write_bytes(content)
    status, err = run_watch(capsys, str(tmp_path), "--pidfile", str(pidfile))
    assert status == 2, err
    assert f"pidfile {pidfile} holds" in err and "not a process id" in err, err
    assert "Traceback" not in err and len(err) < 1000


def test_watch_refuses_a_stale_pidfile_naming_another_program(capsys, tmp_path):
    pidfile = tmp_path / "app.pid"
    victim = subprocess.Popen(["sleep", "30"])
    try:
        deadline = time.monotonic() + 5
        while b"sleep" not in Path(f"/proc/{victim.pid}/cmdline").read_bytes():
            assert time.monotonic() < deadline, "sleep did not exec"  # forked, not exec'd yet
            time.sleep(0.01)
        pidfile.write_text(f"{victim.pid}\n")
        status, err = run_watch(capsys, str(tmp_path), "--pidfile", str(pidfile))
        assert status == 2
        assert f"process {victim.pid} (from pidfile {pidfile}) is `sleep 30`, not uWSGI" in err
        assert victim.poll() is None, "the unrelated process was signalled"
    finally:
        victim.kill()
        victim.wait()


def test_watch_refuses_a_server_started_after_the_pidfile_was_written(capsys, tmp_path):
    pidfile = tmp_path / "app.pid"
    # a process that looks like uWSGI, but started long after the pidfile was written
    imposter = subprocess.Popen(["bash", "-c", "exec -a uwsgi sleep 30"])
    try:
        pidfile.write_text(f"{imposter.pid}\n")
        an_hour_ago = time.time() - 3600
        os.utime(pidfile, (an_hour_ago, an_hour_ago))
        deadline = time.monotonic() + 5
        # bash's own command line names uwsgi too (in its -c text): wait for the exec
        while not Path(f"/proc/{imposter.pid}/cmdline").read_bytes().startswith(b"uwsgi\0"):
            assert time.monotonic() < deadline, "bash did not exec"
            time.sleep(0.01)
        status, err = run_watch(capsys, str(tmp_path), "--pidfile", str(pidfile))
        assert status == 2, err
        assert f"process {imposter.pid} (from pidfile {pidfile}) started at" in err
        assert "after the pidfile was written" in err and "pid was reused" in err
        assert imposter.poll() is None
    finally:
        imposter.kill()
        imposter.wait()


def test_exec_variable_is_capped_and_the_file_has_every_path(tmp_path):
    paths = [f"/srv/app/pkg/module_{n:05d}.py" for n in range(2500)]
    text = actions.changed_variable(paths)
    lines = text.split("\n")
    assert lines[:100] == paths[:100] and len(lines) == 101
    assert lines[100] == "... and 2400 more (all in $UWSGI_RELOAD_CHANGED_FILE)"
    out = tmp_path / "out"
    command = f'cp "$UWSGI_RELOAD_CHANGED_FILE" {out}; ls -l "$UWSGI_RELOAD_CHANGED_FILE" >> {out}'
    actions.Exec(command).run(Changes(added=frozenset(paths)))
    listed = out.read_text().splitlines()
    assert listed[:-1] == paths and listed[-1].startswith("-rw------- ")


def test_exec_timeout_kills_the_command_group(tmp_path):
    started = time.monotonic()
    with pytest.raises(actions.ActionError, match=r"still ran after 0.3s \(--exec-timeout\)"):
        actions.Exec(f"sleep 30 & echo $! > {tmp_path}/bg; wait", timeout=0.3).run(Changes())
    assert time.monotonic() - started < 5
    background = int((tmp_path / "bg").read_text())
    assert (
        not Path(f"/proc/{background}").exists()
        or "Z" in Path(f"/proc/{background}/stat").read_text().rsplit(")", 1)[1].split()[0]
    ), "the command's background child still runs"


@pytest.mark.integration
def test_watch_exec_with_2500_changed_files(tmp_path, processes):
    (tmp_path / "src").mkdir()
    out = tmp_path / "out"
    command = (
        f'printf "%s" "$UWSGI_RELOAD_CHANGED" > {out}.var; cp "$UWSGI_RELOAD_CHANGED_FILE" {out}'
    )
    watcher = start_watcher(processes, tmp_path, "src", "--exec", command)
    staging = tmp_path / "staging"
    staging.mkdir()
    for n in range(2500):
        (staging / f"generated_module_number_{n:05d}.txt").write_text("x")
    staging.rename(tmp_path / "src" / "generated")  # 2,500 new files in one step
    watcher.wait_until(
        lambda: out.exists() and len(out.read_text().splitlines()) >= 2500, 30, "every path"
    )
    variable = Path(f"{out}.var").read_text().split("\n")
    assert len(variable) == 101 and variable[-1].startswith("... and 2400 more"), variable[-3:]
    assert "Argument list too long" not in watcher.log(), watcher.explain("E2BIG")
    watcher.wait_for_log(r"exited with status 0")


@pytest.mark.integration
def test_watch_exec_that_failed_is_tried_again_at_the_next_check(tmp_path, processes):
    write(tmp_path / "a.py", "A = 1\n")
    command = (
        'if [ -e tried ]; then printf "%s" "$UWSGI_RELOAD_CHANGED" > told; '
        "else touch tried; exit 3; fi"
    )
    watcher = start_watcher(processes, tmp_path, "a.py", "--exec", command)
    write(tmp_path / "a.py", "A = 2\n")
    watcher.wait_for_log(r"exited with status 3; watching on")
    watcher.wait_until((tmp_path / "told").exists, 10, "a second try without another save")
    assert (tmp_path / "told").read_text() == str(tmp_path / "a.py")
    # the command wrote `told` before it exited: its status is logged after
    watcher.wait_for_log(r"exited with status 0 \(tried again: modified \S*a\.py\)")
    watcher.holds(lambda: watcher.count(r"exited with status 0") == 1, 1.0, "acted once")
    assert watcher.count(r"ERROR") == 1, watcher.explain("one failure, logged once")


@pytest.mark.integration
def test_watch_retries_a_failing_action_logging_the_error_once(tmp_path, processes):
    write(tmp_path / "a.py", "A = 1\n")
    watcher = start_watcher(processes, tmp_path, "a.py", "--exec", "echo x >> tries; exit 4")
    write(tmp_path / "a.py", "A = 2\n")
    watcher.wait_until(
        lambda: (tmp_path / "tries").exists() and len((tmp_path / "tries").read_text()) >= 8,
        10,
        "four tries",
    )
    assert watcher.count(r"ERROR: `echo x >> tries; exit 4` exited with status 4") == 1, (
        watcher.explain("the same error is logged once")
    )
    assert watcher.count(r"modified \S*a\.py -> run") == 1


@pytest.mark.integration
def test_watch_stops_within_a_second_of_sigterm_while_exec_runs(tmp_path, processes):
    write(tmp_path / "a.py", "A = 1\n")
    command = "echo $$ > child.pid; exec sleep 30"
    watcher = start_watcher(processes, tmp_path, "a.py", "--exec", command)
    write(tmp_path / "a.py", "A = 2\n")
    watcher.wait_until(
        lambda: (tmp_path / "child.pid").exists() and (tmp_path / "child.pid").read_text(),
        10,
        "the command to start",
    )
    child = int((tmp_path / "child.pid").read_text())
    started = time.monotonic()
    watcher.proc.send_signal(signal.SIGTERM)
    assert watcher.wait_exit(5) == 0
    took = time.monotonic() - started
    assert took < 1.0, watcher.explain(f"the watcher took {took:.2f}s to stop")
    assert not Path(f"/proc/{child}").exists(), "the command still runs"
    assert "sent SIGTERM to `echo $$ > child.pid; exec sleep 30`" in watcher.log()
    assert "killed by SIGTERM" in watcher.log(), watcher.explain("forwarded")
