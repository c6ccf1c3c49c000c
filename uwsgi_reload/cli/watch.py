"""``uwsgi-reload watch [PATH ...]``: run the change detector outside the server and, on
a settled change whose ``.py`` files compile, tell the server to reload: a signal to the
pid in a pidfile, a command written to uWSGI's master FIFO, a touched file (uWSGI
``touch-reload``) or any shell command. The server needs nothing of ours."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from collections.abc import Callable

from uwsgi_reload import backends
from uwsgi_reload.backends.gate import ScanGate
from uwsgi_reload.cli import EXIT_USAGE, LARGE
from uwsgi_reload.cli.actions import Action, ActionError, Exec, SignalPid, Touch, WriteFifo
from uwsgi_reload.core import globs, sources
from uwsgi_reload.core.config import (
    PREFIX,
    Config,
    ConfigError,
    parse_config,
    seconds,
)
from uwsgi_reload.core.detector import Detector
from uwsgi_reload.core.pipeline import Pipeline, Verdict, run_loop
from uwsgi_reload.core.syntax import SyntaxGate


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
    parse = seconds(low, high, example)

    def argument(text: str) -> float:
        try:
            return parse(text)
        except ValueError as allowed:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not allowed: expected {allowed}"
            ) from None

    return argument


def watch_config(args: argparse.Namespace, base_dir: str) -> Config:
    """The detector's configuration from the flags; the same checks and messages as
    the ini keys, naming the flags. Raises :class:`ConfigError`."""
    values = {"delay": args.delay, "max-delay": args.max_delay, "backend": args.backend}
    options = {PREFIX + key: value for key, value in values.items() if value is not None}
    try:
        config = parse_config(options, base_dir)
    except ConfigError as error:
        raise ConfigError(error.spelled(lambda key: "--" + key)) from None
    problems = [
        f"PATH {path!r} does not exist in {base_dir}: expected an existing file or folder, "
        "or a glob"
        for path in args.paths
        if not globs.has_glob(path) and not os.path.exists(sources.absolute(path, base_dir))
    ]
    if problems:
        raise ConfigError(problems)
    return config._replace(
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
    return Exec(args.exec, getattr(args, "exec_timeout", None))


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
    config = config._replace(exclude=(*config.exclude, *(os.path.abspath(p) for p in own)))
    stop = stop or _stop_on_signals()
    if isinstance(action, Exec):
        action.stop = stop
    problem = _wait_until_usable(action, args.wait, stop)
    if problem:
        _log(f"ERROR: {problem}")
        return EXIT_USAGE
    detector = Detector(config)
    detector.start()
    tracked = detector.tracked()
    backend, note = backends.open_backend(config.backend, [base_dir], detector.rules.excludes)
    gate = ScanGate(detector, backend, _log)
    gate.watch_tracked()
    pipeline = Pipeline(detector, SyntaxGate(_log), gate)
    _log(
        f"watching {len(tracked)} files in {', '.join(config.include)} (under {base_dir}), "
        f"every {args.period:g}s, backend {gate.name}{f' ({note})' if note else ''}; "
        f"on a change: {action.describe()}"
    )
    if not tracked:
        _log("nothing to watch yet: files created under these paths will count")
    elif len(tracked) > LARGE:
        _log(
            f"warning: {len(tracked)} files are stat'ed at every check, which costs CPU: "
            "watch fewer folders, or --exclude what does not need a reload"
        )

    failing: list[str] = []  # the error of the last try, while the same one repeats

    def tick() -> None:
        decision = pipeline.tick()
        if decision.verdict is not Verdict.RELOAD:
            return
        retry = bool(failing)
        if not retry:
            _log(decision.describe(action.describe()))
        try:
            done = action.run(decision.changes)
        except ActionError as error:
            if stop.is_set():
                _log(str(error))
            elif [str(error)] != failing:
                _log(f"ERROR: {error}; watching on, the next check tries again")
            failing[:] = [str(error)]
            return  # not accepted: the next check finds the change again
        failing.clear()
        _log(f"{done} (tried again: {decision.changes.describe()})" if retry else done)
        pipeline.reloaded(decision)

    run_loop(tick, stop, args.period, _log)
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
        stop.signum = signum  # type: ignore[attr-defined]  # forwarded to an --exec command
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return stop
