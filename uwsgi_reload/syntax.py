"""Syntax pre-check: compile changed ``.py`` files before reloading, so a save with a
typo keeps the working code serving instead of leaving the server with no app."""

from __future__ import annotations

import warnings
from collections.abc import Iterable


def syntax_errors(paths: Iterable[str]) -> dict[str, str]:
    """``{path: "path:line: message"}`` for each ``.py`` file that does not compile.
    Files that cannot be read are left to the reload (it reports them better)."""
    errors = {}
    for path in paths:
        if not path.endswith(".py"):
            continue
        try:
            with open(path, "rb") as f:
                source = f.read()
        except OSError:
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # SyntaxWarning noise is not our business
                compile(source, path, "exec", dont_inherit=True)
        except SyntaxError as error:  # includes IndentationError and TabError
            errors[path] = f"{path}:{error.lineno or 0}: {type(error).__name__}: {error.msg}"
        except ValueError as error:  # null bytes
            errors[path] = f"{path}:0: {error}"
    return errors
