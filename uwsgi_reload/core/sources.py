"""What to watch: the files of imported modules, include patterns, exclusion rules.

Pure: no ``uwsgi`` import. Paths are absolute and normalised (``os.path.abspath``) so
that the same file always has the same key.
"""

from __future__ import annotations

import os
import re
import site
import sys
import sysconfig
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from functools import lru_cache
from importlib.util import source_from_cache
from itertools import islice
from types import ModuleType

from uwsgi_reload.core.globs import glob_regex, has_glob, segment_regex, static_root

# Names (of a file or of any folder above it) never worth a reload: caches, VCS data,
# logs and databases an app writes while it runs, editor swap and backup files.
DEFAULT_EXCLUDE: tuple[str, ...] = (
    "__pycache__",
    "*.pyc",
    "*.pyo",
    ".git",
    ".hg",
    ".svn",
    ".bzr",
    ".tox",
    ".nox",
    ".venv",
    "venv",
    "node_modules",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
    ".hypothesis",
    ".idea",
    ".vscode",
    "*.log",
    "*.sqlite",
    "*.sqlite3",
    "*.db",
    "*-journal",
    "*-wal",
    "*-shm",
    "*.swp",
    "*.swo",
    "*.swx",
    "*~",
    ".#*",
    "#*#",
    "4913",  # vim's probe file
    "*.tmp",
    ".DS_Store",
)


class Rules:
    """Exclusion rules. A pattern without ``/`` matches any path segment (``*.log``,
    ``node_modules``); a pattern with ``/`` is a path glob, relative to ``base_dir``."""

    def __init__(self, exclude: Iterable[str] = (), base_dir: str = ".", defaults: bool = True):
        patterns = (*(DEFAULT_EXCLUDE if defaults else ()), *exclude)
        self.base_dir = os.path.abspath(base_dir)
        # A uWSGI master makes these at every start, and asks about every module it
        # loads: names are matched without a regex where they can be (exact names,
        # `*.suffix`, `prefix*`), and each pattern's own regex is compiled only by
        # `reason` (compiling them all cost 3 ms).
        exact, prefixes, suffixes, names, paths = set(), [], [], [], []
        self._each: list[tuple[str, bool, str]] = []  # (pattern, is a path glob, regex)
        for pattern in patterns:
            pattern = pattern.rstrip("/")
            if "/" in pattern:
                paths.append(glob_regex(absolute(pattern, self.base_dir)).pattern)
                self._each.append((pattern, True, paths[-1]))
                continue
            self._each.append((pattern, False, segment_regex(pattern)))
            if not has_glob(pattern):
                exact.add(pattern)
            elif pattern.startswith("*") and not has_glob(pattern[1:]):
                suffixes.append(pattern[1:])
            elif pattern.endswith("*") and not has_glob(pattern[:-1]):
                prefixes.append(pattern[:-1])
            else:
                names.append(segment_regex(pattern))
        self._names = any(not is_path for _, is_path, _ in self._each)
        self._exact = frozenset(exact)
        self._prefixes = tuple(prefixes)
        self._suffixes = tuple(suffixes)
        self._name = re.compile("(?:" + "|".join(names) + ")") if names else None
        self._path = re.compile("(?:" + "|".join(paths) + ")") if paths else None
        # folder -> whether an exclusion name matches one of its segments below
        # base_dir: the master asks about every module it loads, many per folder
        self._folders: dict[str, bool] = {}

    def excludes_name(self, name: str) -> bool:
        return (
            name in self._exact
            or name.endswith(self._suffixes)
            or name.startswith(self._prefixes)
            or bool(self._name and self._name.fullmatch(name))
        )

    def excludes(self, path: str) -> bool:
        if self._path and self._path.fullmatch(path):
            return True
        if self._names:
            folder, _, name = path.rpartition("/")
            if name and self.excludes_name(name):
                return True
            excluded = self._folders.get(folder)
            if excluded is None:
                excluded = self._folders[folder] = self._excludes_folder(folder)
            return excluded
        return False

    def _excludes_folder(self, folder: str) -> bool:
        """Whether an exclusion name matches a segment of ``folder`` below base_dir
        (all of its segments when it is not below base_dir)."""
        # Only the part below base_dir: a project kept in a folder named `venv`
        # must not exclude itself.
        if folder == self.base_dir:
            return False
        if folder.startswith(self.base_dir + os.sep):
            folder = folder[len(self.base_dir) + 1 :]
        return any(self.excludes_name(part) for part in folder.split("/") if part)

    def excludes_below(self, path: str, root: str) -> bool:
        """Like :meth:`excludes` for a file found under an included folder ``root``:
        exclusion names count only below ``root``, so that an explicit include of
        ``.venv/lib/python3.11/site-packages/pkg`` (or ``/opt/venv/...``) is not
        excluded by the default name ``.venv`` (or ``venv``) above it."""
        if self._path and self._path.fullmatch(path):
            return True
        if self._names and path.startswith(root.rstrip("/") + "/"):
            below = path[len(root.rstrip("/")) + 1 :]
            return any(self.excludes_name(part) for part in below.split("/") if part)
        return False

    def reason(self, path: str, root: str) -> str:
        """The exclusion that drops ``path`` found under ``root``, for a message."""
        below = (
            path[len(root.rstrip("/")) + 1 :] if path.startswith(root.rstrip("/") + "/") else path
        )
        for pattern, is_path, source in self._each:
            regex = re.compile(source)
            if is_path and regex.fullmatch(path):
                return pattern
            if not is_path and any(regex.fullmatch(part) for part in below.split("/") if part):
                return pattern
        return "?"


def absolute(path: str, base_dir: str) -> str:
    path = os.path.expanduser(path)
    return os.path.normpath(os.path.join(base_dir, path))


@lru_cache(maxsize=1)
def system_dirs() -> tuple[str, ...]:
    """Where the standard library and installed packages live (and uwsgi_reload): code
    a developer does not edit while the server runs. Tracked only when included
    explicitly."""
    dirs = set()
    paths = sysconfig.get_paths()  # once: each call expands every path again (0.4 ms)
    for name in ("stdlib", "platstdlib", "purelib", "platlib"):
        path = paths.get(name)
        if path:
            dirs.add(path)
    if hasattr(site, "getsitepackages"):  # missing from old virtualenv's site.py
        dirs.update(site.getsitepackages())
    if site.getusersitepackages():
        dirs.add(site.getusersitepackages())
    if sys.prefix != sys.base_prefix:  # a virtualenv holds nothing of the project's
        dirs.add(sys.prefix)
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    dirs.add(package)  # uwsgi_reload's own files, even installed editable
    return tuple(sorted({os.path.realpath(d) for d in dirs} | {os.path.abspath(d) for d in dirs}))


_in_system_folder: dict[str, bool] = {}  # folder -> in_system_dir(folder)


def in_system_dir(path: str) -> bool:
    """True for a system folder or any path below one. Cached by the part of ``path``
    before its last ``/`` (the master asks about every module it loads, many per
    folder): ``path`` is below a system folder exactly when that part is the folder
    or below it, since the rest holds no ``/``."""
    folder = path.rpartition("/")[0]
    below = _in_system_folder.get(folder)
    if below is None:
        below = _in_system_folder[folder] = _in_or_below_system_dir(folder)
    return below or path in _system_dir_set()


@lru_cache(maxsize=1)
def _system_dir_set() -> frozenset[str]:
    return frozenset(system_dirs())


def _in_or_below_system_dir(path: str) -> bool:
    return any(path == d or path.startswith(d + "/") for d in system_dirs())


def source_of(filename: str) -> str:
    """The file a reload depends on for a module file: ``x.pyc`` -> ``x.py``."""
    if filename.endswith((".pyc", ".pyo")):
        try:
            return source_from_cache(filename)
        except ValueError:  # a .pyc outside __pycache__ (sourceless distribution)
            return filename[:-1]
    return filename


def module_file(module: ModuleType) -> str | None:
    """The source file of a module, or None for built-in, frozen and namespace modules."""
    spec = getattr(module, "__spec__", None)
    filename = None
    if spec is not None and getattr(spec, "has_location", False):
        filename = spec.origin
    if not filename:
        filename = getattr(module, "__file__", None)
    if not isinstance(filename, str) or not os.path.isabs(filename):
        return None
    return os.path.normpath(source_of(filename))


def walk_files(root: str, rules: Rules) -> Iterator[str]:
    """Every file below ``root``, skipping excluded folders early, never following
    symlinked folders (a symlink loop cannot trap the walk). Exclusion names apply
    below ``root`` only: the folder itself was named on purpose."""
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    if rules.excludes_name(entry.name):
                        continue
                    path = os.path.join(folder, entry.name)
                    try:
                        is_dir = entry.is_dir(follow_symlinks=False)
                    except OSError:
                        continue
                    if is_dir:
                        stack.append(path)
                    elif not rules.excludes_below(path, root):
                        yield path
        except OSError:  # vanished or unreadable while walking
            continue


def walk_folders(root: str, rules: Rules) -> Iterator[str]:
    """``root`` and every folder below it, nearest first, skipping excluded ones and
    never following symlinked folders."""
    queue = deque([root])
    while queue:
        folder = queue.popleft()
        yield folder
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    if rules.excludes_name(entry.name):
                        continue
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            queue.append(os.path.join(folder, entry.name))
                    except OSError:
                        continue
        except OSError:  # vanished or unreadable while walking
            continue


def expand_includes(
    patterns: Iterable[str],
    base_dir: str,
    rules: Rules,
    limit: int | None = None,
    on_limit: Callable[[str, int], None] | None = None,
) -> set[str]:
    """The files the include patterns name right now. A plain file is tracked even if
    an exclusion rule would match it (it was named explicitly); a folder is walked;
    a glob is matched against the files below its static root. At most ``limit``
    files per pattern (``on_limit`` is told when a pattern has more)."""
    files: set[str] = set()
    for pattern in patterns:
        path = absolute(pattern, base_dir)
        if has_glob(pattern):
            regex = glob_regex(path)
            root = static_root(path)
            found: Iterable[str] = (
                (p for p in walk_files(root, rules) if regex.fullmatch(p))
                if os.path.isdir(root)
                else ()
            )
        elif os.path.isdir(path):
            found = walk_files(path, rules)
        else:
            files.add(path)
            continue
        matched = list(islice(found, limit + 1)) if limit is not None else list(found)
        if limit is not None and len(matched) > limit:
            matched = matched[:limit]
            if on_limit is not None:
                on_limit(pattern, limit)
        files.update(matched)
    return files


NOTHING_EXCLUDED = Rules(defaults=False)


def empty_include_warnings(patterns: Iterable[str], base_dir: str, rules: Rules) -> list[str]:
    """One warning per include folder or glob that tracks no file right now, naming
    the key, the pattern and why (a plain file is tracked even while it is missing)."""
    warnings = []
    for pattern in patterns:
        path = absolute(pattern, base_dir)
        if has_glob(pattern):
            regex = glob_regex(path)
            root = static_root(path)
            if not os.path.isdir(root):
                reason = f"its folder {root} does not exist"
                warnings.append(f"{PREFIX_INCLUDE} {pattern!r} tracks no file: {reason}")
                continue
            tracked = (p for p in walk_files(root, rules) if regex.fullmatch(p))
            anything = (p for p in walk_files(root, NOTHING_EXCLUDED) if regex.fullmatch(p))
        elif os.path.isdir(path):
            root = path
            tracked = walk_files(root, rules)
            anything = walk_files(root, NOTHING_EXCLUDED)
        else:
            continue
        if next(tracked, None) is not None:
            continue
        dropped = next(anything, None)
        if dropped is None:
            reason = "no file matches it" if has_glob(pattern) else "the folder has no file"
        else:
            reason = (
                f"every file it names is excluded (for example {dropped}, by the exclusion "
                f"{rules.reason(dropped, root)!r}); narrow uwsgi-reload-exclude, or include "
                "a folder below the excluded one"
            )
        warnings.append(f"{PREFIX_INCLUDE} {pattern!r} tracks no file: {reason}")
    return warnings


PREFIX_INCLUDE = "warning: uwsgi-reload-include"
