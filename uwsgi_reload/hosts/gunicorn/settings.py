"""gunicorn settings: the ``uwsgi-reload-*`` keys of the ini, as environment variables:
``uwsgi-reload-period`` is ``UWSGI_RELOAD_PERIOD``, ``uwsgi-reload-max-delay`` is
``UWSGI_RELOAD_MAX_DELAY``, and so on. gunicorn's ``-e NAME=VALUE`` (``raw_env``)
works too. They are read once, when gunicorn starts, and validated with the
messages uWSGI gives (naming the variable): a bad value stops gunicorn. The period
is whole seconds here too, so that one setting means the same under both servers.
``uwsgi-reload-mode`` can only be ``graceful`` (gunicorn has one reload: HUP starts
new workers, then stops the old ones gracefully) and ``uwsgi-reload-fifo`` does not
apply.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Any, NoReturn

from uwsgi_reload.core.config import (
    MODES,
    PREFIX,
    Config,
    ConfigError,
    check_includes,
    parse_config,
)

ENV_PREFIX = "UWSGI_RELOAD_"
# variables with the prefix that are not settings
NOT_SETTINGS = frozenset({"UWSGI_RELOAD_STATE_DIR"})

_config: Config | None = None


def env_name(option: str) -> str:
    """``uwsgi-reload-max-delay`` -> ``UWSGI_RELOAD_MAX_DELAY``."""
    return ENV_PREFIX + option.removeprefix(PREFIX).upper().replace("-", "_")


def options_from_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The ``uwsgi-reload-*`` options the ``UWSGI_RELOAD_*`` variables set."""
    return {
        PREFIX + name[len(ENV_PREFIX) :].lower().replace("_", "-"): value
        for name, value in environ.items()
        if name.startswith(ENV_PREFIX)
        and name not in NOT_SETTINGS
        and not name.startswith("UWSGI_RELOAD_CHANGED")  # what `watch --exec` passes on
    }


def config_from_env(environ: Mapping[str, str], base_dir: str) -> Config:
    """Parse and check the settings; :class:`ConfigError` lists every problem, in the
    words uWSGI uses for the ini keys but naming the environment variables."""
    options = options_from_env(environ)
    problems = []
    mode = options.get(PREFIX + "mode", "").strip().lower()
    if mode in MODES and mode != "graceful":
        problems.append(
            f"{env_name('mode')} = {mode!r} is not allowed under gunicorn: expected "
            "graceful (gunicorn has one reload, HUP: new workers start, then the old ones "
            "stop; chain and workers are uWSGI modes)"
        )
    if options.get(PREFIX + "fifo", "").strip():
        problems.append(
            f"{env_name('fifo')} names a uWSGI master FIFO; gunicorn has none: remove it"
        )
    try:
        config = parse_config(options, base_dir)
    except ConfigError as error:
        raise ConfigError(error.spelled(env_name) + problems) from None
    problems += [problem.spelled(env_name) for problem in check_includes(config)]
    if problems:
        raise ConfigError(problems)
    return config


def _gunicorn_problems(server: Any) -> list[str]:
    if server.cfg.preload_app:
        return [
            "uwsgi_reload cannot reload gunicorn with preload_app on: the arbiter holds the "
            "app's code and forks every new worker from it, so a reload (HUP) would serve "
            "the old code again. Turn preload_app (--preload) off while developing"
        ]
    return []


def load(server: Any) -> Config:
    """The settings, read once; a problem stops gunicorn with the reasons in its log."""
    global _config
    if _config is None:
        problems = _gunicorn_problems(server)
        try:
            config = config_from_env(os.environ, os.getcwd())
        except ConfigError as error:
            problems = error.problems + problems
        if problems:
            _stop(server, problems)
        _config = config
    return _config


def _stop(server: Any, problems: list[str]) -> NoReturn:
    for problem in problems:
        server.log.error("uwsgi_reload: ERROR: %s", problem)
    server.log.error(
        "uwsgi_reload: ERROR: gunicorn stops here so that this cannot be missed. Fix the "
        "setting, or remove uwsgi_reload's hooks from the gunicorn config to run without "
        "reloading."
    )
    if getattr(server, "pidfile", None) is not None:
        server.pidfile.unlink()
    sys.exit(1)
