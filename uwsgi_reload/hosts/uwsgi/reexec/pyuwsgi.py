"""The trampoline for a graceful reload under the pyuwsgi wheel.

uWSGI re-executes its master as ``<real interpreter> <venv>/bin/uwsgi ARGS`` (its binary
path is the interpreter behind the venv's symlink), and that interpreter does not know
the venv: ``from pyuwsgi import run`` would fail. uwsgi_reload puts this folder on
``PYTHONPATH`` and the venv's interpreter in ``UWSGI_RELOAD_PYUWSGI_PYTHON``, so that
import lands here: the process turns into ``<venv python> <venv>/bin/uwsgi ARGS``, the
command the server was started with, keeping its pid and its listening sockets.

In any other process this module steps aside and loads the real pyuwsgi.
"""

import importlib
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
_MARKER = "UWSGI_RELOAD_PYUWSGI_PYTHON"


def _without_here(value: str) -> str:
    return os.pathsep.join(p for p in value.split(os.pathsep) if p and p != _HERE)


def _restore_environment() -> None:
    python_path = _without_here(os.environ.get("PYTHONPATH", ""))
    if python_path:
        os.environ["PYTHONPATH"] = python_path
    else:
        os.environ.pop("PYTHONPATH", None)
    os.environ.pop(_MARKER, None)


if __name__ == "pyuwsgi":  # imported from the trampoline folder, not as our submodule
    _python = os.environ.get(_MARKER, "")
    if _python and sys.prefix == sys.base_prefix and os.access(_python, os.X_OK):
        _restore_environment()  # the new master sets them again for its own reload
        os.execv(_python, [_python, *sys.orig_argv[1:]])

    # Not the re-exec: load the real module in place of this one.
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]
    del sys.modules[__name__]
    sys.modules[__name__] = importlib.import_module(__name__)
