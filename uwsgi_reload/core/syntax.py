"""Syntax pre-check: compile changed ``.py`` files before reloading, so a save with a
typo keeps the working code serving instead of leaving the server with no app."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Mapping

from uwsgi_reload.core.snapshot import Changes, Stat


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


class SyntaxGate:
    """Holds reloads back while a changed ``.py`` file does not compile.

    ``broken`` maps each such file to its stat when it failed: the file stays broken,
    without being compiled again, until its stat changes. A host that shares state
    between processes merges their ``broken`` maps.
    """

    def __init__(self, log: Callable[[str], None]) -> None:
        self.log = log
        self.broken: dict[str, Stat] = {}

    def learn_broken(self, stats: Mapping[str, Stat]) -> None:
        """Another process found these files broken at these stats."""
        self.broken.update(stats)

    def holds(self, changes: Changes, current: Mapping[str, Stat]) -> bool:
        """Compile the changed files; log each that fails (once per change) and say
        whether the reload must wait."""
        errors = syntax_errors(changes.paths)
        for message in errors.values():
            self.log(f"not reloading, this file does not compile: {message}")
        self.broken.update((p, current[p]) for p in errors if p in current)
        self.broken = {p: s for p, s in self.broken.items() if current.get(p) == s}
        if self.broken and not set(changes.paths) & self.broken.keys():
            self.log(f"{changes.describe()}: waiting for a fix of " + ", ".join(self.broken))
        return bool(self.broken)
