"""Where the state lives: a private folder per user, one folder per server instance in
it, and the cleanup of the folders of servers that are gone (only ever our own)."""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Callable, Mapping
from contextlib import suppress

from uwsgi_reload.hosts.state.files import create_exclusive, read_small
from uwsgi_reload.hosts.state.processes import boot_id, identity, pid_namespace, runs, start_time

STATE_DIR_ENV = "UWSGI_RELOAD_STATE_DIR"

MARKER = "owner.json"  # in every instance folder: whose it is (see _identity)

FALLBACKS = 9  # numbered alternatives to a usual name someone else took

_INSTANCE = re.compile(r"srv-(\d+)-(\d+)-(\d+)")  # srv-<pid namespace>-<pid>-<start time>


class StateDirError(OSError):
    """No private folder could be found for the state; the message says what was tried."""


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
    tried.extend((parent, f"uwsgi-reload-{uid}") for parent in _temp_folders(environ))
    return tried


def _temp_folders(environ: Mapping[str, str]) -> list[str]:
    """The folders ``tempfile.gettempdir()`` chooses from, in its order, those that
    exist: each is tried in turn. (Not ``tempfile`` itself: importing it costs 8 ms at
    each uWSGI master start, which a graceful reload waits for.)"""
    named = [environ.get(key) for key in ("TMPDIR", "TEMP", "TMP")]
    folders = [os.path.abspath(v) for v in named if v] + ["/tmp", "/var/tmp", "/usr/tmp"]
    existing = [f for f in dict.fromkeys(folders) if os.path.isdir(f)]
    return existing or ["/tmp"]


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
    started = start_time(server_pid)
    path = os.path.join(root, f"srv-{pid_namespace()}-{server_pid}-{started}")
    problem = _make_private(path)
    if problem:
        raise StateDirError(f"cannot use the state folder of this server: {problem}")
    problem = _make_private(os.path.join(path, "wake"))  # the uWSGI host's wake-up folder
    if problem:
        raise StateDirError(f"cannot use the state folder of this server: {problem}")
    marker = os.path.join(path, MARKER)
    with suppress(FileExistsError):
        create_exclusive(marker, json.dumps(identity(server_pid, started)).encode())
    if refused and log is not None:
        try:
            create_exclusive(os.path.join(path, "fallback-logged"), b"")
        except FileExistsError:
            return path
        log(f"state folder {root}: refused " + "; ".join(refused))
    return path


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
        identity = json.loads(read_small(os.path.join(path, MARKER)))
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
    here = (pid_namespace(), boot_id())
    removed = []
    for name in os.listdir(root):
        path = os.path.join(root, name)
        if path == folder:
            continue
        identity = _owned_instance(root, name)
        if identity is None or (identity.get("pidns"), identity.get("boot")) != here:
            continue
        if not runs(identity["pid"], identity["started"]):
            import shutil  # only then: a uWSGI master starts without it

            shutil.rmtree(path, ignore_errors=True)
            removed.append(name)
    return removed
