"""Warm mode in the uWSGI host: what the master keeps at its start, what a worker
learns from its imports, and when a save needs the master restarted after all."""

from __future__ import annotations

import gc
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from uwsgi_reload.core.snapshot import Stat, stat_file
from uwsgi_reload.core.sources import module_file
from uwsgi_reload.hosts.uwsgi.warm import classify
from uwsgi_reload.hosts.uwsgi.warm import learned as learned_state
from uwsgi_reload.hosts.uwsgi.warm.proven import import_proven

Log = Callable[[str], None]
LEARN_AT_LEAST = 20
OWN_PACKAGES = ("uwsgi_reload", "uwsgi", "uwsgidecorators")


@dataclass
class MasterHeld:
    """What the master held when it forked: the workers start from it."""

    modules: frozenset[str] = frozenset()
    files: dict[str, Stat] = field(default_factory=dict)  # as the master loaded them
    env: dict[str, str] = field(default_factory=dict)  # the master's, for the classifier
    learned: bool = False  # it started with libraries learned from earlier workers


_held = MasterHeld()


def held_files(known: dict[str, Stat] | None = None) -> dict[str, Stat]:
    """The file of every module imported, with its stat (``known`` ones as they are)."""
    files: dict[str, Stat] = dict(known or {})
    for module in list(sys.modules.values()):
        filename = module_file(module) if module is not None else None
        if filename and filename not in files:
            stat = stat_file(filename)
            if stat is not None:
                files[filename] = stat
    return files


def start_master(folder: str, log: Log) -> None:
    """In the master, at its start: import the library modules learned earlier, each
    step proven in a child first. Never raises: at worst the master keeps less."""
    global _held
    started = time.monotonic()
    learned = learned_state.load(folder)
    left = dict(learned.left)
    kept: list[str] = []
    try:
        kept = import_proven(learned.kept, learned.project, left)
    except Exception as error:  # proven in a child, failed here: keep what is done
        log(f"warm: importing the learned libraries failed in the master: {error!r}")
    if left != learned.left:
        latest = learned_state.load(folder)
        latest.left.update(left)
        latest.kept = [name for name in latest.kept if name not in left]
        learned_state.save(folder, latest)
    # The workers fork from here. Frozen, the master's objects stay out of the workers'
    # collections: a full one walks all of them and so copies every page they are on
    # (on a Wagtail site, 0.10-0.15 s of a worker's 0.7-0.9 s app load, against 0.03-0.05).
    gc.freeze()
    _held = MasterHeld(frozenset(sys.modules), held_files(), dict(os.environ), bool(kept))
    if learned.kept:
        log(
            f"warm: the master keeps {len(kept)} library modules imported "
            f"({time.monotonic() - started:.2f} s); "
            f"{len(left)} are left to the workers{_examples(left)}"
        )
    else:
        log("warm: nothing learned yet; the workers' imports are sorted after a first load")


def _examples(left: dict[str, str], shown: int = 3) -> str:
    """A few modules left to the workers, those the project's modules import first."""
    names = [name for name in left if "." not in name] or list(left)
    listed = "; ".join(f"{name} ({left[name]})" for name in names[:shown])
    return f", such as {listed}" if listed else ""


def interpreter() -> str | None:
    """A Python like this one, to run the classifier in a fresh process."""
    major, minor = sys.version_info[:2]
    for prefix in dict.fromkeys((sys.prefix, sys.base_prefix)):
        for name in (f"python{major}.{minor}", f"python{major}", "python3"):
            candidate = os.path.join(prefix, "bin", name)
            if os.access(candidate, os.X_OK):
                return candidate
    return None


class WarmWorker:
    """In each worker: learns the app's imports, and decides how a save reloads."""

    def __init__(self, folder: str, log: Log) -> None:
        self.folder = folder
        self.log = log
        # the master's modules as the fork left them, with any imported after our start
        self.held = MasterHeld(
            frozenset(sys.modules), held_files(_held.files), _held.env, _held.learned
        )
        self.modules_seen = 0
        self.to_sort = False
        self.sorting_asked: tuple[str, ...] = ()

    def learn(self, is_project_file: Callable[[str], bool]) -> None:
        """Record the libraries this worker imported; have new ones sorted once its
        imports have settled (a first request imports more: sort them together)."""
        if len(sys.modules) == self.modules_seen:
            if self.to_sort:
                self.to_sort = False
                self._sort_unknown()
            return
        self.modules_seen = len(sys.modules)
        self.to_sort = True
        libraries, project = learned_state.split_modules(sys.modules, is_project_file)
        # What the master held at the fork needs no sorting, nor do our own modules
        # (a plain Python, where the sorting runs, cannot import those that need uwsgi).
        libraries = [
            name
            for name in libraries
            if name not in self.held.modules and name.split(".")[0] not in OWN_PACKAGES
        ]
        learned = learned_state.load(self.folder)
        known_libraries, known_project = set(learned.libraries), set(learned.project)
        new_libraries = [name for name in libraries if name not in known_libraries]
        new_project = [name for name in project if name not in known_project]
        if new_libraries or new_project:
            learned.libraries += new_libraries
            learned.project += new_project
            learned_state.save(self.folder, learned)

    def _sort_unknown(self) -> None:
        unknown = tuple(learned_state.load(self.folder).unknown(self.held.modules))
        if unknown and unknown != self.sorting_asked:
            self.sorting_asked = unknown
            self._sort()

    def _sort(self) -> None:
        python = interpreter()
        if python is None:
            self.log("warm: no Python interpreter found next to this one; nothing is kept")
            return
        env = dict(self.held.env or os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        classify.spawn(self.folder, python, env, os.getcwd())

    def why_graceful(self) -> str:
        """Why this save needs the master restarted ("" when replacing the workers is
        enough): a file the master holds changed, or it has libraries to learn."""
        for filename, stat in self.held.files.items():
            if stat_file(filename) != stat:
                return f"{filename} changed, and the master holds it"
        kept = learned_state.load(self.folder).kept
        missing = [name for name in kept if name not in self.held.modules]
        # The first time, or when many are new: a few modules imported later (by one
        # page) are cheaper for the workers to import than a restart of the master.
        if missing and (not self.held.learned or len(missing) >= learn_at(len(kept))):
            return f"the master learns {len(missing)} library modules to keep"
        return ""


def learn_at(kept: int) -> int:
    """How many kept modules the master must lack before a save restarts it."""
    return max(LEARN_AT_LEAST, kept // 10)
