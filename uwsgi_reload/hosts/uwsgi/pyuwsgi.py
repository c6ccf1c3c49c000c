"""uWSGI from the pyuwsgi wheel (``pip install pyuwsgi``: uWSGI without a compiler).

There uWSGI is a Python extension, and its binary path is the interpreter behind the
venv's ``python`` symlink. A graceful reload re-executes that interpreter with the
original arguments (``<venv>/bin/uwsgi --ini ...``); started outside the venv it cannot
import pyuwsgi, and uWSGI is gone (uwsgi issue 2478). Measured: the same command run by
the venv's own interpreter works, and so does ``binary-path = <venv>/bin/python``.

So the master, at its import, leaves a trampoline for its re-exec (see
:mod:`uwsgi_reload.hosts.uwsgi.reexec.pyuwsgi`): the ``reexec`` folder first on
``PYTHONPATH`` and the venv's interpreter in an environment variable, both inherited
by the exec. The workers drop both after the fork, so that the app's own subprocesses
do not see them. Chain reloads do not re-execute the master and need nothing.

With ``lazy-apps`` the import runs only in the workers, after the fork, and cannot
prepare the master: a graceful reload there is refused at start unless the ini sets a
``binary-path``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

from uwsgi_reload.core.config import PREFIX, Config
from uwsgi_reload.hosts.uwsgi.options import option_values

MARKER = "UWSGI_RELOAD_PYUWSGI_PYTHON"
TRAMPOLINE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "reexec")


def running() -> bool:
    """True inside a uWSGI started from the pyuwsgi wheel."""
    return "pyuwsgi" in sys.modules


def venv_python() -> str | None:
    """The venv's interpreter, or None outside a venv (there the re-exec's interpreter
    is the one that has pyuwsgi)."""
    if sys.prefix == sys.base_prefix:
        return None
    major, minor = sys.version_info[:2]
    for name in (f"python{major}.{minor}", f"python{major}", "python"):
        candidate = os.path.join(sys.prefix, "bin", name)
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def needs_trampoline(options: Mapping) -> str | None:
    """The interpreter the master's re-exec must become, or None when it needs nothing."""
    if not running() or any(option_values(options, "binary-path")):
        return None
    return venv_python()


def problems(config: Config, options: Mapping, lazy: bool) -> list[str]:
    """What cannot work under pyuwsgi with these settings (checked at start)."""
    python = needs_trampoline(options)
    if python is None or config.mode != "graceful" or not lazy:
        return []
    return [
        f"{PREFIX}mode = graceful with lazy-apps does not work under pyuwsgi: a graceful "
        "reload re-executes the uWSGI master with the interpreter behind the venv, which "
        "cannot import pyuwsgi (uwsgi issue 2478), and with lazy-apps uwsgi_reload runs "
        "only in the workers, so it cannot prepare the master for it. Use "
        f"`{PREFIX}mode = chain` (with `master-fifo`), or add `binary-path = {python}` "
        "to the ini"
    ]


def prepare_reexec(options: Mapping) -> str | None:
    """In the master: make its re-exec find pyuwsgi. Returns the interpreter the
    re-exec will become, or None when nothing was needed."""
    python = needs_trampoline(options)
    if python is None:
        return None
    os.environ[MARKER] = python
    rest = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    os.environ["PYTHONPATH"] = os.pathsep.join([TRAMPOLINE_DIR, *rest])
    import uwsgidecorators

    uwsgidecorators.postfork(forget)
    return python


def forget() -> None:
    """In a worker, after the fork: only the master's re-exec needs the trampoline."""
    os.environ.pop(MARKER, None)
    rest = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    rest = [p for p in rest if p != TRAMPOLINE_DIR]
    if rest:
        os.environ["PYTHONPATH"] = os.pathsep.join(rest)
    else:
        os.environ.pop("PYTHONPATH", None)
