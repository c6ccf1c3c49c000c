"""The argument parser and entry point of ``uwsgi-reload``."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from uwsgi_reload import __version__
from uwsgi_reload.cli import EXIT_PROBLEMS
from uwsgi_reload.cli.check import check
from uwsgi_reload.cli.watch import _seconds, _signal, watch

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
line, in $UWSGI_RELOAD_CHANGED (the first 100, then a count line) and all of them in the
file named by $UWSGI_RELOAD_CHANGED_FILE; when it fails, the next check tries again.
Stop with Ctrl-C or SIGTERM (forwarded to a running --exec command's process group).
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
        "--exec-timeout",
        type=_seconds(0.1, 86400, "60"),
        metavar="S",
        help="stop the --exec command (its whole process group) when it runs longer "
        "than S seconds; the change is tried again at the next check (default: no limit)",
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
        "--delay",
        metavar="S",
        help="quiet time after the last change before acting (default: 0.05; a burst "
        "of changes waits for 0.2 at least)",
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
        "--backend",
        metavar="NAME",
        help="how to notice changes: auto (inotify on a local disk, else poll; default), "
        "inotify or poll",
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
        if args.exec_timeout is not None and not args.exec:
            arguments.error("--exec-timeout goes with --exec")
        return watch(args)
    try:
        return check(args)
    except BrokenPipeError:  # `uwsgi-reload check ... | head`: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_PROBLEMS
