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
import tempfile
import threading
import time
from contextlib import suppress
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


PIDFILE_LIMIT = 64
SERVER_NAMES = re.compile(r"uwsgi|gunicorn", re.IGNORECASE)
START_SLACK = 1.0  # the boot time is in whole seconds


def _pid_max() -> int:
    try:
        with open("/proc/sys/kernel/pid_max", "rb") as f:
            return int(f.read(32))
    except (OSError, ValueError):
        return 2**22  # Linux's highest possible pid_max


def _process_start(pid: int) -> float | None:
    """The wall-clock time ``pid`` started (None when /proc cannot say)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            ticks = int(f.read(4096).rsplit(b")", 1)[1].split()[19])
        with open("/proc/stat", "rb") as f:
            boot = next(int(line.split()[1]) for line in f if line.startswith(b"btime "))
    except (OSError, ValueError, IndexError, StopIteration):
        return None
    return boot + ticks / os.sysconf("SC_CLK_TCK")


def _check_server(pid: int, pidfile: str, written: float) -> None:
    """Refuse a pid that a stale pidfile names: a process that is not uWSGI or gunicorn
    (or Python running them), or one that started after the pidfile was written."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read(4096).split(b"\0")
    except FileNotFoundError:
        return  # no such process (kill says so), or no /proc: nothing more to check
    except OSError:
        return
    program = " ".join(os.path.basename(a.decode("utf-8", "replace")) for a in argv[:3])
    if not SERVER_NAMES.search(program):
        raise ActionError(
            f"process {pid} (from pidfile {pidfile}) is `{program.strip()}`, "
            "not uWSGI or gunicorn: the pidfile is stale and its pid now belongs to another "
            "program. Not signalling it; start the server, or point --pidfile at its pidfile"
        )
    started = _process_start(pid)
    if started is not None and started > written + START_SLACK:
        raise ActionError(
            f"process {pid} (from pidfile {pidfile}) started at {time.ctime(started)}, after "
            f"the pidfile was written ({time.ctime(written)}): the pidfile is stale and the "
            "pid was reused. Not signalling it; restart the server so it writes its pidfile"
        )


@dataclasses.dataclass
class SignalPid:
    pidfile: str
    signum: signal.Signals

    def describe(self) -> str:
        return f"send {self.signum.name} to the pid in {self.pidfile}"

    def pid(self) -> int:
        """The pid in the pidfile, once it is known to be a server of the expected kind
        that was already running when the pidfile was written."""
        try:
            fd = os.open(self.pidfile, os.O_RDONLY | os.O_NONBLOCK)
        except FileNotFoundError:
            raise ActionError(
                f"pidfile {self.pidfile} does not exist: is the server running, and does it "
                f"write this pidfile (uWSGI `pidfile = {self.pidfile}`, gunicorn "
                f"`--pid {self.pidfile}`)?"
            ) from None
        except OSError as error:
            raise ActionError(f"cannot read pidfile {self.pidfile}: {error.strerror}") from None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise ActionError(f"pidfile {self.pidfile} is not a regular file")
            raw = os.read(fd, PIDFILE_LIMIT + 1)  # a pid is short: never read a huge file
        except OSError as error:
            raise ActionError(f"cannot read pidfile {self.pidfile}: {error.strerror}") from None
        finally:
            os.close(fd)
        text = raw[:PIDFILE_LIMIT].decode("ascii", "replace").strip()
        if len(raw) > PIDFILE_LIMIT or not re.fullmatch(r"[0-9]{1,10}", text):
            shown = text[:40] + ("..." if len(raw) > 40 else "")
            raise ActionError(f"pidfile {self.pidfile} holds {shown!r}, not a process id")
        pid = int(text)
        if not 1 <= pid <= _pid_max():
            raise ActionError(
                f"pidfile {self.pidfile} holds {pid}, not a process id (from 1 to {_pid_max()})"
            )
        _check_server(pid, self.pidfile, info.st_mtime)
        return pid

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
CHANGED_FILE_ENV = "UWSGI_RELOAD_CHANGED_FILE"
CHANGED_SHOWN = 100  # paths in the variable; all of them are in the file
STOP_GRACE = 5.0  # after forwarding a stop signal, then the command's group is killed


def changed_variable(paths: list[str]) -> str:
    """The changed paths, one a line, at most ``CHANGED_SHOWN`` of them and a count line
    for the rest: one environment string may not exceed 128 KiB on Linux."""
    shown = paths[:CHANGED_SHOWN]
    if len(paths) > len(shown):
        shown.append(f"... and {len(paths) - len(shown)} more (all in ${CHANGED_FILE_ENV})")
    return "\n".join(shown)


@dataclasses.dataclass
class Exec:
    command: str
    timeout: float | None = None
    stop: threading.Event | None = None  # set by a stop signal: forward it, then return

    def describe(self) -> str:
        return f"run `{self.command}`"

    def check(self) -> None:
        if not self.command.strip():
            raise ActionError("--exec needs a command")

    def run(self, changes: Changes) -> str:
        # the full list, in a file only this user can read (mkstemp: 0600, O_EXCL)
        fd, listing = tempfile.mkstemp(prefix="uwsgi-reload-changed-", suffix=".txt")
        try:
            with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape") as f:
                f.write("".join(path + "\n" for path in changes.paths))
            env = {
                **os.environ,
                CHANGED_ENV: changed_variable(changes.paths),
                CHANGED_FILE_ENV: listing,
            }
            return self._run(env)
        finally:
            with suppress(OSError):
                os.unlink(listing)

    def _run(self, env: dict[str, str]) -> str:
        try:
            # its own session, so its process group can be signalled as a whole
            child = subprocess.Popen(self.command, shell=True, env=env, start_new_session=True)
        except OSError as error:
            raise ActionError(f"cannot run `{self.command}`: {error.strerror}") from None
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        while child.poll() is None:
            if self.stop is not None and self.stop.is_set():
                signum = getattr(self.stop, "signum", signal.SIGTERM)
                status = _end_group(child, signum, STOP_GRACE)
                raise ActionError(
                    f"stopping: sent {signal.Signals(signum).name} to `{self.command}`, "
                    f"which then ended ({_describe_status(status)})"
                )
            if deadline is not None and time.monotonic() > deadline:
                status = _end_group(child, signal.SIGTERM, 2.0)
                raise ActionError(
                    f"`{self.command}` still ran after {self.timeout:g}s (--exec-timeout): "
                    f"its process group was stopped ({_describe_status(status)})"
                )
            with suppress(subprocess.TimeoutExpired):
                child.wait(0.05)
        if child.returncode != 0:
            raise ActionError(f"`{self.command}` {_describe_status(child.returncode)}")
        return f"`{self.command}` exited with status 0"


def _end_group(child: subprocess.Popen, signum: int, grace: float) -> int:
    """Send ``signum`` to the child's process group, give it ``grace`` seconds, then
    SIGKILL the group; return the child's status."""
    for sig, wait in ((signum, grace), (signal.SIGKILL, 5.0)):
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(child.pid, sig)
        with suppress(subprocess.TimeoutExpired):
            return child.wait(wait)
    return child.wait()


def _describe_status(status: int) -> str:
    if status < 0:
        return f"killed by {signal.Signals(-status).name}"
    return f"exited with status {status}"
