"""The app's own files that must stay tracked even when they fail to import: the
files a failed load named, and where a module would be."""

from __future__ import annotations

import os
import sys
from types import ModuleType


def module_path(name: str, search_path: list[str]) -> str | None:
    """Find the file of a dotted module without importing it (importing a broken
    module is exactly what must not happen here)."""
    parts = name.split(":", 1)[0].strip().split(".")
    for folder in search_path:
        base = os.path.join(folder or os.getcwd(), *parts)
        for candidate in (base + ".py", os.path.join(base, "__init__.py")):
            if os.path.isfile(candidate):
                return os.path.abspath(candidate)
    return None


def failure_files(system: ModuleType = sys) -> list[str]:
    """The files named by the last uncaught error Python printed (uWSGI prints the
    error of a failed app load with ``PyErr_Print``, which stores it in ``sys.last_value``)."""
    import traceback  # not at import time: a uWSGI master imports this module at every start

    error = getattr(system, "last_value", None)
    files: list[str] = []
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        filename = getattr(error, "filename", None)
        if isinstance(error, (SyntaxError, OSError)) and isinstance(filename, str):
            files.append(filename)
        for frame in traceback.extract_tb(error.__traceback__):
            files.append(frame.filename)
        if isinstance(error, ModuleNotFoundError) and error.name:
            files.extend(missing_module_candidates(error.name, system.path))
        error = error.__cause__ or error.__context__
    # relative names (uWSGI compiles `wsgi-file = app.py` as "app.py") are relative to
    # the working directory, which is where the check runs too
    return list(dict.fromkeys(os.path.abspath(f) for f in files if f and not f.startswith("<")))


def missing_module_candidates(name: str, search_path: list[str]) -> list[str]:
    """Where a module that could not be found would appear: ``x/y.py`` and
    ``x/y/__init__.py`` under each folder of the search path."""
    parts = name.split(".")
    candidates = []
    for folder in search_path:
        if not isinstance(folder, str) or not os.path.isdir(folder or "."):
            continue
        base = os.path.join(folder or os.getcwd(), *parts)
        candidates += [base + ".py", os.path.join(base, "__init__.py")]
    return candidates
