"""How ``uwsgi-reload watch`` tells a server to reload: a signal to the pid in a
pidfile, a command to uWSGI's master FIFO, a touched file, a shell command. Each
says clearly why it cannot work (missing pidfile, dead pid, FIFO nobody reads)."""

from __future__ import annotations

import dataclasses
import errno
import os
import re
import signal
import stat
import subprocess
import time
from typing import Protocol

from uwsgi_reload.core.snapshot import Changes
from uwsgi_reload.hosts.uwsgi import masterfifo


class ActionError(Exception):
    """The server cannot be told to reload; the message says why and what to check."""


class Action(Protocol):
    def describe(self) -> str: ...

    def check(self) -> None:
        """Raise :class:`ActionError` if the action cannot work right now."""

    def run(self, changes: Changes) -> str:
        """Tell the server; return what was done, or raise :class:`ActionError`."""


@dataclasses.dataclass
class SignalPid:
    pidfile: str
    signum: signal.Signals

    def describe(self) -> str:
        return f"send {self.signum.name} to the pid in {self.pidfile}"

    def pid(self) -> int:
        try:
            with open(self.pidfile, encoding="utf-8", errors="replace") as f:
                text = f.read().strip()
        except FileNotFoundError:
            raise ActionError(
                f"pidfile {self.pidfile} does not exist: is the server running, and does it "
                f"write this pidfile (uWSGI `pidfile = {self.pidfile}`, gunicorn "
                f"`--pid {self.pidfile}`)?"
            ) from None
        except OSError as error:
            raise ActionError(f"cannot read pidfile {self.pidfile}: {error.strerror}") from None
        if not re.fullmatch(r"\d+", text) or int(text) < 1:
            raise ActionError(f"pidfile {self.pidfile} holds {text[:40]!r}, not a process id")
        return int(text)

    def _kill(self, signum: int) -> int:
        pid = self.pid()
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            raise ActionError(
                f"no process {pid} (from pidfile {self.pidfile}): the server is not running "
                "and the pidfile is stale"
            ) from None
        except PermissionError:
            raise ActionError(
                f"process {pid} (from pidfile {self.pidfile}) belongs to another user: "
                "run the watcher as the server's user"
            ) from None
        return pid

    def check(self) -> None:
        self._kill(0)

    def run(self, changes: Changes) -> str:
        return f"sent {self.signum.name} to {self._kill(self.signum)}"


@dataclasses.dataclass
class WriteFifo:
    path: str
    command: str

    def describe(self) -> str:
        return f"write {self.command!r} to the uWSGI master FIFO {self.path}"

    def _open(self) -> int:
        hint = f"is uWSGI running with `master-fifo = {self.path}`?"
        try:
            fd = masterfifo.open_for_writing(self.path)
        except OSError as error:
            if error.errno == errno.ENOENT:
                raise ActionError(f"FIFO {self.path} does not exist: {hint}") from None
            if error.errno == errno.ENXIO:
                raise ActionError(f"nobody reads the FIFO {self.path}: {hint}") from None
            raise ActionError(f"cannot open the FIFO {self.path}: {error.strerror}") from None
        if not stat.S_ISFIFO(os.fstat(fd).st_mode):
            os.close(fd)
            raise ActionError(
                f"{self.path} is not a FIFO: uWSGI creates one there with "
                f"`master-fifo = {self.path}`"
            )
        return fd

    def check(self) -> None:
        os.close(self._open())

    def run(self, changes: Changes) -> str:
        fd = self._open()
        try:
            os.write(fd, self.command.encode())
        except OSError as error:
            raise ActionError(f"cannot write to the FIFO {self.path}: {error.strerror}") from None
        finally:
            os.close(fd)
        return f"wrote {self.command!r} to {self.path}"


@dataclasses.dataclass
class Touch:
    path: str

    def describe(self) -> str:
        return f"touch {self.path}"

    def check(self) -> None:
        folder = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(folder):
            raise ActionError(f"cannot touch {self.path}: the folder {folder} does not exist")

    def run(self, changes: Changes) -> str:
        try:
            old = os.stat(self.path).st_mtime
        except FileNotFoundError:
            old = 0.0
        except OSError as error:
            raise ActionError(f"cannot touch {self.path}: {error.strerror}") from None
        # uWSGI compares whole-second mtimes: make sure the second changes
        new = max(time.time(), int(old) + 1.0)
        try:
            with open(self.path, "a"):
                pass
            os.utime(self.path, (new, new))
        except OSError as error:
            raise ActionError(f"cannot touch {self.path}: {error.strerror}") from None
        return f"touched {self.path}"


CHANGED_ENV = "UWSGI_RELOAD_CHANGED"


@dataclasses.dataclass
class Exec:
    command: str

    def describe(self) -> str:
        return f"run `{self.command}`"

    def check(self) -> None:
        if not self.command.strip():
            raise ActionError("--exec needs a command")

    def run(self, changes: Changes) -> str:
        env = {**os.environ, CHANGED_ENV: "\n".join(changes.paths)}
        try:
            status = subprocess.run(self.command, shell=True, env=env, check=False).returncode
        except OSError as error:
            raise ActionError(f"cannot run `{self.command}`: {error.strerror}") from None
        if status != 0:
            raise ActionError(f"`{self.command}` exited with status {status}")
        return f"`{self.command}` exited with status 0"
