"""Syntax pre-check: compile changed ``.py`` files before reloading, so a save with a
typo keeps the working code serving instead of leaving the server with no app.

The check runs inside a serving uWSGI worker, so it must never block or take long: it
reads only regular files (a FIFO in a module's place would block a plain ``open()``
forever), and leaves files bigger than :data:`MAX_CHECK_BYTES` to the reload (compiling
1 MB of generated code took 0.5 s and 130 MB here; 6 MB took 5 s and 700 MB)."""

from __future__ import annotations

import os
import stat
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from uwsgi_reload.core.snapshot import Changes, Stat

MAX_CHECK_BYTES = 1_000_000


@dataclass
class Report:
    """What a check found: ``errors`` maps each file that does not compile to its
    ``path:line: message`` line; ``unchecked`` maps each file too big to check to why."""

    errors: dict[str, str] = field(default_factory=dict)
    unchecked: dict[str, str] = field(default_factory=dict)


class _TooBig(Exception):
    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size


def _read_source(path: str, max_bytes: int) -> bytes | None:
    """The bytes of ``path`` if it is a regular file we may read; None if it is not
    (missing, unreadable, a FIFO, a device, a folder). Never blocks: opening a FIFO
    with O_NONBLOCK returns at once, and fstat then says what the file is. Raises
    _TooBig for a file of more than ``max_bytes``."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except (OSError, ValueError):
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None
        if st.st_size > max_bytes:
            raise _TooBig(st.st_size)
        chunks = []
        read = 0
        while read <= max_bytes:  # the file may grow while we read it
            chunk = os.read(fd, max_bytes + 1 - read)
            if not chunk:
                break
            chunks.append(chunk)
            read += len(chunk)
        if read > max_bytes:
            raise _TooBig(read)
        return b"".join(chunks)
    except OSError:
        return None
    finally:
        os.close(fd)


def compile_error(source: bytes, path: str) -> str | None:
    """The ``path:line: message`` line when ``source`` does not compile, else None."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SyntaxWarning noise is not our business
            compile(source, path, "exec", dont_inherit=True)
    except SyntaxError as error:  # includes IndentationError and TabError
        return f"{path}:{error.lineno or 0}: {type(error).__name__}: {error.msg}"
    except ValueError as error:  # null bytes
        return f"{path}:0: {error}"
    except (RecursionError, MemoryError) as error:
        # The parser's or compiler's stack limit (deep nesting such as `1+1+...+1` or
        # `- - - ... 1`): importing the file would fail the same way, so it is broken.
        return (
            f"{path}:0: {type(error).__name__}: too deeply nested for Python to compile "
            "(importing it would fail the same way)"
        )
    return None


def check_files(paths: Iterable[str], max_bytes: int = MAX_CHECK_BYTES) -> Report:
    """Compile each ``.py`` file of ``paths`` that is a regular file of at most
    ``max_bytes``. Files that cannot be read are left to the reload (it reports them
    better); bigger ones are listed in ``unchecked``."""
    report = Report()
    for path in paths:
        if not path.endswith(".py"):
            continue
        try:
            source = _read_source(path, max_bytes)
        except _TooBig as too_big:
            report.unchecked[path] = (
                f"{_megabytes(too_big.size)}, more than the {_megabytes(max_bytes)} it compiles"
            )
            continue
        if source is None:
            continue
        error = compile_error(source, path)
        if error is not None:
            report.errors[path] = error
    return report


def _megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


class SyntaxGate:
    """Holds reloads back while a changed ``.py`` file does not compile.

    ``broken`` maps each such file to its stat when it failed: the file stays broken,
    without being compiled again, until its stat changes. A host that shares state
    between processes merges their ``broken`` maps.
    """

    def __init__(self, log: Callable[[str], None], max_bytes: int = MAX_CHECK_BYTES) -> None:
        self.log = log
        self.max_bytes = max_bytes
        self.broken: dict[str, Stat] = {}
        # the server's own configuration files, each with the check a host gives: the
        # ``path:line: problem`` that would stop the server loading it, or None
        self.config_checks: dict[str, Callable[[], str | None]] = {}

    def learn_broken(self, stats: Mapping[str, Stat]) -> None:
        """Another process found these files broken at these stats."""
        self.broken.update(stats)

    def holds(self, changes: Changes, current: Mapping[str, Stat]) -> bool:
        """Compile the changed files that exist; log each that fails (once per change)
        and say whether the reload must wait."""
        report = check_files([p for p in changes.paths if p in current], self.max_bytes)
        for path, why in report.unchecked.items():
            self.log(f"reloading without the syntax pre-check for {path}: {why}")
        for message in report.errors.values():
            self.log(f"not reloading, this file does not compile: {message}")
        for path in sorted(set(changes.paths) & self.config_checks.keys() & current.keys()):
            problem = self.config_checks[path]()
            if problem:
                report.errors[path] = problem
                self.log(f"not reloading, the server would not start with it: {problem}")
        self.broken.update((p, current[p]) for p in report.errors)
        self.broken = {p: s for p, s in self.broken.items() if current.get(p) == s}
        if self.broken and not set(changes.paths) & self.broken.keys():
            self.log(f"{changes.describe()}: waiting for a fix of " + ", ".join(self.broken))
        return bool(self.broken)
