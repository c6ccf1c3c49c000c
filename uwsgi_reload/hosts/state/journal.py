"""The journal: the facts of one generation, shared by the processes of one server.

Append-only, one JSON line per :mod:`uwsgi_reload.hosts.records` record (one ``write``
with ``O_APPEND``: lines of several processes never mix); each process reads what it
has not read yet. A line that is not one of our records is skipped: it is data, never
trusted.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING

from uwsgi_reload.hosts.state.files import create_exclusive, open_lock

if TYPE_CHECKING:  # imported where used: a uWSGI master never reads or writes records
    from uwsgi_reload.hosts.records import Record

JOURNAL_ROTATE_BYTES = 1 << 20  # a single-reader journal (gunicorn) is rotated past this


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
        starts a generation), with their files (``.old``, ``.reloading``).
        ``keep_previous`` keeps the newest of them, which workers of the last generation
        (a chain reload) may still read."""
        mine = os.path.basename(self.path)
        newest: dict[str, int] = {}  # generation -> the mtime of its newest file
        files: dict[str, list[str]] = {}
        for name in os.listdir(self.folder):
            generation = name.split(".", 1)[0]
            if not name.startswith("journal-") or generation == mine:
                continue
            with suppress(OSError):
                mtime = os.lstat(os.path.join(self.folder, name)).st_mtime_ns
                newest[generation] = max(mtime, newest.get(generation, mtime))
                files.setdefault(generation, []).append(name)
        old = sorted(newest, key=newest.__getitem__)
        for generation in old[:-1] if keep_previous else old:
            for name in files[generation]:
                with suppress(OSError):
                    os.unlink(os.path.join(self.folder, name))

    @property
    def reload_mark(self) -> str:
        """A file present once this generation asked for a reload: what a worker that
        leaves checks (one stat), rather than read the journal, which would make a
        worker that never ran a check import what decodes it (16 ms) on its way out."""
        return self.path + ".reloading"

    def mark_reloading(self, asked: bool) -> None:
        """Create the mark (a reload was asked for) or remove it (asking failed)."""
        with suppress(FileExistsError, FileNotFoundError):
            if asked:
                create_exclusive(self.reload_mark, b"")
            else:
                os.unlink(self.reload_mark)

    def append(self, record: Record) -> None:
        from uwsgi_reload.hosts import records

        data = records.encode(record)
        line = (json.dumps(data, separators=(",", ":")) + "\n").encode("utf-8", "surrogatepass")
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW
        fd = os.open(self.path, flags, 0o600)
        try:
            os.write(fd, line)  # one write with O_APPEND: lines from processes never mix
        finally:
            os.close(fd)

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

    def read_new(self) -> list[Record]:
        """The records appended since this process last read."""
        from uwsgi_reload.hosts import records

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
        found = []
        for line in data.splitlines():
            try:
                record = records.decode(json.loads(line.decode("utf-8", "surrogatepass")))
            except ValueError:
                continue
            if record is not None:
                found.append(record)
        return found

    @contextmanager
    def exclusive(self) -> Iterator[bool]:
        """Yield True if this process got the check lock, False if another holds it."""
        fd = open_lock(os.path.join(self.folder, "lock"))
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
