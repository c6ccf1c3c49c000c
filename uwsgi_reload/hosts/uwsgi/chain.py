"""Chain mode: uWSGI replaces the workers one at a time (``c`` on the master FIFO)."""

from __future__ import annotations

CHAIN_LOAD_WAIT = 30  # seconds a new worker may take to load the app


def chain_running(old_pids: list[int], workers: list[dict], now: float) -> bool:
    """A chain reload replaces the workers of the last one, one by one, each only after
    the one before it has loaded the app. The master ignores a new "c" until it is done,
    so the check waits: while an old worker is left, or a new one has not loaded its app
    yet (for at most CHAIN_LOAD_WAIT, as an app may fail)."""
    old = set(old_pids)
    return bool(old) and any(
        w["pid"] in old or (not w.get("apps") and now - w["last_spawn"] < CHAIN_LOAD_WAIT)
        for w in workers
    )
