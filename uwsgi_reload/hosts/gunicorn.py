"""Reload gunicorn on save, with the same tracking, settle and syntax pre-check as uWSGI.

Use it as gunicorn's config::

    gunicorn -c python:uwsgi_reload.gunicorn -w 2 app:app

or, with a config file of your own, import the hooks into it::

    from uwsgi_reload.gunicorn import on_starting, when_ready

If your file defines these hooks already, call ours from yours
(``uwsgi_reload.gunicorn.when_ready(server)``). ``when_ready`` is the one that
matters; ``on_starting`` only makes a configuration error stop gunicorn before it
binds its sockets. No worker hook is needed (see below).

Settings are the ``uwsgi-reload-*`` keys of the ini, as environment variables:
``uwsgi-reload-period`` is ``UWSGI_RELOAD_PERIOD``, ``uwsgi-reload-max-delay`` is
``UWSGI_RELOAD_MAX_DELAY``, and so on. gunicorn's ``-e NAME=VALUE`` (``raw_env``)
works too. They are read once, when gunicorn starts, and validated with the
messages uWSGI gives (naming the variable): a bad value stops gunicorn. The period
is whole seconds here too, so that one setting means the same under both servers.
``uwsgi-reload-mode`` can only be ``graceful`` (gunicorn has one reload: HUP starts
new workers, then stops the old ones gracefully) and ``uwsgi-reload-fifo`` does not
apply.

How it works. The arbiter imports little of the app, so the tracked module files come
from the workers: a hook on Python's source loader, installed in the arbiter before
it forks, makes every worker append each ``.py`` file it loads (with the stat it had
when loaded) to a journal shared by the instance, including modules first imported
while serving a request. A daemon thread in the arbiter merges the journal into its
change detector every period, waits for the changes to settle, compiles the changed
``.py`` files, and sends the arbiter SIGHUP, which gunicorn's main loop turns into
``Arbiter.reload()``. (Calling ``server.reload()`` from the thread would race the
main loop, which reaps and forks workers at the same time.) A file that does not
compile keeps the current workers serving and is logged once per change; a worker
whose app fails to import for another reason serves the traceback as a 500 instead
of stopping gunicorn, and the files the error named are tracked, so saving the fix
reloads. With Django, each worker also reports, once its app has loaded, the folders
Django's reloader would watch (templates, translations): a change there reloads, as
no signal reaches every gunicorn worker to apply it in place.

``preload_app``: the arbiter then holds the app's code and forks every new worker
from it, so no HUP can bring new code. uwsgi_reload refuses to start with it, with a
message saying so; turn preload off while developing.
"""

from __future__ import annotations

import dataclasses
import os
import re
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Mapping
from types import SimpleNamespace
from typing import Any, NoReturn

from uwsgi_reload import frameworks as extensions
from uwsgi_reload.cli.actions import CHANGED_ENV
from uwsgi_reload.core import entrypoints, loadstats, snapshot, sources
from uwsgi_reload.core.config import (
    MODES,
    PREFIX,
    Config,
    ConfigError,
    check_uwsgi_options,
    parse_config,
    settings_line,
)
from uwsgi_reload.core.detector import Detector
from uwsgi_reload.core.snapshot import Changes, Stat
from uwsgi_reload.core.watcher import Watcher
from uwsgi_reload.frameworks import django as django_support
from uwsgi_reload.hosts import state

# gunicorn applies every name of a config module that matches one of its settings:
# this module's globals must not (a name such as `config` or `reload` would).
__all__ = ["on_starting", "when_ready"]

ENV_PREFIX = "UWSGI_RELOAD_"
# variables with the prefix that are not settings
NOT_SETTINGS = frozenset({"UWSGI_RELOAD_STATE_DIR", CHANGED_ENV})

_reloader: GunicornReloader | None = None
_config: Config | None = None


def env_name(option: str) -> str:
    """``uwsgi-reload-max-delay`` -> ``UWSGI_RELOAD_MAX_DELAY``."""
    return ENV_PREFIX + option.removeprefix(PREFIX).upper().replace("-", "_")


def options_from_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The ``uwsgi-reload-*`` options the ``UWSGI_RELOAD_*`` variables set."""
    return {
        PREFIX + name[len(ENV_PREFIX) :].lower().replace("_", "-"): value
        for name, value in environ.items()
        if name.startswith(ENV_PREFIX) and name not in NOT_SETTINGS
    }


def _env_spelling(problem: str) -> str:
    return re.sub(
        re.escape(PREFIX) + r"[a-z0-9-]*[a-z0-9]", lambda m: env_name(m.group(0)), problem
    )


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
        raise ConfigError([_env_spelling(p) for p in error.problems] + problems) from None
    # of the uWSGI checks only the include paths apply (master and lazy-apps are uWSGI's)
    graceful = dataclasses.replace(config, mode="graceful", fifo="")
    problems += [_env_spelling(p) for p in check_uwsgi_options(graceful, {"master": "true"})]
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


def _load(server: Any) -> Config:
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


class GunicornReloader:
    """Lives in the arbiter; its workers inherit it through fork and report to it."""

    def __init__(self, server: Any, config: Config) -> None:
        self.server = server
        self.pid = os.getpid()
        self.config = config
        self.detector = Detector(config)
        folder = state.instance_dir(self.pid, log=self._warn)
        self.journal = state.Journal(folder, "gunicorn", single_reader=True)
        self.watcher = Watcher(self.detector, self._reload, self._warn, before=self._merge)
        self.announced = False
        self.journal_failed = False
        self.stop = threading.Event()
        self.framework_files: set[str] = set()
        self.framework_globs: set[tuple[str, str]] = set()

    def _info(self, message: str) -> None:
        self.server.log.info("uwsgi_reload: %s", message)

    def _warn(self, message: str) -> None:
        self.server.log.warning("uwsgi_reload: %s", message)

    def start(self) -> None:
        state.start_generation(self.journal)
        loadstats.install(self._on_load)
        entry = entrypoints.module_path(getattr(self.server.app, "app_uri", None) or "", sys.path)
        if entry and not self._ignored(entry):
            self.detector.extra.add(entry)
        self.detector.start()
        self._keep_workers_alive_on_load_errors()
        thread = threading.Thread(
            target=self.watcher.run,
            args=(self.stop, self.config.period),
            name="uwsgi_reload",
            daemon=True,  # ends with the arbiter
        )
        thread.start()

    def _ignored(self, path: str) -> bool:
        return sources.in_system_dir(path) or self.detector.rules.excludes(path)

    # -- in the workers

    def _on_load(self, path: str, stat: Stat) -> None:
        """Python loaded a source file. The arbiter's own modules are its detector's
        business; a worker's are written to the journal for the arbiter."""
        if os.getpid() == self.pid or not self.config.track_modules or self._ignored(path):
            return
        try:
            self.journal.record_loaded(path, stat)
        except OSError as error:
            if not self.journal_failed:  # once per worker; the worker serves on regardless
                self.journal_failed = True
                self._warn(
                    f"cannot write {self.journal.path} ({error.strerror}): files this "
                    "worker imports are not tracked"
                )

    def _keep_workers_alive_on_load_errors(self) -> None:
        """A worker that cannot import the app exits with a boot error, and gunicorn
        then stops altogether. Serve the error instead, and track what it named."""
        app = self.server.app
        load = app.wsgi
        if getattr(load, "uwsgi_reload", False):
            return

        def wsgi() -> Callable:
            try:
                loaded = load()
            except Exception as error:
                if os.getpid() == self.pid:
                    raise
                return self._failed_app(error)
            if os.getpid() != self.pid:
                self._report_framework_files()
            return loaded

        wsgi.uwsgi_reload = True  # type: ignore[attr-defined]
        app.wsgi = wsgi

    def _report_framework_files(self) -> None:
        """Tell the arbiter what the app's framework watches besides modules (Django:
        template and locale folders). A change there reloads: gunicorn cannot make every
        worker apply it the way Django's own reloader does in its one process."""
        try:
            for extension in extensions.discover():
                files, globs = extension.watched()
                self.journal.record(watch={"files": files, "globs": globs})
        except Exception:
            self._warn(
                "internal error while asking the framework what it watches (the app serves "
                "on; template and translation changes may not reload):\n" + traceback.format_exc()
            )

    def _failed_app(self, error: BaseException) -> Callable:
        text = "".join(traceback.format_exception(error))
        self.server.log.error(
            "uwsgi_reload: the app failed to load in worker %s; it answers 500 with this "
            "error until a fix is saved:\n%s",
            os.getpid(),
            text,
        )
        named = entrypoints.failure_files(SimpleNamespace(last_value=error, path=sys.path))
        files = {p: snapshot.stat_file(p) for p in named if not self._ignored(p)}
        self.journal.record(failed=files)
        body = (
            "The app failed to load. gunicorn keeps running; saving a fix reloads it "
            f"(uwsgi_reload).\n\n{text}"
        ).encode("utf-8", "replace")

        def failed(environ: dict, start_response: Callable) -> list[bytes]:
            start_response(
                "500 Internal Server Error", [("Content-Type", "text/plain; charset=utf-8")]
            )
            return [body]

        return failed

    # -- in the arbiter's thread

    def _merge(self) -> None:
        for record in self.journal.read_new():
            if "loaded" in record:
                path, stat = record["loaded"]
                self.detector.learn_loaded(path, tuple(stat))
            if "watch" in record:
                self._watch_framework_files(record["watch"])
            for path, stat in record.get("failed", {}).items():
                if path not in self.detector.baseline and path not in self.detector.extra:
                    self.detector.extra.add(path)
                    if stat:
                        self.detector.learn(path, tuple(stat))
        if not self.announced:
            self.announced = True
            settings = settings_line(self.config)
            self._info(
                f"reloading on: mode graceful (HUP), period {self.config.period}s, tracking "
                f"{len(self.detector.tracked())} files under {self.config.base_dir} so far "
                "(more as workers import modules)"
            )
            self._info(f"settings: {settings}")
            if self.server.cfg.reload:
                self._warn(
                    "gunicorn's own reloader (--reload) is on too: turn it off, or each save "
                    "restarts the workers twice and a failing import stops gunicorn"
                )

    def _watch_framework_files(self, watch: dict) -> None:
        files = set(watch["files"]) - self.framework_files
        globs = {tuple(pair) for pair in watch["globs"]} - self.framework_globs
        if not files and not globs:
            return  # every worker, at every start, reports the same
        first = not (self.framework_files or self.framework_globs)
        self.framework_files |= files
        self.framework_globs |= globs
        if first:  # one provider, reading the sets; what it names now is the baseline
            self.detector.add_provider(
                lambda: django_support.files_matching(
                    sorted(self.framework_files), sorted(self.framework_globs)
                )
            )
            return
        # folders reported later (an app added since): what is in them is no change
        found = django_support.files_matching(sorted(files), sorted(globs))
        unknown = [p for p in found if p not in self.detector.baseline]
        for path, stat in snapshot.take(unknown).items():
            self.detector.learn(path, stat)

    def _reload(self, changes: Changes) -> None:
        self._info(f"{changes.describe()} -> graceful reload (HUP)")
        os.kill(self.pid, signal.SIGHUP)


def on_starting(server: Any) -> None:
    """gunicorn hook (arbiter, before it binds): validate the settings."""
    _load(server)


def when_ready(server: Any) -> None:
    """gunicorn hook (arbiter, before the first fork): start tracking and the watcher."""
    global _reloader
    config = _load(server)
    if _reloader is None:
        _reloader = GunicornReloader(server, config)
        _reloader.start()
