"""Sort the library modules the workers imported into those the master can keep and
those left to the workers. Runs as its own process (``python -m``), started by a worker
when it imported libraries nobody has sorted yet, so that the app never waits for it;
the master picks the result up at its next start."""

from __future__ import annotations

import fcntl
import os
import sys

from uwsgi_reload.hosts.state.files import open_lock
from uwsgi_reload.hosts.state.processes import run_detached
from uwsgi_reload.hosts.uwsgi.warm import learned as learned_state
from uwsgi_reload.hosts.uwsgi.warm.proven import import_proven


def classify(folder: str) -> learned_state.Learned:
    lock = open_lock(os.path.join(folder, learned_state.LOCK_NAME))
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one at a time; a second one finds nothing to do
        learned = learned_state.load(folder)
        unknown = learned.unknown(sys.modules)
        if not unknown:
            return learned
        # From the state the master will be in: what it keeps, then the new modules.
        left = dict(learned.left)
        kept = import_proven(learned.kept, learned.project, left)
        kept += import_proven(unknown, learned.project, left)
        latest = learned_state.load(folder)  # the workers may have added libraries since
        latest.kept = kept
        latest.left.update(left)
        learned_state.save(folder, latest)
        return latest
    finally:
        os.close(lock)


def spawn(folder: str, python: str, env: dict[str, str], cwd: str) -> None:
    """Start the classifier, detached: it outlives the worker and holds none of its
    files but uWSGI's log (fd 2)."""

    def run() -> None:
        os.chdir(cwd)
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1):
            os.dup2(null, fd)
        os.close(null)
        os.execve(python, [python, "-m", __name__, folder], env)

    run_detached(run)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(f"usage: python -m {__name__} STATE_FOLDER", file=sys.stderr)
        return 2
    learned = classify(argv[1])
    print(
        f"uwsgi_reload: warm: {len(learned.kept)} library modules can stay in the master, "
        f"{len(learned.left)} are left to the workers; a reload picks this up",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
