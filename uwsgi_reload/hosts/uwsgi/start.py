"""Switching reloading on in a uWSGI process: read and check the configuration (an
error stops uWSGI so that it cannot be missed), then start the reloader."""

from __future__ import annotations

import os
from collections.abc import Mapping

import uwsgi

from uwsgi_reload.core.config import Config, ConfigError, RawValue
from uwsgi_reload.hosts import state
from uwsgi_reload.hosts.uwsgi import options, pyuwsgi, signals, stop
from uwsgi_reload.hosts.uwsgi.log import log
from uwsgi_reload.hosts.uwsgi.reloader import UwsgiReloader


def read_config(opt: Mapping[str, RawValue]) -> Config:
    # the master's pid is the truth about `master` however the option was spelled
    opts = {
        **options.with_repeated_lines(opt),
        "master": "true" if uwsgi.masterpid() else "false",
    }
    return options.load_uwsgi_config(opts, base_dir=os.getcwd())


def _stop_server(config_error: ConfigError) -> None:
    for problem in config_error.problems:
        log(f"ERROR: {problem}")
    log("ERROR: uWSGI stops here so that this cannot be missed. Fix the ini, or remove")
    log("ERROR: `import = uwsgi_reload` to run without reloading.")
    stop.stop_instance()


def activate() -> None:
    """Switch reloading on in this uWSGI process. Configuration errors stop uWSGI;
    an internal error is logged loudly and leaves the app serving without reloading."""
    opt = _every_import_line() if options.imports_hidden(uwsgi.opt) else uwsgi.opt
    if not options.requested(opt):
        return
    try:
        config = read_config(opt)
        problems = pyuwsgi.problems(config, uwsgi.opt, lazy=uwsgi.worker_id() > 0)
        if problems:
            raise ConfigError(problems)
    except ConfigError as error:
        _stop_server(error)
        return
    if config.mode == "warm" and uwsgi.worker_id() == 0:
        _start_warm_master(config)
        return
    _start(config)


def _every_import_line() -> Mapping[str, RawValue]:
    """``uwsgi.opt`` with the import lines it does not keep (read only when it hides
    some: `import = uwsgi_reload` then `import = myapp.tasks`)."""
    from uwsgi_reload.hosts.uwsgi import import_lines  # only then: a master start pays it

    try:
        cmdline = import_lines.own_cmdline(uwsgi.opt, in_worker=uwsgi.worker_id() > 0)
        found = import_lines.every_import_line(uwsgi.opt, cmdline, os.environ)
    except Exception:
        _internal_error()
        return {}
    warning = found.warning()
    if warning:
        log(warning)
    return found.options


def _start(config: Config) -> None:
    try:
        UwsgiReloader(config).start()
    except Exception:
        _internal_error()


def _internal_error() -> None:
    import traceback  # only then: a master imports this module at every start

    log("INTERNAL ERROR: reloading is OFF for this run; the app is not affected.")
    log(traceback.format_exc())
    log("Please report this at the project's issue tracker with the lines above.")


def _start_warm_master(config: Config) -> None:
    """Warm mode: the master keeps the libraries and raises the checks; each worker
    runs the reloader, started right after the fork, before it loads the app."""
    try:
        from uwsgi_reload.hosts.uwsgi.warm import host as warm_host

        pyuwsgi.prepare_reexec(uwsgi.opt)
        warm_host.start_master(state.instance_dir(uwsgi.masterpid(), log=log), log)
        signals.monitor_for_workers(config)
        import uwsgidecorators

        uwsgidecorators.postfork(lambda: _start(config))
    except Exception:
        _internal_error()
