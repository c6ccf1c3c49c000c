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
import os

from uwsgi_reload.hosts.state.files import open_lock, read_json, write_json
from uwsgi_reload.hosts.state.folders import (
    STATE_DIR_ENV,
    StateDirError,
    instance_dir,
    remove_dead_instances,
    state_root,
)
from uwsgi_reload.hosts.state.history import History
from uwsgi_reload.hosts.state.journal import Journal

__all__ = [
    "STATE_DIR_ENV",
    "History",
    "Journal",
    "StateDirError",
    "instance_dir",
    "read_json",
    "remove_dead_instances",
    "start_generation",
    "state_root",
    "write_json",
]


def start_generation(journal: Journal, history: History | None = None) -> bool:
    """Clean up after the last generation: the journals of earlier generations (the one
    just before stays, for its last readers), the folders of dead servers, and the
    notices bound. Call it from whichever process starts a generation (uWSGI's master,
    or each worker under lazy-apps; gunicorn's arbiter): a lock and a note of the last
    generation cleaned make it run once per generation. Returns True if it ran."""
    fd = open_lock(os.path.join(journal.folder, "cleanup.lock"))
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
