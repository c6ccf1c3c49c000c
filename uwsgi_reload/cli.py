"""The command line: ``uwsgi-reload watch`` and ``uwsgi-reload check``.

``watch [PATH ...]`` runs the change detector outside the server and, on a settled
change whose ``.py`` files compile, tells the server to reload: a signal to the pid in
a pidfile, a command written to uWSGI's master FIFO, a touched file (uWSGI
``touch-reload``) or any shell command. The server needs nothing of ours.

``check --ini FILE`` reads a uwsgi.ini the way uWSGI does, validates the
``uwsgi-reload-*`` keys with the server's own messages and prints the effective
configuration and what would be tracked.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import signal
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Mapping, Sequence

from . import __version__, entrypoints, sources
from .actions import Action, ActionError, Exec, SignalPid, Touch, WriteFifo
from .config import (
    IMPORT_OPTIONS,
    KEYS,
    PREFIX,
    Config,
    ConfigError,
    check_uwsgi_options,
    describe,
    parse_config,
)
from .detector import Detector
from .snapshot import Changes
from .uwsgi_ini import UwsgiIni, read_uwsgi_ini, split_spec
from .watcher import Watcher

EXIT_PROBLEMS = 1  # `check` found problems
EXIT_USAGE = 2  # bad arguments, or the target of `watch` is not usable
LARGE = 5000  # tracked files worth a warning: each is stat'ed at every check

# --------------------------------------------------------------------------- watch


def _log(message: str) -> None:
    stamp = time.strftime("%H:%M:%S")
    for line in message.rstrip("\n").splitlines() or [""]:
        print(f"{stamp} uwsgi_reload: {line}", file=sys.stderr, flush=True)


def _signal(text: str) -> signal.Signals:
    name = text.strip().upper()
    try:
        if name.isdigit():
            return signal.Signals(int(name))
        return signal.Signals[name if name.startswith("SIG") else "SIG" + name]
    except (KeyError, ValueError):
        raise argparse.ArgumentTypeError(
            f"unknown signal {text!r}: expected a name such as HUP or a number"
        ) from None


def _seconds(low: float, high: float, example: str) -> Callable[[str], float]:
    """An argparse type: a number of seconds from ``low`` to ``high``."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = -1.0
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not allowed: expected a number of seconds from {low:g} to "
                f"{high:g}, such as {example}"
            )
        return value

    return parse


def _flag_spelling(problem: str, flags: Mapping[str, str]) -> str:
    """A config message names ini keys; on the command line name the flag instead."""
    return re.sub(
        re.escape(PREFIX) + r"[a-z0-9-]+", lambda m: flags.get(m.group(0), m.group(0)), problem
    )


def watch_config(args: argparse.Namespace, base_dir: str) -> Config:
    """The detector's configuration from the flags; the same checks and messages as
    the ini keys, naming the flags. Raises :class:`ConfigError`."""
    flags = {PREFIX + "delay": "--delay", PREFIX + "max-delay": "--max-delay"}
    values = {PREFIX + "delay": args.delay, PREFIX + "max-delay": args.max_delay}
    options = {key: value for key, value in values.items() if value is not None}
    try:
        config = parse_config(options, base_dir)
    except ConfigError as error:
        raise ConfigError([_flag_spelling(p, flags) for p in error.problems]) from None
    problems = [
        f"PATH {path!r} does not exist in {base_dir}: expected an existing file or folder, "
        "or a glob"
        for path in args.paths
        if not sources.has_glob(path) and not os.path.exists(sources.absolute(path, base_dir))
    ]
    if problems:
        raise ConfigError(problems)
    return dataclasses.replace(
        config,
        include=tuple(args.paths or ["."]),
        exclude=tuple(args.exclude),
        check_syntax=not args.no_check_syntax,
        track_modules=False,  # the watcher's own modules are not the app's
    )


def make_action(args: argparse.Namespace) -> Action:
    if args.pidfile:
        return SignalPid(os.path.abspath(args.pidfile), args.signal or signal.SIGHUP)
    if args.fifo:
        return WriteFifo(os.path.abspath(args.fifo), args.fifo_command or "r")
    if args.touch:
        return Touch(os.path.abspath(args.touch))
    return Exec(args.exec)


def watch(args: argparse.Namespace, stop: threading.Event | None = None) -> int:
    base_dir = os.getcwd()
    try:
        config = watch_config(args, base_dir)
    except ConfigError as error:
        for problem in error.problems:
            _log(f"ERROR: {problem}")
        return EXIT_USAGE
    action = make_action(args)
    # the action's own files change at a reload (gunicorn rewrites its pidfile): never
    # let them trigger one
    own = [p for p in (args.pidfile, args.fifo, args.touch) if p]
    config = dataclasses.replace(
        config, exclude=(*config.exclude, *(os.path.abspath(p) for p in own))
    )
    stop = stop or _stop_on_signals()
    problem = _wait_until_usable(action, args.wait, stop)
    if problem:
        _log(f"ERROR: {problem}")
        return EXIT_USAGE
    detector = Detector(config)
    detector.start()
    tracked = detector.tracked()
    _log(
        f"watching {len(tracked)} files in {', '.join(config.include)} (under {base_dir}), "
        f"every {args.period:g}s; on a change: {action.describe()}"
    )
    if not tracked:
        _log("nothing to watch yet: files created under these paths will count")
    elif len(tracked) > LARGE:
        _log(
            f"warning: {len(tracked)} files are stat'ed at every check, which costs CPU: "
            "watch fewer folders, or --exclude what does not need a reload"
        )

    def act(changes: Changes) -> None:
        _log(f"{changes.describe()} -> {action.describe()}")
        try:
            _log(action.run(changes))
        except ActionError as error:
            _log(f"ERROR: {error}; watching on, the next change tries again")

    Watcher(detector, act, _log).run(stop, args.period)
    _log("stopped")
    return 0


def _wait_until_usable(action: Action, wait: float, stop: threading.Event) -> str:
    """Check the action until it works, for at most ``wait`` seconds (a server started
    beside the watcher may not have written its pidfile or opened its FIFO yet).
    Returns the last problem, or "" when the action is usable."""
    deadline = time.monotonic() + wait
    told = False
    while True:
        try:
            action.check()
            if told:
                _log("the server is there")
            return ""
        except ActionError as error:
            problem = str(error)
        if time.monotonic() >= deadline or stop.is_set():
            return problem + (f" (waited {wait:g}s)" if wait else "")
        if not told:
            _log(f"waiting up to {wait:g}s for the server: {problem}")
            told = True
        stop.wait(min(0.1, max(0.0, deadline - time.monotonic())))


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()

    def handler(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return stop


# --------------------------------------------------------------------------- check


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
    imported = any(
        v == "uwsgi_reload" for name in IMPORT_OPTIONS for v in ini.options.get(name, [])
    )
    if not imported:
        problems.append(
            "the ini does not load uwsgi_reload, so nothing reloads: add `import = uwsgi_reload`"
        )
    try:
        config = parse_config(ini.options, base_dir)
    except ConfigError as error:
        return _report(out, problems + error.problems)
    problems += check_uwsgi_options(config, ini.options)
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
    entries = sorted(entrypoints.entry_files(ini.options, base_dir))
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
    for name in entrypoints.FILE_OPTIONS:
        for value in ini.options.get(name, []):
            if isinstance(value, str) and not os.path.isfile(sources.absolute(value, base_dir)):
                notes.append(f"`{name} = {value}` names no file under {base_dir}")
    for name in entrypoints.MODULE_OPTIONS:
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


# --------------------------------------------------------------------------- arguments

WATCH_EPILOG = """\
examples:
  uwsgi-reload watch src --pidfile /tmp/app.pid     uWSGI `pidfile =`: HUP is a graceful reload
  uwsgi-reload watch --fifo /tmp/app.fifo           uWSGI `master-fifo =`: graceful reload
  uwsgi-reload watch --fifo /tmp/app.fifo --fifo-command c     chain reload (lazy-apps)
  uwsgi-reload watch --touch reload.touch           uWSGI `touch-reload = reload.touch`
  uwsgi-reload watch --pidfile gunicorn.pid         gunicorn `--pid`: HUP starts new workers
  uwsgi-reload watch --exec 'docker compose restart web'

Paths are files, folders (walked) or globs (`**` for any depth) relative to the current
folder; default `.`. Caches, VCS folders, virtualenvs, logs, databases and editor swap
files are never watched, and neither are the pidfile, FIFO or touch file. A change acts
once the files have been quiet for --delay seconds; a changed .py file that does not
compile holds the reload back until it is fixed. --exec gets the changed paths, one a
line, in $UWSGI_RELOAD_CHANGED. Stop with Ctrl-C or SIGTERM.
"""

CHECK_EPILOG = """\
Reads the ini like uWSGI 2.0: `;` and `#` comment lines, repeated keys (the last wins),
`%d` (the ini's folder, with a trailing slash) and the other magic variables, `$(ENV)`,
`%(option)` placeholders, `set-ph`, `ini = other.ini`. Relative paths are resolved
against `chdir`, or the current folder. Exit status: 0 fine, 1 problems, 2 unreadable.
"""


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="uwsgi-reload",
        description="Reload a WSGI server (uWSGI, gunicorn, anything with a signal) on save.",
    )
    root.add_argument("--version", action="version", version=f"uwsgi-reload {__version__}")
    commands = root.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    w = commands.add_parser(
        "watch",
        help="watch files and tell a running server to reload",
        description="Watch files and tell a running server to reload when they change.",
        epilog=WATCH_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    w.add_argument("paths", nargs="*", metavar="PATH", help="files, folders or globs (default: .)")
    how = w.add_argument_group("how to reload (exactly one)").add_mutually_exclusive_group(
        required=True
    )
    how.add_argument("--pidfile", metavar="FILE", help="send --signal to the pid in FILE")
    how.add_argument("--fifo", metavar="PATH", help="write --fifo-command to a uWSGI master FIFO")
    how.add_argument("--touch", metavar="PATH", help="touch PATH (uWSGI touch-reload)")
    how.add_argument("--exec", metavar="CMD", help="run CMD with the shell")
    w.add_argument(
        "--signal",
        type=_signal,
        metavar="SIG",
        help="signal for --pidfile, name or number (default: HUP)",
    )
    w.add_argument(
        "--fifo-command",
        choices=list("rRcw"),
        help="r graceful reload (default), R brutal reload, c chain reload (needs "
        "lazy-apps), w reload the workers only (new code only with lazy-apps)",
    )
    w.add_argument(
        "--wait",
        type=_seconds(0, 86400, "30"),
        default=0.0,
        metavar="S",
        help="at start, wait up to S seconds for the pidfile, process or FIFO to be "
        "there (for a server started at the same time; default: 0, fail at once)",
    )
    tuning = w.add_argument_group("detection")
    tuning.add_argument(
        "--period",
        type=_seconds(0.05, 3600, "1"),
        default=1.0,
        metavar="S",
        help="seconds between checks (default: 1)",
    )
    tuning.add_argument(
        "--delay", metavar="S", help="quiet time after the last change before acting (default: 0.3)"
    )
    tuning.add_argument(
        "--max-delay",
        metavar="S",
        help="act anyway after this long of constant changes (default: 5)",
    )
    tuning.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="GLOB",
        help="never watch these files or folders (repeatable; a name, or a path glob)",
    )
    tuning.add_argument(
        "--no-check-syntax",
        action="store_true",
        help="reload even when a changed .py file does not compile",
    )

    c = commands.add_parser(
        "check",
        help="validate the uwsgi-reload-* keys of a uwsgi.ini and show what is tracked",
        description="Validate the uwsgi-reload-* keys of a uwsgi.ini with the server's own\n"
        "messages, print the effective configuration and what would be tracked.",
        epilog=CHECK_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    c.add_argument("--ini", required=True, metavar="FILE[:SECTION]", help="the uwsgi.ini to read")
    c.add_argument("--all", action="store_true", help="list every tracked file, not the first 20")
    return root


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parser()
    args = arguments.parse_args(argv)
    if args.command == "watch":
        if args.signal and not args.pidfile:
            arguments.error("--signal goes with --pidfile")
        if args.fifo_command and not args.fifo:
            arguments.error("--fifo-command goes with --fifo")
        return watch(args)
    try:
        return check(args)
    except BrokenPipeError:  # `uwsgi-reload check ... | head`: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_PROBLEMS
