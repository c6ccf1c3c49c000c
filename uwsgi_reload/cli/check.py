"""``uwsgi-reload check --ini FILE``: read a uwsgi.ini the way uWSGI does, validate the
``uwsgi-reload-*`` keys with the server's own messages and print the effective
configuration and what would be tracked."""

from __future__ import annotations

import argparse
import os
import textwrap
from collections.abc import Callable, Sequence

from uwsgi_reload.cli import EXIT_PROBLEMS, EXIT_USAGE, LARGE
from uwsgi_reload.core import entrypoints, sources
from uwsgi_reload.core.config import (
    KEYS,
    PREFIX,
    Config,
    ConfigError,
    describe,
    parse_config,
)
from uwsgi_reload.hosts.uwsgi import options
from uwsgi_reload.hosts.uwsgi.ini import UwsgiIni, read_uwsgi_ini, split_spec


def check(args: argparse.Namespace, out: Callable[[str], None] = print) -> int:
    try:
        ini = read_uwsgi_ini(args.ini)
    except OSError as error:
        name = error.filename or split_spec(args.ini)[0]  # an `ini =` include, or the file
        out(f"uwsgi-reload check: cannot read {name}: {error.strerror}")
        return EXIT_USAGE
    chdir = ini.last("chdir")
    base_dir = os.path.abspath(chdir) if chdir else os.getcwd()
    out(f"ini: {os.path.abspath(ini.path)} [{ini.section}]")
    origin = "chdir" if chdir else "no chdir: the folder uWSGI starts in, here the current one"
    out(f"base folder: {base_dir} ({origin})")
    for note in ini.notes + _missing_entries(ini, base_dir):
        out(f"note: {note}")
    problems: list[str] = []
    if not options.requested(ini.options):
        problems.append(
            "the ini does not load uwsgi_reload, so nothing reloads: add `import = uwsgi_reload`"
        )
    try:
        config = parse_config(ini.options, base_dir)
    except ConfigError as error:
        return _report(out, problems + error.problems)
    problems += [p.spelled() for p in options.check_uwsgi_options(config, ini.options)]
    out("")
    out("configuration (keys not in the ini have their default):")
    width = max(len(PREFIX + key) for key in KEYS)
    for key, value in describe(config):
        origin = "" if key in ini.options else "   (default)"
        out(f"  {key:<{width}} = {value}{origin}")
    out("")
    _print_tracked(out, config, ini, base_dir, args.all)
    return _report(out, problems)


def _print_tracked(
    out: Callable[[str], None], config: Config, ini: UwsgiIni, base_dir: str, show_all: bool
) -> None:
    rules = sources.Rules(config.exclude, base_dir)
    included = sorted(sources.expand_includes(config.include, base_dir, rules))
    entries = sorted(options.entry_files(ini.options, base_dir))
    out("tracked:")
    if config.track_modules:
        text = (
            "the files of the modules the app imports, outside the standard library and "
            "installed packages: known only once the app runs (the server's start line "
            "`uwsgi_reload: reloading on ... tracking N files` counts them)"
        )
        out(textwrap.fill(text, 88, initial_indent="  ", subsequent_indent="  "))
    else:
        out(f"  no module files ({PREFIX}track-modules = false)")
    _print_files(out, "app entry files", entries, show_all)
    if config.include:
        _print_files(out, f"{PREFIX}include ({' '.join(config.include)})", included, show_all)
    for warning in sources.empty_include_warnings(config.include, base_dir, rules):
        out(f"  {warning}")
    if len(included) > LARGE:
        out(
            f"  warning: {len(included)} included files are stat'ed at every check, which "
            f"costs CPU: narrow {PREFIX}include or add {PREFIX}exclude"
        )
    if not config.track_modules and not included and not entries:
        out("  nothing at all: set an include, or track-modules = true")


def _missing_entries(ini: UwsgiIni, base_dir: str) -> list[str]:
    """App files the ini names that cannot be found from here (a hint only: the server
    may have another `sys.path`)."""
    notes = []
    for name in options.FILE_OPTIONS:
        for value in ini.options.get(name, []):
            if isinstance(value, str) and not os.path.isfile(sources.absolute(value, base_dir)):
                notes.append(f"`{name} = {value}` names no file under {base_dir}")
    for name in options.MODULE_OPTIONS:
        for value in ini.options.get(name, []):
            if isinstance(value, str) and not entrypoints.module_path(value, [base_dir]):
                notes.append(
                    f"`{name} = {value}`: no such module under {base_dir} (it may be on the "
                    "server's python path)"
                )
    return notes


def _print_files(out: Callable[[str], None], title: str, files: Sequence[str], show_all: bool):
    limit = len(files) if show_all else 20
    out(f"  {title}: {len(files)} file{'s' if len(files) != 1 else ''}")
    for path in files[:limit]:
        out(f"    {path}")
    if len(files) > limit:
        out(f"    ... and {len(files) - limit} more (--all lists them)")


def _report(out: Callable[[str], None], problems: list[str]) -> int:
    if not problems:
        out("OK: uWSGI would start with reloading on")
        return 0
    out("")
    out(f"{len(problems)} problem{'s' if len(problems) > 1 else ''}:")
    for problem in problems:
        out(f"  ERROR: {problem}")
    return EXIT_PROBLEMS
