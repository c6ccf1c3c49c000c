"""Chain mode on real uWSGI: one worker at a time through the master FIFO, with
lazy-apps; zero failed requests and a worst stall far below a graceful reload's."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from servers import APP, READY, RETRIES_PER_RELOAD, Server, get_idempotent, write

pytestmark = pytest.mark.integration


def load_loop(url: str, stop: threading.Event, results: list) -> None:
    deadline = time.monotonic() + 60
    while not stop.is_set() and time.monotonic() < deadline:
        started = time.monotonic()
        status, body, retried = get_idempotent(url, timeout=10)  # a retry counts in the stall
        results.append((status, body, time.monotonic() - started, retried))


@contextmanager
def request_load(server: Server) -> Iterator[list]:
    """Two threads requesting the page until the block ends; yields their results
    (status, body, seconds, retried), once 20 requests were served."""
    results: list = []
    stop = threading.Event()
    threads = [threading.Thread(target=load_loop, args=(server.url, stop, results)) for _ in (1, 2)]
    for thread in threads:
        thread.start()
    try:
        server.wait_until(lambda: len(results) >= 20, 10, "20 requests before the save")
        yield results
    finally:
        stop.set()
        for thread in threads:
            thread.join()


def assert_none_failed(server: Server, results: list) -> None:
    failed = [r for r in results if r[0] != 200]
    retried = sum(r[3] for r in results)
    assert not failed, server.explain(f"{len(failed)} failed: {failed[:3]}")
    assert retried <= RETRIES_PER_RELOAD, server.explain(f"{retried} requests reset")


def test_chain_mode_reloads_one_worker_at_a_time(tmp_path, uwsgi_server):
    mode = "chain"
    write(tmp_path / "app.py", APP)
    write(tmp_path / "greeting.py", "TEXT = 'v1'\n")
    server = uwsgi_server(
        "wsgi-file = app.py\nlazy-apps = true\nmaster-fifo = master.fifo\n"
        f"uwsgi-reload-mode = {mode}\n"
    )
    server.wait_for_log(READY)
    server.wait_for_body("v1")
    with request_load(server) as results:
        write(tmp_path / "greeting.py", "TEXT = 'v2'\n")
        server.wait_for_log(rf"modified .*greeting\.py -> {mode} reload")
        # No probing requests while the load runs (they would add their own stall): wait
        # for uWSGI's end-of-chain line, at most 15 s; each worker's code is judged below.
        saved = time.monotonic()
        server.wait_until(
            lambda: "chain reloading complete" in server.log() or time.monotonic() > saved + 15,
            20,
            "the end of the chain",
        )
        served = len(results)
        server.wait_until(lambda: len(results) >= served + 20, 10, "20 requests after it")
    server.wait_every_worker("v2", timeout=15)
    worst = max(r[2] for r in results)
    print(f"{mode}: {len(results)} requests, worst {worst * 1000:.0f} ms")
    assert_none_failed(server, results)
    # the master was not re-executed
    assert "gracefully (RE)spawned uWSGI master" not in server.log()
    assert worst < 0.5, server.explain(f"worst request took {worst:.2f}s")
    # later saves are still detected by the new workers
    write(tmp_path / "greeting.py", "TEXT = 'v3'\n")
    server.wait_for_body("v3", timeout=15)


def test_chain_mode_save_during_a_running_chain_is_not_lost(tmp_path, uwsgi_server):
    """uWSGI ignores a chain request while a chain runs: the check must wait for it."""
    write(tmp_path / "app.py", APP)
    write(tmp_path / "greeting.py", "TEXT = 'v1'\n")
    server = uwsgi_server(
        "wsgi-file = app.py\nlazy-apps = true\nmaster-fifo = master.fifo\n"
        "forkbomb-delay = 0\nuwsgi-reload-mode = chain\nuwsgi-reload-delay = 0\n"
    )
    server.wait_for_log(READY)
    write(tmp_path / "greeting.py", "TEXT = 'v2'\n")
    server.wait_for_log(r"chain reload starting")
    write(tmp_path / "greeting.py", "TEXT = 'v3'\n")  # while workers are being replaced
    server.wait_every_worker("v3", timeout=20)
    assert "error managing signal" not in server.log(), server.explain("signal to a wrong worker")
