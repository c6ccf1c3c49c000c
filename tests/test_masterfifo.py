"""Writing to a uWSGI master FIFO that the master re-creates after each writer."""

from __future__ import annotations

import errno
import os
import threading
import time

import pytest

from uwsgi_reload.hosts.uwsgi import masterfifo, waker


def recreate_like_the_master(fifo, readers: list[int], after: float) -> threading.Thread:
    """What the master does when its last writer closed the FIFO: unlink, wait a
    little (here ``after`` seconds, to make the window wide), mkfifo, open for reading."""

    def run() -> None:
        fifo.unlink(missing_ok=True)
        time.sleep(after)
        os.mkfifo(fifo)
        readers.append(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_a_command_written_while_the_fifo_is_recreated_arrives(tmp_path):
    fifo = tmp_path / "master.fifo"
    readers: list[int] = []
    thread = recreate_like_the_master(fifo, readers, after=0.1)
    try:
        masterfifo.write(str(fifo), b"c", retry_for=5)
        thread.join()
        assert os.read(readers[0], 10) == b"c"
    finally:
        thread.join()
        for fd in readers:
            os.close(fd)


def test_a_missing_fifo_or_reader_is_believed_after_the_retry_time(tmp_path):
    fifo = tmp_path / "master.fifo"
    started = time.monotonic()
    with pytest.raises(FileNotFoundError):
        masterfifo.open_for_writing(str(fifo), retry_for=0.2)
    assert time.monotonic() - started >= 0.2
    os.mkfifo(fifo)
    with pytest.raises(OSError) as raised:
        masterfifo.open_for_writing(str(fifo), retry_for=0.05)
    assert raised.value.errno == errno.ENXIO


def test_the_waker_keeps_the_fifo_open_between_pokes(tmp_path):
    """Each close by the last writer makes the master re-create the FIFO: pokes every
    10 ms must not do that, or a command written meanwhile can find no FIFO."""
    fifo = tmp_path / "master.fifo"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        poke = waker.fifo_byte(str(fifo))
        for _ in range(3):
            poke()
        assert os.read(reader, 10) == b"xxx"
        with pytest.raises(BlockingIOError):
            os.read(reader, 10)  # no EOF: a writer still holds it open
    finally:
        os.close(reader)
