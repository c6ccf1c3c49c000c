"""State shared by the processes of one server instance, in files.

uWSGI runs our check in whichever worker is free, and each worker has its own memory:
a module one worker imported after the fork, or a change one worker handled without a
reload, must be known to the next worker that checks. The journal is an append-only
file of such facts; each process reads what it has not read yet. A lock file makes
sure only one process checks at a time. The history file outlives reloads (the master
re-executes itself, so memory does not) and feeds the loop guard.

Where the state lives, and why it can be trusted: see "Security" in README.md. In
short, a folder is used only if it is a real directory (no symlink) owned by this user
with no group or other access; every file in it is opened with ``O_NOFOLLOW`` and
created with ``O_EXCL`` or ``mkstemp``; cleanup removes only entries this package made.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import stat
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress

from uwsgi_reload.core.snapshot import Stat
from uwsgi_reload.hosts.uwsgi.waker import alive

STATE_DIR_ENV = "UWSGI_RELOAD_STATE_DIR"
MARKER = "owner.json"  # in every instance folder: whose it is (see _identity)
FALLBACKS = 9  # numbered alternatives to a usual name someone else took
KEEP_NOTICES = 100
JOURNAL_ROTATE_BYTES = 1 << 20  # a single-reader journal (gunicorn) is rotated past this

_INSTANCE = re.compile(r"srv-(\d+)-(\d+)-(\d+)")  # srv-<pid namespace>-<pid>-<start time>


class StateDirError(OSError):
    """No private folder could be found for the state; the message says what was tried."""


# --------------------------------------------------------------------------- the folder


def _private(path: str) -> str:
    """Why ``path`` must not be used ("" when it is a real directory owned by us that no
    group or other user can enter)."""
    try:
        info = os.lstat(path)
    except OSError as error:
        return f"{path}: {error.strerror}"
    if stat.S_ISLNK(info.st_mode):
        return f"{path} is a symlink"
    if not stat.S_ISDIR(info.st_mode):
        return f"{path} is not a directory"
    if info.st_uid != os.geteuid():
        return f"{path} belongs to uid {info.st_uid}, not to this user ({os.geteuid()})"
    if info.st_mode & 0o077:
        return f"{path} has mode {stat.S_IMODE(info.st_mode):o}: other users can enter it"
    return ""


def _safe_parent(path: str) -> str:
    """Why entries of the folder ``path`` could be renamed or replaced by another user
    ("" when they cannot: it belongs to us or root and is not writable by others, or it
    has the sticky bit, as /tmp has)."""
    try:
        info = os.stat(path)
    except OSError as error:
        return f"{path}: {error.strerror}"
    if info.st_uid not in (0, os.geteuid()):
        return f"{path} belongs to uid {info.st_uid}"
    if info.st_mode & 0o022 and not info.st_mode & stat.S_ISVTX:
        return f"{path} is writable by other users and has no sticky bit"
    return ""


def _make_private(path: str) -> str:
    """Create ``path`` 0700 whatever the umask, or check the one that is there.
    Returns why it cannot be used ("" when it can)."""
    try:
        os.mkdir(path, 0o700)
        created = True
    except FileExistsError:
        created = False
    except OSError as error:
        return f"cannot create {path}: {error.strerror}"
    if created:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except OSError as error:
            return f"cannot open {path}: {error.strerror}"
        try:
            if os.fstat(fd).st_uid == os.geteuid():
                os.fchmod(fd, 0o700)  # the umask may have taken bits away, never added
        finally:
            os.close(fd)
    return _private(path)


def _candidates(environ: Mapping[str, str]) -> list[tuple[str, str]]:
    """(parent, name) of the folders to try for the state, in order."""
    uid = os.geteuid()
    tried = []
    chosen = environ.get(STATE_DIR_ENV)
    if chosen:
        tried.append((chosen, f"uwsgi-reload-{uid}"))
    runtime = environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isabs(runtime) and not _private(runtime):
        tried.append((runtime, "uwsgi-reload"))
    tried.append((tempfile.gettempdir(), f"uwsgi-reload-{uid}"))
    return tried


def state_root(environ: Mapping[str, str] | None = None) -> tuple[str, list[str]]:
    """The private folder that holds this user's state, and the reasons any folder
    tried before it was refused (empty in the usual case).

    In order: ``$UWSGI_RELOAD_STATE_DIR/uwsgi-reload-<uid>``, then
    ``$XDG_RUNTIME_DIR/uwsgi-reload`` (when that folder is private), then
    ``$TMPDIR/uwsgi-reload-<uid>``; where a name is taken by someone else (or is not
    private), ``<name>.1`` to ``<name>.9`` beside it. Every process of a server walks the
    same list and so finds the same folder. Raises :class:`StateDirError`."""
    environ = os.environ if environ is None else environ
    refused: list[str] = []
    for parent, name in _candidates(environ):
        if environ.get(STATE_DIR_ENV) == parent and not os.path.isdir(parent):
            with suppress(OSError):
                os.makedirs(parent, 0o700)
        problem = _safe_parent(parent)
        if problem:
            refused.append(problem)
            continue
        for suffix in ["", *(f".{n}" for n in range(1, FALLBACKS + 1))]:
            path = os.path.join(parent, name + suffix)
            problem = _make_private(path)
            if not problem:
                return path, refused
            refused.append(problem)
    raise StateDirError(
        "no private folder for uwsgi-reload's state: "
        + "; ".join(refused)
        + f". Set {STATE_DIR_ENV} to a folder of your own."
    )


def _read_small(path: str, limit: int = 4096) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return b""
        return os.read(fd, limit)
    finally:
        os.close(fd)


def _boot_id() -> str:
    try:
        return _read_small("/proc/sys/kernel/random/boot_id").decode().strip()
    except (OSError, UnicodeDecodeError):
        return ""


def _pid_namespace() -> int:
    """The inode of our pid namespace: pids and start times are only comparable inside
    one (containers that share a folder each have their own)."""
    try:
        return os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return 0


def _identity(pid: int, started: str) -> dict:
    return {"pid": pid, "started": started, "pidns": _pid_namespace(), "boot": _boot_id()}


def instance_dir(
    server_pid: int, root: str | None = None, log: Callable[[str], None] | None = None
) -> str:
    """A folder private to one server instance, inside the private state folder
    (``root``, when given, is taken as that folder). Named after the pid namespace, the
    server's pid and the pid's start time, which all survive uWSGI's re-exec at a reload
    and tell a reused pid apart; a marker file inside says it is ours. When the usual
    state folder could not be used, ``log`` hears why, once per server."""
    refused: list[str] = []
    if root is None:
        root, refused = state_root()
    started = _start_time(server_pid)
    path = os.path.join(root, f"srv-{_pid_namespace()}-{server_pid}-{started}")
    problem = _make_private(path)
    if problem:
        raise StateDirError(f"cannot use the state folder of this server: {problem}")
    problem = _make_private(os.path.join(path, "wake"))  # the uWSGI host's wake-up folder
    if problem:
        raise StateDirError(f"cannot use the state folder of this server: {problem}")
    marker = os.path.join(path, MARKER)
    with suppress(FileExistsError):
        _create_exclusive(marker, json.dumps(_identity(server_pid, started)).encode())
    if refused and log is not None:
        try:
            _create_exclusive(os.path.join(path, "fallback-logged"), b"")
        except FileExistsError:
            return path
        log(f"state folder {root}: refused " + "; ".join(refused))
    return path


def _create_exclusive(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def _owned_instance(root: str, name: str) -> dict | None:
    """The identity in the marker of ``root/name`` if that entry is an instance folder
    this user made (exact name, real directory, ours, a matching marker), else None."""
    match = _INSTANCE.fullmatch(name)
    path = os.path.join(root, name)
    if not match or _private(path):
        return None
    try:
        info = os.lstat(os.path.join(path, MARKER))
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid():
            return None
        identity = json.loads(_read_small(os.path.join(path, MARKER)))
    except (OSError, ValueError):
        return None
    pidns, pid, started = (int(g) for g in match.groups())
    if not isinstance(identity, dict) or (
        identity.get("pidns"),
        identity.get("pid"),
        identity.get("started"),
    ) != (pidns, pid, str(started)):
        return None
    return identity


def remove_dead_instances(folder: str) -> list[str]:
    """Remove the instance folders beside ``folder`` whose server is gone. Only folders
    this package made are candidates (:func:`_owned_instance`), and only those of our
    pid namespace and boot: a pid of another container or boot says nothing here.
    Returns the names removed."""
    root = os.path.dirname(folder)
    here = (_pid_namespace(), _boot_id())
    removed = []
    for name in os.listdir(root):
        path = os.path.join(root, name)
        if path == folder:
            continue
        identity = _owned_instance(root, name)
        if identity is None or (identity.get("pidns"), identity.get("boot")) != here:
            continue
        if not _runs(identity["pid"], identity["started"]):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(name)
    return removed


def _runs(pid: int, started: str) -> bool:
    if started != "0":
        return _start_time(pid) == started
    return alive(pid)  # no /proc: the start time was not known, the pid is all there is


def _start_time(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return "0"


def start_generation(journal: Journal, history: History | None = None) -> bool:
    """Clean up after the last generation: the journals of earlier generations (the one
    just before stays, for its last readers), the folders of dead servers, and the
    notices bound. Call it from whichever process starts a generation (uWSGI's master,
    or each worker under lazy-apps; gunicorn's arbiter): a lock and a note of the last
    generation cleaned make it run once per generation. Returns True if it ran."""
    fd = _open_lock(os.path.join(journal.folder, "cleanup.lock"))
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        done = os.path.join(journal.folder, "cleaned.json")
        if read_json(done, "") == journal.path:
            return False
        journal.clear_old(keep_previous=True)
        remove_dead_instances(journal.folder)
        (history or History(journal.folder)).trim_notices()
        write_json(done, journal.path)
        return True
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- files


def _open_lock(path: str) -> int:
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)


def read_json(path: str, default: object, check: Callable[[object], object] | None = None):
    """The JSON in ``path`` (at most 1 MB, no symlink), passed through ``check`` when
    given; ``default`` when the file is missing, unreadable or not what ``check``
    accepts (it raises ValueError or TypeError)."""
    try:
        data = json.loads(_read_small(path, 1 << 20).decode("utf-8", "surrogateescape"))
        return check(data) if check is not None else data
    except (OSError, ValueError, TypeError):
        return default


def write_json(path: str, data: object) -> None:
    """Replace ``path`` with ``data`` in one step, through a temp file of an
    unpredictable name made beside it (``mkstemp``: ``O_EXCL``, mode 0600)."""
    folder, name = os.path.split(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape") as f:
            json.dump(data, f)
        os.replace(tmp, path)
    except BaseException:
        with suppress(OSError):
            os.unlink(tmp)
        raise


class Journal:
    """Append-only facts of one generation (from one (re)start of the server to the next).

    ``single_reader``: one process reads it all (gunicorn's arbiter), so it can rotate the
    file when it grows past ``JOURNAL_ROTATE_BYTES``."""

    def __init__(self, folder: str, generation: str, single_reader: bool = False) -> None:
        self.folder = folder
        self.path = os.path.join(folder, f"journal-{generation}")
        self.single_reader = single_reader
        self._offset = 0
        self._retired_offset = 0

    def clear_old(self, keep_previous: bool = False) -> None:
        """Remove the journals of earlier generations (called by the process that
        starts a generation). ``keep_previous`` keeps the newest of them, which workers
        of the last generation (a chain reload) may still read."""
        old = []
        for name in os.listdir(self.folder):
            path = os.path.join(self.folder, name)
            if name.startswith("journal-") and path != self.path:
                with suppress(OSError):
                    old.append((os.lstat(path).st_mtime_ns, path))
        old.sort()
        for _, path in old[:-1] if keep_previous else old:
            with suppress(OSError):
                os.unlink(path)

    def _append(self, record: dict) -> None:
        line = (json.dumps(record, separators=(",", ":")) + "\n").encode("utf-8", "surrogatepass")
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW
        fd = os.open(self.path, flags, 0o600)
        try:
            os.write(fd, line)  # one write with O_APPEND: lines from processes never mix
        finally:
            os.close(fd)

    def record_baseline(self, stats: dict[str, Stat | None]) -> None:
        """These paths now have this baseline (None: gone, and that is known)."""
        if stats:
            self._append({"baseline": stats})

    def record_loaded(self, path: str, stat: Stat) -> None:
        """This process imported ``path`` at ``stat``."""
        self._append({"loaded": [path, stat]})

    def record(self, **fact: object) -> None:
        self._append(fact)

    def _read_from(self, path: str, offset: int) -> tuple[bytes, int]:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            return b"", offset
        try:
            os.lseek(fd, offset, os.SEEK_SET)
            chunks = []
            while chunk := os.read(fd, 1 << 16):
                chunks.append(chunk)
            data = b"".join(chunks)
        finally:
            os.close(fd)
        end = data.rfind(b"\n") + 1  # leave a half-written line for next time
        return data[:end], offset + end

    def read_new(self) -> list[dict]:
        """The records appended since this process last read."""
        data = b""
        retired = self.path + ".old"
        if self.single_reader and self._retired_offset:
            # a writer that opened the file just before it was rotated wrote there
            late, self._retired_offset = self._read_from(retired, self._retired_offset)
            data += late
        new, self._offset = self._read_from(self.path, self._offset)
        data += new
        if self.single_reader and self._offset > JOURNAL_ROTATE_BYTES:
            with suppress(OSError):
                os.replace(self.path, retired)
                self._retired_offset, self._offset = self._offset, 0
        records = []
        for line in data.splitlines():
            try:
                record = json.loads(line.decode("utf-8", "surrogatepass"))
            except ValueError:
                continue
            if isinstance(record, dict) and _well_formed(record):
                records.append(record)
        return records

    @contextmanager
    def exclusive(self) -> Iterator[bool]:
        """Yield True if this process got the check lock, False if another holds it."""
        fd = _open_lock(os.path.join(self.folder, "lock"))
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


def _is_stat(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(n, (int, float)) for n in value)


def _path_stats(value: object, missing_ok: bool) -> bool:
    return isinstance(value, dict) and all(
        isinstance(path, str) and (_is_stat(stat) or (missing_ok and stat is None))
        for path, stat in value.items()
    )


_SHAPES: dict[str, Callable[[object], bool]] = {
    "baseline": lambda v: _path_stats(v, missing_ok=True),
    "broken": lambda v: _path_stats(v, missing_ok=False),
    "failed": lambda v: _path_stats(v, missing_ok=True),
    "loaded": lambda v: (
        isinstance(v, list) and len(v) == 2 and isinstance(v[0], str) and _is_stat(v[1])
    ),
    "reloading": lambda v: isinstance(v, list) and all(isinstance(p, str) for p in v),
    "apply": lambda v: isinstance(v, list) and all(isinstance(p, str) for p in v),
    "announced": lambda v: isinstance(v, int),
    "pid": lambda v: isinstance(v, int),
    "watch": lambda v: isinstance(v, dict),
}


def _well_formed(record: dict) -> bool:
    """A journal line is data: one whose known fields have the wrong shape (a torn or
    foreign line) is dropped rather than break the reader."""
    return all(check(record[key]) for key, check in _SHAPES.items() if key in record)


def _list(data: object) -> list:
    if not isinstance(data, list):
        raise TypeError("not a list")
    return data


class History:
    """Recent reloads, kept across reloads: [(time, [paths], quick)], newest last."""

    def __init__(self, folder: str, keep: int = 20) -> None:
        self.path = os.path.join(folder, "history.json")
        self.suppressed_path = os.path.join(folder, "suppressed.json")
        self.notices_path = os.path.join(folder, "notices.json")
        self.count_path = os.path.join(folder, "reloads.json")
        self.chain_path = os.path.join(folder, "chain.json")
        self.keep = keep

    def load(self) -> list:
        return read_json(self.path, [], _list)

    def add(self, paths: list[str], quick: bool = False, now: float | None = None) -> list:
        entry = [time.time() if now is None else now, paths, quick]
        entries = [*self.load(), entry][-self.keep :]
        write_json(self.path, entries)
        write_json(self.count_path, self.count() + 1)
        return entries

    def set_chain(self, pids: list[int]) -> None:
        """The workers a chain reload is replacing."""
        write_json(self.chain_path, pids)

    def chain(self) -> list[int]:
        return read_json(self.chain_path, [], lambda data: [int(pid) for pid in _list(data)])

    def count(self) -> int:
        """How many reloads this server has had (the history keeps only the last ones)."""
        return read_json(self.count_path, 0, int)

    def suppressed(self) -> set[str]:
        """Files the loop guard stopped tracking for the life of this server."""
        return read_json(self.suppressed_path, set(), lambda data: {str(p) for p in _list(data)})

    def suppress(self, paths: set[str]) -> None:
        write_json(self.suppressed_path, sorted(self.suppressed() | paths))

    @contextmanager
    def _notices(self) -> Iterator[list]:
        fd = _open_lock(self.notices_path + ".lock")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # workers starting together ask at once
            yield read_json(self.notices_path, [], _list)
        finally:
            os.close(fd)

    def first_time(self, notice: str) -> bool:
        """True the first time ``notice`` is seen in the life of this server (so that a
        warning is logged once, not at every check, worker or reload). The last
        ``KEEP_NOTICES`` are remembered."""
        with self._notices() as seen:
            if notice in seen:
                return False
            write_json(self.notices_path, [*seen, notice][-KEEP_NOTICES:])
            return True

    def trim_notices(self) -> None:
        with self._notices() as seen:
            if len(seen) > KEEP_NOTICES:
                write_json(self.notices_path, seen[-KEEP_NOTICES:])
