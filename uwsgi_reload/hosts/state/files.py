"""Files in the state folder: never through a symlink, created with ``O_EXCL``, read
with a size bound."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from contextlib import suppress


def read_small(path: str, limit: int = 4096) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return b""
        return os.read(fd, limit)
    finally:
        os.close(fd)


def create_exclusive(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def open_lock(path: str) -> int:
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)


def read_json(path: str, default: object, check: Callable[[object], object] | None = None):
    """The JSON in ``path`` (at most 1 MB, no symlink), passed through ``check`` when
    given; ``default`` when the file is missing, unreadable or not what ``check``
    accepts (it raises ValueError or TypeError)."""
    try:
        data = json.loads(read_small(path, 1 << 20).decode("utf-8", "surrogateescape"))
        return check(data) if check is not None else data
    except (OSError, ValueError, TypeError):
        return default


def write_json(path: str, data: object) -> None:
    """Replace ``path`` with ``data`` in one step, through a temp file of an
    unpredictable name made beside it (``O_EXCL``, mode 0600: what ``mkstemp`` does,
    without importing ``tempfile``, 8 ms at each uWSGI master start)."""
    folder, name = os.path.split(path)
    tmp = os.path.join(folder, f".{name}.{os.urandom(8).hex()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape") as f:
            json.dump(data, f)
        os.replace(tmp, path)
    except BaseException:
        with suppress(OSError):
            os.unlink(tmp)
        raise
