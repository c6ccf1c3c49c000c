"""`import = uwsgi_reload` followed by other import lines: uWSGI's `uwsgi.opt` keeps only
the last value of a repeated option, yet reloading must be on (measured on uWSGI 2.0.31:
before the fix it was silently off)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from servers import (
    APP,
    READY,
    UWSGI,
    UWSGI_BOUND,
    Server,
    make_app,
    plain_uwsgi_ini,
    start_on_free_port,
    write,
)

from uwsgi_reload.core.config import parse_config
from uwsgi_reload.hosts.uwsgi import import_lines, options

# a module of the test's own project, imported by an `import =` line after ours
TASKS = "import sys\nprint('tasks module imported', file=sys.stderr, flush=True)\n"


def saved_app_is_served(server: Server, folder: Path) -> None:
    server.wait_for_log("tasks module imported")
    server.wait_for_log(READY, timeout=20)
    server.wait_for_body("v1")
    write(folder / "greeting.py", "TEXT = 'v2'\n")
    server.wait_for_body("v2", timeout=15)
    server.wait_for_log(r"uwsgi_reload: modified .*greeting\.py -> graceful reload")


def ini_file(folder: Path, body: str) -> str:
    path = folder / "uwsgi.ini"
    path.write_text("[uwsgi]\nmaster = true\nwsgi-file = app.py\n" + body)
    return str(path)


def test_cmdline_gives_every_import_and_ini():
    found, others = import_lines.cmdline_imports(
        [
            "/venv/bin/uwsgi",
            "--master",
            "app.ini",
            "--import",
            "uwsgi_reload",
            "--import=tasks",
            "--shared-import",
            "warmed",
            "--ini=more.ini:dev",
            "--wsgi-file",
            "app.py",
            "--yaml",
            "extra.yml",
            "--set-ph",
            "name=value.ini",
            "--import",
        ]
    )
    assert found == {
        "ini": ["app.ini", "more.ini:dev"],
        "import": ["uwsgi_reload", "tasks"],
        "shared-import": ["warmed"],
    }
    assert others == ["--yaml extra.yml"]


def test_cmdline_of_pyuwsgi_starts_with_the_interpreter():
    found, _ = import_lines.cmdline_imports(
        ["/venv/bin/python", "/venv/bin/uwsgi", "--ini", "a.ini", "--pyimport", "uwsgi_reload"]
    )
    assert found == {"ini": ["a.ini"], "pyimport": ["uwsgi_reload"]}


def test_an_earlier_import_line_of_the_ini_is_found(tmp_path):
    ini = ini_file(tmp_path, "import = uwsgi_reload\nimport = tasks\n")
    opt = {"ini": ini.encode(), "import": b"tasks"}  # as uwsgi.opt has it
    assert not options.requested(opt)
    lines = import_lines.every_import_line(opt, ["uwsgi", "--ini", ini], environ={})
    assert options.requested(lines.options)
    assert options.option_values(lines.options, "import") == ["tasks", "uwsgi_reload", "tasks"]
    assert lines.unread == [] and lines.warning() is None


def test_an_earlier_import_on_the_command_line_is_found():
    opt = {"import": b"tasks"}
    argv = ["uwsgi", "--http-socket", ":0", "--import", "uwsgi_reload", "--import=tasks"]
    assert options.requested(import_lines.every_import_line(opt, argv, environ={}).options)


def test_an_import_from_the_environment_is_found():
    opt = {"import": b"tasks"}
    lines = import_lines.every_import_line(opt, ["uwsgi"], environ={"UWSGI_IMPORT": "uwsgi_reload"})
    assert options.requested(lines.options)


def test_a_single_import_line_reads_nothing():
    def no_read(spec: str):
        raise AssertionError(f"read {spec}")

    for opt in ({"import": b"uwsgi_reload", "ini": b"x.ini"}, {"ini": b"x.ini"}):
        lines = import_lines.every_import_line(opt, None, environ={}, read_ini=no_read)
        assert lines.options == opt and lines.unread == []
    assert not options.imports_hidden({"shared-import": [b"tasks", b"uwsgi_reload"]})


def test_other_imports_only_is_not_us_and_says_nothing(tmp_path):
    """An app that imports uwsgi_reload from its own code: nothing starts, no warning."""
    ini = ini_file(tmp_path, "import = tasks\nimport = more_tasks\n")
    opt = {"ini": ini.encode(), "import": b"more_tasks"}
    lines = import_lines.every_import_line(opt, ["uwsgi", "--ini", ini], environ={})
    assert not options.requested(lines.options)
    assert lines.warning() is None


def test_an_unreadable_source_is_a_warning_and_reloading_stays_off(tmp_path):
    missing = str(tmp_path / "gone.ini")
    opt = {"ini": missing.encode(), "import": b"tasks"}
    lines = import_lines.every_import_line(opt, None, environ={})
    assert not options.requested(lines.options)
    warning = lines.warning()
    assert warning.startswith("WARNING: reloading is OFF"), warning
    assert "`import = tasks`" in warning and "gone.ini" in warning, warning
    assert "the command line (/proc/self/cmdline)" in warning, warning
    assert "Put `import = uwsgi_reload` after your other import lines" in warning


def test_a_config_in_another_format_is_named_when_not_found(tmp_path):
    ini = ini_file(tmp_path, "import = tasks\nyaml = more.yml\n")
    opt = {"ini": ini.encode(), "import": b"tasks"}
    lines = import_lines.every_import_line(
        opt, ["uwsgi", "--ini", ini, "--json=x.json"], environ={}
    )
    assert lines.unread == [
        "--json x.json (only ini files are read)",
        "`yaml = more.yml` loads more options, which are not read here",
    ]


def test_the_command_line_of_a_renamed_worker_is_not_read():
    assert import_lines.own_cmdline({"auto-procname": True}, in_worker=True) is None
    argv = import_lines.own_cmdline({"auto-procname": True}, in_worker=False)
    assert argv and "python" in Path(argv[0]).name, argv


def test_warm_mode_sees_an_earlier_shared_import_line(tmp_path):
    ini = ini_file(
        tmp_path,
        "lazy-apps = true\nmaster-fifo = fifo\nuwsgi-reload-mode = warm\n"
        "shared-import = uwsgi_reload\nshared-import = tasks\n",
    )
    opt = {"ini": ini.encode(), "shared-import": b"tasks", "lazy-apps": b"true"}
    opt |= {"master": b"true", "master-fifo": b"fifo", "uwsgi-reload-mode": b"warm"}
    lines = import_lines.every_import_line(opt, ["uwsgi", "--ini", ini], environ={})
    assert options.imported_by_master(lines.options)
    config = parse_config(lines.options, str(tmp_path))
    assert options.check_uwsgi_options(config, lines.options) == []


@pytest.mark.integration
def test_a_second_import_line_in_the_ini_keeps_reloading_on(tmp_path, uwsgi_server):
    make_app(tmp_path)
    write(tmp_path / "tasks.py", TASKS)
    # the fixture's ini has `import = uwsgi_reload` first; this line comes after it
    server = uwsgi_server("wsgi-file = app.py\nimport = tasks\n")
    saved_app_is_served(server, tmp_path)


@pytest.fixture
def plain_uwsgi(tmp_path: Path) -> Iterator:
    """uWSGI with an ini without our import line and ``args`` after ``--ini``; every
    server started is stopped at teardown. ``relative``: ``--ini`` names the file
    relative to tmp_path, where uWSGI starts, and ``$PWD`` is elsewhere."""
    started: list[Server] = []

    def start(body: str, args: list[str], relative: bool = False) -> Server:
        def on_port(port: int) -> Server:
            ini = tmp_path / f"plain-{port}.ini"
            ini.write_text(plain_uwsgi_ini(port, "uwsgi-reload-delay = 0.1\n" + body))
            argv = [UWSGI, "--ini", ini.name if relative else str(ini), *args]
            return Server(argv, tmp_path, port, env={"PWD": "/"} if relative else None)

        server = start_on_free_port(on_port, UWSGI_BOUND)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.mark.integration
def test_a_second_import_on_the_command_line_keeps_reloading_on(tmp_path, plain_uwsgi):
    make_app(tmp_path)
    write(tmp_path / "tasks.py", TASKS)
    server = plain_uwsgi("wsgi-file = app.py\n", ["--import", "uwsgi_reload", "--import=tasks"])
    saved_app_is_served(server, tmp_path)


@pytest.mark.integration
def test_a_second_shared_import_line_keeps_reloading_on(tmp_path, plain_uwsgi):
    make_app(tmp_path)
    write(tmp_path / "tasks.py", TASKS)
    server = plain_uwsgi(
        "wsgi-file = app.py\nshared-import = uwsgi_reload\nshared-import = tasks\n", []
    )
    saved_app_is_served(server, tmp_path)


@pytest.mark.integration
def test_an_ini_that_cannot_be_read_again_is_a_loud_warning(tmp_path, plain_uwsgi):
    """`chdir` moved uWSGI away from the relative `--ini` it read (and $PWD does not
    lead back): whether its hidden first line imported us cannot be told, so reloading
    stays off and the log says why (never a start on a guess)."""
    make_app(tmp_path / "site")
    write(tmp_path / "site" / "tasks.py", TASKS)
    server = plain_uwsgi(
        "chdir = site\nwsgi-file = app.py\nimport = uwsgi_reload\nimport = tasks\n",
        [],
        relative=True,
    )
    server.wait_for_body("v1")
    line = server.wait_for_log(r"uwsgi_reload: WARNING: reloading is OFF: .*").group(0)
    assert "(`import = tasks`)" in line and "the ini plain-" in line, line
    assert "Put `import = uwsgi_reload` after your other import lines" in line, line
    server.holds(lambda: server.count(READY) == 0, 2.5, "reloading stays off")


@pytest.mark.integration
def test_the_app_importing_us_beside_other_import_lines_starts_nothing(tmp_path, plain_uwsgi):
    """Importing uwsgi_reload from the app's own code starts nothing (documented), also
    when the ini's import lines make the server read them all again; nothing is logged."""
    make_app(tmp_path)
    write(tmp_path / "app.py", "import uwsgi_reload  # noqa: F401\n" + APP)
    write(tmp_path / "tasks.py", TASKS)
    write(tmp_path / "more_tasks.py", "")
    server = plain_uwsgi("wsgi-file = app.py\nimport = tasks\nimport = more_tasks\n", [])
    server.wait_for_body("v1")
    server.holds(lambda: "uwsgi_reload:" not in server.log(), 2.5, "no line of ours")
