"""Loop guard: an app that writes into its own tracked files while it starts would
reload forever. A reload whose changed files were all written while the generation
before it started (after our import, before its first check, which runs as soon as a
worker serves) is "quick"; when the last N reloads in a row were quick and share
files, those files are the loop. A person saves after looking at the restarted app,
so is almost never quick three times in a row."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from uwsgi_reload.core.snapshot import Changes, Stat


@dataclass(frozen=True)
class ReloadRecord:
    """One reload in a server's history."""

    time: float
    paths: tuple[str, ...]
    quick: bool = False


@dataclass(frozen=True)
class GuardVerdict:
    kept: Changes  # what still calls for a reload
    looping: frozenset[str]  # files dropped: the app writes them at every start
    quick: bool  # this change was written while the generation started


def written_while_starting(
    changes: Changes, current: Mapping[str, Stat], started_ns: int, first_check_ns: int
) -> bool:
    """True when every changed file that still exists was written between ``started_ns``
    and ``first_check_ns`` (deletions alone never count as a loop)."""
    written = [current[p].mtime_ns for p in changes.added | changes.modified if p in current]
    return bool(written) and all(started_ns <= m <= first_check_ns for m in written)


def looping_paths(records: Sequence[ReloadRecord], count: int) -> set[str]:
    """The paths common to the last ``count`` reloads if all of them were quick."""
    if count <= 0 or len(records) < count:
        return set()
    last = records[-count:]
    if not all(record.quick for record in last):
        return set()
    common = set(last[0].paths)
    for record in last[1:]:
        common &= set(record.paths)
    return common


def judge(
    changes: Changes,
    current: Mapping[str, Stat],
    history: Sequence[ReloadRecord],
    count: int,
    started_ns: int,
    first_check_ns: int,
) -> GuardVerdict:
    """Whether this reload would continue a loop: with it, the last ``count`` reloads
    were all quick and share files; those files are dropped from the change."""
    quick = written_while_starting(changes, current, started_ns, first_check_ns)
    if not quick:
        return GuardVerdict(changes, frozenset(), False)
    candidate = ReloadRecord(0.0, tuple(changes.paths), True)
    looping = looping_paths([*history, candidate], count) & set(changes.paths)
    if not looping:
        return GuardVerdict(changes, frozenset(), True)
    kept = Changes(changes.added - looping, changes.modified - looping, changes.deleted - looping)
    return GuardVerdict(kept, frozenset(looping), False)
