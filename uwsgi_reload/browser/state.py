"""What open pages are told: the generation of the code serving, and the held saves.

One small JSON file in the instance's state folder, written atomically (a temporary
file renamed over it) by whichever process of the server learns something, and read
by the middleware for each poll. Nothing here waits: a poll is one read of a small file.

    {"key": "...", "generation": "...", "held": [{"file", "line", "message"}], "held_stats": "..."}

``key`` names the server generation whose code the ``generation`` belongs to (a new one
at each reload); ``generation`` changes only when new code serves: a reload's first
check, or a change a framework applied in every worker.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable, Mapping
from typing import Any

from uwsgi_reload.core.syntax import compile_error

FILE_NAME = "browser.json"


def state_path(folder: str) -> str:
    return os.path.join(folder, FILE_NAME)


def read(path: str) -> dict[str, Any]:
    """The published state; an empty one when nothing was published yet (or the file
    is unreadable: a page then just keeps polling)."""
    try:
        with open(path, encoding="utf-8") as file:
            data = json.load(file)
    except (OSError, ValueError):
        return {"key": "", "generation": "", "held": [], "held_stats": ""}
    return data if isinstance(data, dict) else {"generation": "", "held": []}


def write(path: str, data: Mapping[str, Any]) -> None:
    folder = os.path.dirname(path)
    fd, temporary = tempfile.mkstemp(prefix=".browser-", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            json.dump(data, file)
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise


def problem(path: str, line_text: str) -> dict[str, Any]:
    """``{"file", "line", "message"}`` from a ``path:line: message`` line."""
    line = 0
    message = line_text
    if line_text.startswith(path + ":"):
        number, _, rest = line_text[len(path) + 1 :].partition(": ")
        if number.isdigit():
            line, message = int(number), rest
    return {"file": path, "line": line, "message": message}


def held_problems(
    broken: Mapping[str, object], config_checks: Mapping[str, Callable[[], str | None]]
) -> list[dict[str, Any]]:
    """What each held file is reproached with, found again (the syntax gate keeps only
    the stats of the broken files): the ini check, or compiling the file once more."""
    problems = []
    for path in sorted(broken):
        line_text: str | None = None
        if path in config_checks:
            line_text = config_checks[path]()
        else:
            try:
                with open(path, "rb") as file:
                    line_text = compile_error(file.read(), path)
            except OSError as error:
                line_text = f"{path}:0: {error.strerror or error}"
        problems.append(problem(path, line_text or f"{path}:0: does not compile"))
    return problems


class Publisher:
    """Used by a host: writes the state file when what it says changes."""

    def __init__(self, folder: str) -> None:
        self.path = state_path(folder)

    def serving(self, key: str) -> None:
        """New code of server generation ``key`` serves: publish it once per key."""
        data = read(self.path)
        if data.get("key") != key:
            self._write(data, key=key, generation=f"{key}/{time.time_ns()}", held=[], stats="")

    def applied(self) -> None:
        """A framework applied a change in every worker (no reload): pages refresh."""
        data = read(self.path)
        generation = f"{data.get('key', '')}/{time.time_ns()}"
        self._write(data, generation=generation)

    def held(
        self,
        broken: Mapping[str, object],
        config_checks: Mapping[str, Callable[[], str | None]],
    ) -> None:
        """Publish the held saves when the set of broken files (or their stats) moved."""
        stats = repr(sorted(broken.items()))
        data = read(self.path)
        if data.get("held_stats", "") == stats or (not broken and not data.get("held")):
            return
        self._write(data, held=held_problems(broken, config_checks), stats=stats)

    def _write(
        self,
        data: dict[str, Any],
        key: str | None = None,
        generation: str | None = None,
        held: list | None = None,
        stats: str | None = None,
    ) -> None:
        new = dict(data)
        if key is not None:
            new["key"] = key
        if generation is not None:
            new["generation"] = generation
        if held is not None:
            new["held"] = held
            new["held_stats"] = stats or ""
        write(self.path, new)
