"""gunicorn with ``-c python:uwsgi_reload.gunicorn``: settings from the environment
(pure tests), and real gunicorn with two workers on a random port (integration)."""

from __future__ import annotations

from pathlib import Path

import pytest
from gunicorn.config import Config as GunicornConfig
from servers import BIN, Server, gunicorn_control_socket_off, start_on_free_port, write

from uwsgi_reload.core.config import ConfigError, parse_config
from uwsgi_reload.hosts.gunicorn import settings as hooks

READY = r"uwsgi_reload: reloading on: mode graceful \(HUP\)"

APP = """\
import os, time
import greeting

def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    if environ["PATH_INFO"] == "/late":
        import late  # first imported while serving, by one worker only
        return [late.TEXT.encode()]
    if environ.get("QUERY_STRING", "").startswith("sleep="):
        time.sleep(float(environ["QUERY_STRING"][6:]))  # requests at once: other workers
    return [f"{greeting.TEXT} pid={os.getpid()}".encode()]
"""

NO_CONTROL_SOCKET = gunicorn_control_socket_off()


def make_app(folder: Path, text: str = "v1") -> None:
    write(folder / "app.py", APP)
    write(folder / "greeting.py", f"TEXT = {text!r}\n")


def start_gunicorn(
    cwd: Path, *extra: str, env: dict | None = None, app: str | None = "app:app"
) -> Server:

    def start(port: int) -> Server:
        argv = [
            str(BIN / "gunicorn"),
            "-c",
            "python:uwsgi_reload.gunicorn",
            "-w",
            "2",
            "-b",
            f"127.0.0.1:{port}",
            *NO_CONTROL_SOCKET,
            *extra,
            *([app] if app else []),
        ]
        return Server(argv, cwd, port, {"UWSGI_RELOAD_DELAY": "0.1", **(env or {})})

    return start_on_free_port(start, r"Listening at: http://127\.0\.0\.1:\d+")


@pytest.fixture
def gunicorn(tmp_path: Path):
    started: list[Server] = []

    def start(*extra: str, env: dict | None = None) -> Server:
        server = start_gunicorn(tmp_path, *extra, env=env)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


# --------------------------------------------------------------------------- pure


def test_variables_map_to_keys_and_others_are_left_alone():
    env = {
        "UWSGI_RELOAD_PERIOD": "2",
        "UWSGI_RELOAD_MAX_DELAY": "3",
        "UWSGI_RELOAD_STATE_DIR": "/tmp/x",  # read by uwsgi_reload.state, not a setting
        "UWSGI_RELOAD_CHANGED": "a.py",  # set by `uwsgi-reload watch --exec`
        "PATH": "/bin",
    }
    assert hooks.options_from_env(env) == {
        "uwsgi-reload-period": "2",
        "uwsgi-reload-max-delay": "3",
    }
    assert hooks.env_name("uwsgi-reload-check-syntax") == "UWSGI_RELOAD_CHECK_SYNTAX"


def test_bad_values_give_the_uwsgi_messages_naming_the_variables(tmp_path):
    with pytest.raises(ConfigError) as ini_error:
        parse_config({"uwsgi-reload-period": "0.5", "uwsgi-reload-delay": "x"}, str(tmp_path))
    with pytest.raises(ConfigError) as env_error:
        hooks.config_from_env(
            {"UWSGI_RELOAD_PERIOD": "0.5", "UWSGI_RELOAD_DELAY": "x"}, str(tmp_path)
        )
    expected = [
        p.replace("uwsgi-reload-period", "UWSGI_RELOAD_PERIOD").replace(
            "uwsgi-reload-delay", "UWSGI_RELOAD_DELAY"
        )
        for p in ini_error.value.problems
    ]
    assert env_error.value.problems == expected
    assert "UWSGI_RELOAD_PERIOD = '0.5' is not allowed: expected a whole number" in expected[0]


def test_unknown_variable_suggests_the_known_one(tmp_path):
    with pytest.raises(ConfigError) as error:
        hooks.config_from_env({"UWSGI_RELOAD_PERIDO": "2"}, str(tmp_path))
    assert "UWSGI_RELOAD_PERIDO is not a known key (did you mean UWSGI_RELOAD_PERIOD?)" in str(
        error.value
    )


def test_uwsgi_only_settings_and_missing_includes_are_refused(tmp_path):
    env = {
        "UWSGI_RELOAD_MODE": "chain",
        "UWSGI_RELOAD_FIFO": "/tmp/f",
        "UWSGI_RELOAD_INCLUDE": "templates",
    }
    with pytest.raises(ConfigError) as error:
        hooks.config_from_env(env, str(tmp_path))
    text = "\n".join(error.value.problems)
    assert "UWSGI_RELOAD_MODE = 'chain' is not allowed under gunicorn: expected graceful" in text
    assert "UWSGI_RELOAD_FIFO names a uWSGI master FIFO" in text
    assert "UWSGI_RELOAD_INCLUDE names 'templates', which does not exist" in text
    assert len(error.value.problems) == 3, text


def test_defaults_and_good_values(tmp_path):
    (tmp_path / "templates").mkdir()
    config = hooks.config_from_env(
        {"UWSGI_RELOAD_PERIOD": "2", "UWSGI_RELOAD_INCLUDE": "templates"}, str(tmp_path)
    )
    assert (config.period, config.include, config.mode) == (2, ("templates",), "graceful")
    assert hooks.config_from_env({}, str(tmp_path)).period == 1


def test_module_sets_no_gunicorn_setting_but_its_hooks():
    """gunicorn applies every global of a config module named like one of its settings."""
    import uwsgi_reload.gunicorn as config_module
    import uwsgi_reload.hosts.gunicorn as host

    for module in (config_module, host):
        names = set(vars(module)) & set(GunicornConfig().settings)
        assert names == {"on_starting", "when_ready"}, module


# --------------------------------------------------------------------------- integration


@pytest.mark.integration
def test_edit_gives_new_code_in_every_worker(tmp_path, gunicorn):
    make_app(tmp_path)
    server = gunicorn()
    line = server.wait_for_log(READY + r".*").group(0)
    assert "period 1s" in line, line
    server.wait_for_body("v1")
    write(tmp_path / "greeting.py", "TEXT = 'v2'\n")
    took = server.wait_every_worker("v2", timeout=10)
    server.wait_for_log(r"uwsgi_reload: modified .*greeting\.py -> graceful reload \(HUP\)")
    assert took < 5, server.explain(f"new code after {took:.1f}s")
    # a second reload would come a period or more later: watch three periods
    server.holds(lambda: server.count(r"-> graceful reload") == 1, 3, "exactly one reload")


@pytest.mark.integration
def test_module_first_imported_by_a_worker_while_serving(tmp_path, gunicorn):
    """The arbiter never imports `late`: only the journal of the workers tracks it."""
    make_app(tmp_path)
    write(tmp_path / "late.py", "TEXT = 'late-v1'\n")
    server = gunicorn()
    server.wait_for_log(READY)
    server.wait_for_body("late-v1", path="/late")
    write(tmp_path / "late.py", "TEXT = 'late-v2'\n")
    server.wait_for_body("late-v2", path="/late", timeout=10)
    server.wait_for_log(r"modified \S*late\.py -> graceful reload")


@pytest.mark.integration
def test_syntax_error_keeps_serving_until_fixed(tmp_path, gunicorn):
    make_app(tmp_path)
    server = gunicorn()
    server.wait_for_log(READY)
    server.wait_for_body("v1")
    write(tmp_path / "greeting.py", "TEXT = ('v2'\n")
    server.wait_for_log(r"not reloading, this file does not compile: \S*greeting\.py:1: ")
    server.wait_every_worker("v1", timeout=5)  # the old code serves on, in every worker
    server.holds(  # over more checks
        lambda: server.count(r"does not compile") == 1 and server.count(r"graceful reload") == 0,
        1.5,
        "the refusal logged once per change, and no reload",
    )
    write(tmp_path / "greeting.py", "TEXT = 'v3'\n")
    server.wait_every_worker("v3", timeout=10)


@pytest.mark.integration
def test_import_error_keeps_gunicorn_running_and_a_fix_reloads(tmp_path, gunicorn):
    """Without us gunicorn stops when a new worker cannot import the app."""
    make_app(tmp_path)
    server = gunicorn()
    server.wait_for_log(READY)
    server.wait_for_body("v1")
    write(tmp_path / "greeting.py", "TEXT = undefined_name\n")
    server.wait_until(lambda: server.get()[0] == 500, 10, "a 500 from the failed load")
    assert "NameError: name 'undefined_name' is not defined" in server.last[1], server.explain("")
    server.wait_for_log(r"uwsgi_reload: the app failed to load in worker")
    write(tmp_path / "greeting.py", "TEXT = 'fixed'\n")
    server.wait_every_worker("fixed", timeout=10)


@pytest.mark.integration
def test_bad_settings_stop_gunicorn_with_every_reason(tmp_path, gunicorn):
    make_app(tmp_path)
    server = gunicorn(
        "--preload", "-e", "UWSGI_RELOAD_MODE=chain", env={"UWSGI_RELOAD_PERIOD": "0.5"}
    )
    status = server.wait_exit()
    log = server.log()
    assert status == 1, server.explain(f"exit status {status}")
    for reason in (
        r"ERROR: UWSGI_RELOAD_PERIOD = '0.5' is not allowed: expected a whole number",
        r"ERROR: UWSGI_RELOAD_MODE = 'chain' is not allowed under gunicorn",  # from -e
        r"ERROR: uwsgi_reload cannot reload gunicorn with preload_app on",
        r"ERROR: gunicorn stops here",
    ):
        assert reason in log, server.explain(f"missing {reason!r}")
    assert "Booting worker" not in log, server.explain("workers started")
