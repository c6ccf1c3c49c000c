"""The facts the processes of one server share through the journal, defined once.

Each record is one JSON line (see :class:`uwsgi_reload.hosts.state.Journal`). A line
is read as data: a record of another shape, or with values of the wrong type, is
skipped, never trusted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from uwsgi_reload.core import snapshot
from uwsgi_reload.core.detector import Detector
from uwsgi_reload.core.loopguard import ReloadRecord
from uwsgi_reload.core.snapshot import FileStat, Stat
from uwsgi_reload.core.syntax import SyntaxGate

StatMap = dict[str, Stat | None]


@dataclass(frozen=True)
class Loaded:
    """A process imported ``path`` at ``stat``."""

    path: str
    stat: Stat


@dataclass(frozen=True)
class Baseline:
    """These paths now have this baseline (None: gone, and that is known)."""

    stats: StatMap


@dataclass(frozen=True)
class Broken:
    """Files the syntax gate holds back, at the stat they failed with."""

    stats: StatMap


@dataclass(frozen=True)
class Reloading:
    """A reload of the server was asked for: stop checking in this generation."""

    paths: tuple[str, ...]


@dataclass(frozen=True)
class Announced:
    """The generation's first check ran at ``first_check_ns`` and logged the start."""

    first_check_ns: int


@dataclass(frozen=True)
class Apply:
    """A framework applied these changes in process ``pid``: the others apply them too."""

    paths: tuple[str, ...]
    pid: int


@dataclass(frozen=True)
class Watch:
    """A worker's framework watches these files and (folder, glob) pairs (gunicorn)."""

    files: tuple[str, ...]
    globs: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Failed:
    """A worker's app failed to load; these files were named by the error (gunicorn)."""

    stats: StatMap


Record = Loaded | Baseline | Broken | Reloading | Announced | Apply | Watch | Failed


def encode(record: Record) -> dict:
    if isinstance(record, Loaded):
        return {"loaded": [record.path, list(record.stat)]}
    if isinstance(record, Baseline):
        return {"baseline": _stats_out(record.stats)}
    if isinstance(record, Broken):
        return {"broken": _stats_out(record.stats)}
    if isinstance(record, Reloading):
        return {"reloading": list(record.paths)}
    if isinstance(record, Announced):
        return {"announced": record.first_check_ns}
    if isinstance(record, Apply):
        return {"apply": list(record.paths), "pid": record.pid}
    if isinstance(record, Watch):
        return {"watch": {"files": list(record.files), "globs": [list(g) for g in record.globs]}}
    return {"failed": _stats_out(record.stats)}


def decode(data: object) -> Record | None:
    """The record a journal line holds, or None when it is not one of ours."""
    if not isinstance(data, dict) or len(data) not in (1, 2):
        return None
    try:
        if "loaded" in data:
            path, stat = data["loaded"]
            return Loaded(_text(path), _stat(stat))
        if "baseline" in data:
            return Baseline(_stats_in(data["baseline"]))
        if "broken" in data:
            return Broken(_stats_in(data["broken"]))
        if "reloading" in data:
            return Reloading(tuple(_text(p) for p in data["reloading"]))
        if "announced" in data:
            return Announced(_int(data["announced"]))
        if "apply" in data:
            return Apply(tuple(_text(p) for p in data["apply"]), _int(data["pid"]))
        if "watch" in data:
            watch = data["watch"]
            files = tuple(_text(p) for p in watch["files"])
            globs = tuple((_text(d), _text(g)) for d, g in watch["globs"])
            return Watch(files, globs)
        if "failed" in data:
            return Failed(_stats_in(data["failed"]))
    except (TypeError, ValueError, KeyError):
        return None
    return None


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError("not a string")
    return value


def _int(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError("not an integer")
    return value


def _stat(value: object) -> Stat:
    if not isinstance(value, list) or len(value) != len(FileStat._fields):
        raise TypeError("not a stat")
    return snapshot.from_record([_int(v) for v in value])


def _stats_in(value: object) -> StatMap:
    if not isinstance(value, Mapping):
        raise TypeError("not a mapping")
    return {_text(p): (None if s is None else _stat(s)) for p, s in value.items()}


def _stats_out(stats: StatMap) -> dict:
    return {path: (None if stat is None else list(stat)) for path, stat in stats.items()}


def merge(
    record: Loaded | Baseline | Broken | Failed, detector: Detector, gate: SyntaxGate
) -> None:
    """What another process learned, applied to this process's detector and gate."""
    if isinstance(record, Loaded):
        detector.learn_loaded(record.path, record.stat)
    elif isinstance(record, Baseline):
        for path, stat in record.stats.items():
            detector.learn(path, stat)
    elif isinstance(record, Broken):
        gate.learn_broken({p: s for p, s in record.stats.items() if s is not None})
    else:  # a worker's failed load named these files: track them from now on
        for path, stat in record.stats.items():
            if detector.track_named(path) and stat is not None:
                detector.learn(path, stat)


def reload_records(entries: object) -> list[ReloadRecord]:
    """The history file's entries, ``[time, [paths], quick]``, as records; entries of
    another shape are skipped."""
    found = []
    for entry in entries if isinstance(entries, list) else []:
        try:
            when, paths, quick = entry[0], entry[1], entry[2] if len(entry) > 2 else False
            found.append(ReloadRecord(float(when), tuple(_text(p) for p in paths), bool(quick)))
        except (TypeError, ValueError, IndexError, KeyError):
            continue
    return found
