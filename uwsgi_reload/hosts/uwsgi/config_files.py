"""The configuration files uWSGI read at start: tracked like the app's code (a reload
re-executes the master, which reads them again), and checked before a reload so that a
bad edit keeps the server serving, like a SyntaxError does."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from uwsgi_reload.core.config import PREFIX, ConfigError, RawValue, parse_config
from uwsgi_reload.hosts.uwsgi.ini import read_uwsgi_ini
from uwsgi_reload.hosts.uwsgi.options import check_uwsgi_options, option_values


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else value


def config_files(magic: Mapping[bytes, bytes], opt: Mapping[str, RawValue]) -> list[str]:
    """The main config file (uWSGI's ``%P``) and the ``ini =`` files it included,
    absolute (relative ones are relative to the folder uWSGI started in, ``%v``)."""
    start_dir = _text(magic.get(b"v", b"")) or os.getcwd()
    main = _text(magic.get(b"P", b""))
    files = [main] if main else []
    for value in option_values(opt, "ini"):
        path = value.split(":", 1)[0] if not os.path.exists(value) else value
        files.append(os.path.normpath(os.path.join(start_dir, path)))
    return [f for f in dict.fromkeys(files) if f.endswith(".ini") and os.path.isfile(f)]


def ini_problem(main_ini: str, files: list[str], base_dir: str) -> str | None:
    """``file:line: problem`` when uWSGI would not start (or uwsgi_reload would stop it)
    with this ini as it is now; None when it would."""
    try:
        ini = read_uwsgi_ini(main_ini)
    except OSError as error:
        return f"{error.filename or main_ini}:0: cannot be read: {error.strerror}"
    except (ValueError, RecursionError) as error:
        return f"{main_ini}:0: {error}"
    try:
        config = parse_config(ini.options, base_dir)
        # the running server has a master, however it was asked for
        problems = check_uwsgi_options(config, {**ini.options, "master": "true"})
    except ConfigError as error:
        problems = error.issues
    if not problems:
        return None
    first = problems[0]
    key = re.search(r"\{([a-z][a-z-]*)\}", first.message)
    where = _line_of(PREFIX + key.group(1), files) if key else (main_ini, 0)
    return f"{where[0]}:{where[1]}: {first.spelled()}"


def _line_of(option: str, files: list[str]) -> tuple[str, int]:
    """The last line that sets ``option`` (the one uWSGI keeps), or the main file."""
    found = (files[0] if files else "?", 0)
    for path in files:
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                for number, line in enumerate(f, 1):
                    if line.split("=", 1)[0].strip() == option:
                        found = (path, number)
        except OSError:
            continue
    return found
