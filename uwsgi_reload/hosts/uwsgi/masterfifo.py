"""Writing to uWSGI's master FIFO (``master-fifo = PATH``).

The master re-creates its FIFO (unlink, mkfifo, open) each time the last writer closes
it, so a writer that opens it at that moment finds no file (ENOENT) or no reader yet
(ENXIO) for a few microseconds. Opening retries for a short while before it believes
either.
"""

from __future__ import annotations

import errno
import os
import time

RETRY_FOR = 0.5  # seconds
_TRANSIENT = (errno.ENOENT, errno.ENXIO)


def open_for_writing(path: str, retry_for: float = RETRY_FOR) -> int:
    """A non-blocking write fd on the FIFO. Raises OSError (ENOENT: no FIFO, ENXIO:
    nobody reads it) once the condition has lasted ``retry_for`` seconds."""
    deadline = time.monotonic() + retry_for
    while True:
        try:
            # O_NONBLOCK: fail at once (ENXIO) instead of hanging when nobody reads
            return os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as error:
            if error.errno not in _TRANSIENT or time.monotonic() >= deadline:
                raise
        time.sleep(0.002)


def write(path: str, command: bytes, retry_for: float = RETRY_FOR) -> None:
    """Write one command; raises OSError if the FIFO cannot be opened or written."""
    fd = open_for_writing(path, retry_for)
    try:
        os.write(fd, command)
    finally:
        os.close(fd)
