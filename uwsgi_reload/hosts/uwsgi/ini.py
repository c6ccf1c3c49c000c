"""Read a uwsgi.ini section the way uWSGI 2.0 does, for ``uwsgi-reload check``. Pure."""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Mapping
from typing import NamedTuple

OTHER_LOADERS = ("inherit", "include", "xml", "yaml", "yml", "json", "js", "sqlite3", "ldap")


class UwsgiIni(NamedTuple):
    """The options of one section of a uwsgi.ini, as uWSGI would see them."""

    path: str
    section: str
    options: dict[str, list[str | bool]]
    notes: list[str]

    def last(self, name: str) -> str | None:
        values = self.options.get(name)
        if not values:
            return None
        value = values[-1]
        return "true" if value is True else str(value)


def _magic(path: str) -> dict[str, str]:
    """uWSGI's magic variables of a config file (``%d`` has a trailing slash)."""
    full = os.path.abspath(path) if os.path.islink(path) else os.path.realpath(path)
    folder, name = os.path.split(full)
    stem, dot, ext = name.rpartition(".")
    return {
        "o": path,
        "p": full,
        "s": name,
        "d": folder.rstrip("/") + "/",
        "c": os.path.basename(folder),
        "e": ext if dot else "",
        "n": stem if dot else name,
        "%": "%",
    }


def _expand_magic(text: str, table: Mapping[str, str]) -> str:
    # `%(name)` stays for the placeholder step; any other unknown `%x` is empty in uWSGI
    return re.sub(
        r"%(.)", lambda m: m.group(0) if m.group(1) == "(" else table.get(m.group(1), ""), text
    )


def split_spec(spec: str) -> tuple[str, str]:
    """``FILE[:SECTION]`` as uWSGI's ``--ini`` reads it; the section defaults to uwsgi."""
    if ":" in spec and not os.path.exists(spec):
        path, _, section = spec.rpartition(":")
        return path, section or "uwsgi"
    return spec, "uwsgi"


MAX_INCLUDES = 200  # `ini =` lines followed in all: uWSGI configs have a handful


class IniIncludeError(OSError):
    """An ``ini =`` include that cannot be followed: a cycle, or far too many includes.
    An OSError, so that callers report it as an unreadable ini."""


def read_uwsgi_ini(
    spec: str,
    environ: Mapping[str, str] | None = None,
    _chain: list[str] | None = None,
    _count: list[int] | None = None,
) -> UwsgiIni:
    """Read one section the way uWSGI 2.0 does: whole-line ``;``/``#`` comments only,
    repeated keys kept in order (the last wins for a single value), a key without ``=``
    is a flag, magic variables (``%d``...), ``ini = other.ini`` includes, ``$(ENV)``
    (left as written when unset), ``set-ph NAME=VALUE`` and ``%(option)`` placeholders.
    Raises OSError when the file cannot be read, :class:`IniIncludeError` (an OSError)
    when includes form a cycle (``ini = %p``, a.ini -> b.ini -> a.ini) or are more than
    ``MAX_INCLUDES``."""
    environ = os.environ if environ is None else environ
    path, section = split_spec(spec)
    chain = [] if _chain is None else _chain
    key = f"{os.path.realpath(path)}:{section}"
    names = [*chain, key]
    if key in chain:
        cycle = " -> ".join(n.removesuffix(":uwsgi") for n in names[names.index(key) :])
        raise IniIncludeError(errno.ELOOP, f"`ini =` includes form a cycle: {cycle}", path)
    count = [0] if _count is None else _count  # includes followed in this whole read
    count[0] += 1
    if count[0] > MAX_INCLUDES:
        raise IniIncludeError(
            errno.ELOOP, f"more than {MAX_INCLUDES} `ini =` includes: is one repeated?", path
        )
    with open(path, encoding="utf-8", errors="replace") as f:
        text = _expand_magic(f.read(), _magic(path))
    options: dict[str, list[str | bool]] = {}
    notes: list[str] = []
    found = False
    current = ""
    for raw in text.split("\n"):
        line = raw.strip(" \t\r")
        if not line or line[0] in ";#":
            continue
        if line[0] == "[":
            current = line[1:-1]
            continue
        if current != section:
            continue
        found = True
        key, eq, value = line.partition("=")
        key = key.rstrip(" \t\r")
        if key == "ini" and eq:
            included = read_uwsgi_ini(value.strip(), environ, names, count)
            for name, values in included.options.items():
                options.setdefault(name, []).extend(values)
            notes += included.notes
            continue
        if key in OTHER_LOADERS:
            notes.append(f"`{key} = {value.strip()}` loads more options, which are not read here")
        options.setdefault(key, []).append(value.strip(" \t\r") if eq else True)
    if not found:
        notes.append(f"no [{section}] section in {path}")
    _substitute(options, environ)
    return UwsgiIni(path, section, options, notes)


def _substitute(options: dict[str, list[str | bool]], environ: Mapping[str, str]) -> None:
    def env(match: re.Match) -> str:
        return environ.get(match.group(1), match.group(0))

    for values in options.values():
        values[:] = [re.sub(r"\$\(([^)]+)\)", env, v) if isinstance(v, str) else v for v in values]
    for name in ("set-ph", "set-placeholder"):
        for value in options.get(name, []):
            if isinstance(value, str) and "=" in value:
                key, _, val = value.partition("=")
                options.setdefault(key.strip(), []).append(val.strip())

    def placeholder(match: re.Match) -> str:
        values = [v for v in options.get(match.group(1), []) if isinstance(v, str)]
        return values[-1] if values else match.group(0)

    for values in options.values():
        values[:] = [
            re.sub(r"%\(([^)]+)\)", placeholder, v) if isinstance(v, str) else v for v in values
        ]
