"""Reading uWSGI's options: is ``uwsgi_reload`` imported, which files are the app's
entry points, and do the options around us fit our configuration. Pure: takes
``uwsgi.opt`` inside the server, or a parsed ini for ``uwsgi-reload check``."""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Callable, Iterable, Mapping

from uwsgi_reload.core import sources
from uwsgi_reload.core.config import (
    FALSE_WORDS,
    MERGED_KEYS,
    PREFIX,
    Config,
    ConfigError,
    Problem,
    RawValue,
    check_includes,
    option_text,
    parse_config,
)
from uwsgi_reload.core.entrypoints import module_path
from uwsgi_reload.hosts.uwsgi.ini import UwsgiIni, read_uwsgi_ini, split_spec

# uWSGI options that import a Python module: `import = uwsgi_reload` or a sibling
IMPORT_OPTIONS = (
    "import",
    "pyimport",
    "py-import",
    "python-import",
    "shared-import",
    "shared-pyimport",
    "shared-py-import",
    "shared-python-import",
)


FILE_OPTIONS = ("wsgi-file", "file", "eval-file")
MODULE_OPTIONS = ("module", "wsgi")


def option_values(options: Mapping[str, RawValue], name: str) -> list[str]:
    """Every value of a uWSGI option that may be repeated (``import``, ``mount``), as
    text; none for a missing option or a bare flag."""
    value = options.get(name)
    if value is None or value is True:
        return []
    values = value if isinstance(value, list) else [value]
    return [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in values]


def _flag(options: Mapping[str, RawValue], *names: str) -> bool:
    for name in names:
        value = options.get(name)
        if value is not None and option_text(value).lower() not in ("", *FALSE_WORDS):
            return True
    return False


def requested(options: Mapping[str, RawValue]) -> bool:
    """True when the options import us (``import = uwsgi_reload`` or a sibling)."""
    return _import_us(options, IMPORT_OPTIONS)


def _import_us(options: Mapping[str, RawValue], names: Iterable[str]) -> bool:
    return any(
        value.strip() == "uwsgi_reload" for name in names for value in option_values(options, name)
    )


def imports_hidden(options: Mapping[str, RawValue]) -> bool:
    """True when an import-like option's last value (all ``uwsgi.opt`` keeps) is not
    ``uwsgi_reload``: an earlier line may have been ``import = uwsgi_reload``."""
    for name in IMPORT_OPTIONS:
        values = option_values(options, name)
        if values and values[-1].strip() != "uwsgi_reload":
            return True
    return False


def _is_fifo(path: str) -> bool:
    try:
        return stat.S_ISFIFO(os.stat(path).st_mode)
    except OSError:
        return False


def entry_files(options: Mapping, base_dir: str) -> set[str]:
    files = set()
    for name in FILE_OPTIONS:
        files.update(sources.absolute(v, base_dir) for v in option_values(options, name))
    for value in option_values(options, "mount"):
        target = value.split("=", 1)[-1]
        if target.endswith(".py"):
            files.add(sources.absolute(target, base_dir))
    for name in MODULE_OPTIONS:
        for value in option_values(options, name):
            path = module_path(value, [base_dir, *sys.path])
            if path:
                files.add(path)
    return files


def check_uwsgi_options(config: Config, options: Mapping[str, RawValue]) -> list[Problem]:
    """Problems with how the uWSGI options around us fit ``config`` (pure: ``options``
    is ``uwsgi.opt`` inside the server, or a parsed ini for ``uwsgi-reload check``)."""
    problems = check_includes(config)
    if not _flag(options, "master"):
        problems.append(
            Problem(
                "uwsgi_reload needs the uWSGI master (its timers run there): "
                "add `master = true` to the [uwsgi] section"
            )
        )
    lazy = _flag(options, "lazy-apps", "lazy")
    if config.mode in ("chain", "warm") and not lazy:
        problems.append(
            Problem(
                f"{{mode}} = {config.mode} needs `lazy-apps = true` (without it workers are "
                "forked from the master and keep the old code): add it, or use mode graceful"
            )
        )
    if config.mode in ("chain", "warm") and not (config.fifo or options.get("master-fifo")):
        problems.append(Problem(f"{{mode}} = {config.mode} needs `master-fifo = PATH` in the ini"))
    if config.mode == "warm" and not imported_by_master(options):
        problems.append(
            Problem(
                "{mode} = warm needs uwsgi_reload imported by the master, which keeps the "
                "libraries: write `shared-import = uwsgi_reload` instead of "
                "`import = uwsgi_reload`"
            )
        )
    fifos = option_values(options, "master-fifo")
    if config.fifo and fifos and config.fifo not in fifos:
        problems.append(
            Problem(
                f"{{fifo}} = {config.fifo!r} is not a master FIFO of this server: expected "
                "one of its `master-fifo` paths (" + ", ".join(fifos) + "), or no {fifo}"
            )
        )
    elif config.fifo and not fifos and not _is_fifo(config.fifo):
        problems.append(
            Problem(
                f"{{fifo}} = {config.fifo!r} is not a FIFO: expected the path of the master "
                "FIFO uWSGI was started with (`master-fifo`)"
            )
        )
    return problems


def imported_by_master(options: Mapping[str, RawValue]) -> bool:
    """``shared-import = uwsgi_reload`` (or a spelling of it): the master imports us
    even under lazy-apps."""
    return _import_us(options, [name for name in IMPORT_OPTIONS if name.startswith("shared-")])


def load_uwsgi_config(options: Mapping[str, RawValue], base_dir: str) -> Config:
    """Parse and check everything; raise :class:`ConfigError` listing all problems."""
    config = parse_config(options, base_dir)
    problems = check_uwsgi_options(config, options)
    if problems:
        raise ConfigError(problems)
    return config


def ini_paths(spec: str) -> list[str]:
    """Where an ``--ini`` value may be: relative to the folder uWSGI was started in
    (``$PWD`` when a shell started it), or to the current one (before a ``chdir``)."""
    path, section = split_spec(spec)
    if os.path.isabs(path):
        folders = [""]
    else:
        folders = [f for f in (os.environ.get("PWD"), os.getcwd()) if f]
    return [f"{os.path.join(folder, path)}:{section}" for folder in folders]


def read_ini_spec(
    spec: str, read_ini: Callable[[str], UwsgiIni] = read_uwsgi_ini
) -> UwsgiIni | None:
    """The ini section an ``--ini`` value names, from the first of :func:`ini_paths`
    that can be read; None when none can."""
    for candidate in ini_paths(spec):
        try:
            return read_ini(candidate)
        except OSError:
            continue
    return None


def with_repeated_lines(opt: Mapping[str, RawValue]) -> dict[str, RawValue]:
    """``opt`` with every line of a repeated merged key, when the ini file that set its
    last value can be read again (uWSGI keeps only the last line of a key it does not
    know, measured on 2.0.31; the lines are still in the file); else ``opt`` as it is."""
    options = dict(opt)
    for spec in option_values(opt, "ini"):
        ini = read_ini_spec(spec)
        if ini is None:
            continue
        for key in MERGED_KEYS:
            name = PREFIX + key
            lines = [v for v in ini.options.get(name, []) if isinstance(v, str)]
            last = option_values(opt, name)
            # only when this file is where uWSGI's value came from
            if len(lines) > 1 and last and last[-1].strip() == lines[-1]:
                options[name] = lines
    return options
