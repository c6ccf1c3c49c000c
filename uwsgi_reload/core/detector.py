"""The change detector: which files are tracked, their baseline, what changed since.

Independent of any server: uWSGI, gunicorn and the command line each own one and ask
it :meth:`Detector.check` on their own schedule.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable

from uwsgi_reload.core import loadstats, snapshot, sources
from uwsgi_reload.core.config import Config
from uwsgi_reload.core.settle import settle_changes
from uwsgi_reload.core.snapshot import Changes, Stat

# Files tracked per include pattern at most: a check must not block a worker for long.
INCLUDE_LIMIT = 20_000

# A baseline no file can have: the processes loaded different versions of the file.
MIXED: Stat = Stat(mtime_ns=0, size=-1, ino=0, mode=0, uid=0, gid=0)

# An idle check stats the files of the last full check when nothing that decides the
# tracked set has changed since; every REBUILD_EVERY-th check is a full one anyway.
REBUILD_EVERY = 30


class Detector:
    """Tracks module files and include patterns against a baseline.

    The baseline of a module file is its stat when Python loaded it (see
    :mod:`uwsgi_reload.loadstats`), so a save made before the first check is still
    a change. Other files get their baseline when first seen, except ``watch_since``
    files (the ones a failed load named), which count as changed if written after
    the detector started.
    """

    def __init__(
        self,
        config: Config,
        modules: Callable[[], Iterable] | None = None,
        load_stats: Callable[[], dict[str, Stat]] = loadstats.recorded,
    ) -> None:
        self.config = config
        self.rules = sources.Rules(config.exclude, config.base_dir)
        if modules is None:
            modules = lambda: list(sys.modules.values())  # noqa: E731
            self._modules_count: Callable[[], int] = lambda: len(sys.modules)
        else:
            self._modules_count = lambda: len(list(modules()))
        self._modules = modules if config.track_modules else (lambda: ())
        self._load_stats = load_stats
        self.baseline: dict[str, Stat] = {}
        self.extra: set[str] = set()  # entry files, and files a failed load named
        self.started_ns = snapshot.file_clock_ns()
        self._known: set[str] = set()
        self._module_cache: dict[str, object] = {}
        # More files to track, asked at every check (Django's watched folders, ...)
        self.providers: list[Callable[[], Iterable[str]]] = []
        self.ignored: set[str] = set()  # dropped by the loop guard
        self.notices: list[str] = []  # for the host to log (once each)
        self._slow_reported = False
        self._last_scan: dict[str, Stat] | None = None  # a check's scan that found changes
        self._edits = 0  # bumped whenever the tracked set or the baseline's paths change
        self._checks = 0
        self.rebuild_every = REBUILD_EVERY
        self._scanned_key: tuple[int, int, int] | None = None
        self._scanned: tuple[str, ...] = ()  # what the last full check statted

    def _module_files(self) -> set[str]:
        files = set()
        cache = self._module_cache
        for module in self._modules():
            key = getattr(module, "__file__", None)
            if not isinstance(key, str):
                continue
            path = cache.get(key, False)
            if path is False:
                path = sources.module_file(module)
                if path and not self.is_trackable(path):
                    path = None
                cache[key] = path
            if path:
                files.add(path)
        return files

    def add_provider(self, provider: Callable[[], Iterable[str]]) -> None:
        """Track the files ``provider()`` names at each check from now on; the ones it
        names now get a baseline (a file it names later is an addition)."""
        self.providers.append(provider)
        self._edits += 1
        files = self._included() - self._known
        self._known |= files
        for path, stat in snapshot.take(files).items():
            # Found at the first check of each process (a framework is set up after our
            # import), so a file written since the start counts as changed: a worker
            # finding it after a save must not take the saved state as its baseline.
            self.baseline[path] = MIXED if stat.mtime_ns >= self.started_ns else stat

    def track(self, paths: Iterable[str]) -> None:
        """Track these files from now on (the app's entry files, named by the server's
        options), whatever happens to them."""
        self.extra.update(p for p in paths if self.is_trackable(p))
        self._edits += 1

    def track_named(self, path: str) -> bool:
        """Track ``path``, named by a failed load in another process; True if it was
        not tracked before."""
        if path in self.baseline or path in self.extra or not self.is_trackable(path):
            return False
        self.track([path])
        return True

    def ignore(self, paths: Iterable[str]) -> None:
        """Stop tracking ``paths`` (the loop guard found the app writes them itself)."""
        self.ignored.update(paths)
        self._edits += 1
        for path in self.ignored:
            self.baseline.pop(path, None)

    def _limit_reached(self, pattern: str, limit: int) -> None:
        notice = (
            f"uwsgi-reload-include {pattern!r} names more than {limit} files; only the "
            f"first {limit} are tracked. Include narrower folders or globs "
            "(or exclude generated ones with uwsgi-reload-exclude)."
        )
        if notice not in self.notices:
            self.notices.append(notice)

    def _included(self) -> set[str]:
        files = sources.expand_includes(
            self.config.include,
            self.config.base_dir,
            self.rules,
            INCLUDE_LIMIT,
            self._limit_reached,
        )
        for provider in self.providers:
            files.update(p for p in provider() if self.is_trackable(p))
        return files

    def known_files(self) -> set[str]:
        """Every file tracked so far plus modules imported since the last check, without
        walking includes: cheap enough for every check of the event backend."""
        return self._known | self._module_files()

    def known_version(self) -> tuple[int, int]:
        """Changes when :meth:`known_files` may have: more modules, more known files."""
        return self._modules_count(), len(self._known)

    def tracked(self) -> set[str]:
        """Every path tracked right now (a path may currently be missing)."""
        return (self._module_files() | self._included() | self.extra) - self.ignored

    def start(self) -> None:
        """Take the baseline now. Call it before the app loads."""
        self.notices += sources.empty_include_warnings(
            self.config.include, self.config.base_dir, self.rules
        )
        self.baseline = snapshot.take(self.tracked())
        loaded = self._load_stats()
        self.baseline.update((p, loaded[p]) for p in self.baseline.keys() & loaded.keys())
        self._known = set(self.baseline)
        self._edits += 1

    def track_failure_files(self, paths: Iterable[str]) -> None:
        """Keep files named by a failed load tracked (they are not in sys.modules). A
        file written after the detector started counts as changed at the next check."""
        self._edits += 1
        for path in paths:
            path = sources.absolute(path, self.config.base_dir)
            if path in self.extra or not self.is_trackable(path):
                continue
            self.extra.add(path)
            self._known.add(path)
            stat = snapshot.stat_file(path)
            if stat is not None and snapshot.changed_since(path, self.started_ns):
                self.baseline[path] = MIXED  # written or chmod-ed after the failed load
            elif stat is not None:
                self.baseline.setdefault(path, stat)

    def current(self) -> dict[str, Stat]:
        """Stat every tracked file. A module file seen for the first time gets its
        load-time stat as baseline; a file new under an include stays out of the
        baseline, so it shows as added."""
        modules = self._module_files()
        includes = self._included()
        new_modules = modules - self._known
        if new_modules:
            # Modules loaded before the fork (or in this process): all processes have the
            # same version. Versions loaded by different processes after the fork meet in
            # learn_loaded, through the host's journal.
            loaded = self._load_stats()
            for path in new_modules:
                stat = loaded.get(path) or snapshot.stat_file(path)
                if stat is not None:
                    self.baseline[path] = stat
        paths = (modules | includes | self.extra) - self.ignored
        self._known |= paths
        self._scanned = tuple(paths | self.baseline.keys())
        return snapshot.take(self._scanned)

    def learn(self, path: str, stat: Stat | None) -> None:
        """Another process saw ``path`` with ``stat`` (None: gone): adopt it as baseline."""
        self._edits += 1
        self._known.add(path)
        if stat is None:
            self.baseline.pop(path, None)
        else:
            self.baseline[path] = stat

    def is_trackable(self, path: str) -> bool:
        """Not in the standard library, site-packages or an excluded place."""
        return not (sources.in_system_dir(path) or self.rules.excludes(path))

    def learn_loaded(self, path: str, stat: Stat) -> None:
        """A process loaded ``path`` at ``stat``. If another process loaded another
        version, the processes serve different code: that is a change."""
        if not self.is_trackable(path):
            return
        self._known.add(path)
        self._edits += 1
        known = self.baseline.get(path)
        if known is None:
            self.baseline[path] = stat
        elif known != stat:
            self.baseline[path] = MIXED

    def check(self) -> Changes:
        """What changed against the baseline. Does not move the baseline."""
        self._checks += 1
        self._last_scan = None
        if (
            self._checks % self.rebuild_every
            and self._scanned_key is not None
            and self._scanned_key == self._scan_key()
            and snapshot.unchanged(self._scanned, self.baseline)
        ):
            return Changes()
        started = time.monotonic()
        current = self.current()
        changes = snapshot.diff(self.baseline, current)
        self._last_scan = current if changes else None  # the settle starts from it
        self._scanned_key = self._scan_key()
        took = time.monotonic() - started
        if took > 0.25 * self.config.period and not self._slow_reported:
            self._slow_reported = True
            self.notices.append(
                f"a check took {took:.2f}s for {len(self.baseline)} files, more than "
                f"a quarter of the period ({self.config.period}s): narrow "
                "uwsgi-reload-include, add uwsgi-reload-exclude globs, or raise the period"
            )
        return changes

    def _scan_key(self) -> tuple[int, int, int] | None:
        """Equal between two checks when the files to stat are the same; None when
        that cannot be known without walking (includes and providers name new files)."""
        if self.config.include or self.providers:
            return None
        return self._modules_count(), self._edits, len(self.extra)

    def accept(self, current: dict[str, Stat]) -> None:
        """Make ``current`` the baseline (after a change was handled without reload)."""
        self.baseline = {p: s for p, s in current.items() if p not in self.ignored}
        self._edits += 1
        self._known |= current.keys()

    def settle(
        self,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        events: Callable[[], bool] | None = None,
    ) -> tuple[Changes, dict[str, Stat]]:
        """Wait until nothing has changed for ``config.delay`` seconds (at most
        ``config.max_delay`` in all), so a burst of writes gives one reload that sees
        the final content. Returns the changes against the baseline and the state.
        Right after a :meth:`check` that found changes it starts from that check's scan
        (one full scan fewer: 16 ms with 3,000 files). ``events``: see
        :func:`~uwsgi_reload.core.settle.settle_changes`."""
        first_scan, self._last_scan = self._last_scan, None
        return settle_changes(
            self.current,
            self.baseline,
            self.config.delay,
            self.config.max_delay,
            clock,
            sleep,
            time.time,
            first_scan=first_scan,
            events=events,
        )
