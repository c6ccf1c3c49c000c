"""Loop guard: an app that writes into its own tracked files while it starts would
reload forever. A reload whose changed files were all written while the generation
before it started (after our import, before its first check) is "quick"; when the last
N reloads in a row were quick and share files, those files are the loop. A person saves
after looking at the restarted app, that is after the first check, so is never quick."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from uwsgi_reload.core.snapshot import Changes, Stat


def written_while_starting(
    changes: Changes, current: Mapping[str, Stat], started_ns: int, first_check_ns: int
) -> bool:
    """True when every changed file that still exists was written between ``started_ns``
    and ``first_check_ns`` (deletions alone never count as a loop)."""
    written = [current[p].mtime_ns for p in changes.added | changes.modified if p in current]
    return bool(written) and all(started_ns <= m <= first_check_ns for m in written)


def looping_paths(entries: Sequence[Sequence], count: int) -> set[str]:
    """``entries`` are reloads, oldest first, as ``(time, paths, quick)``. Returns the
    paths common to the last ``count`` reloads if all of them were quick."""
    if count <= 0 or len(entries) < count:
        return set()
    last = entries[-count:]
    if not all(len(entry) > 2 and entry[2] for entry in last):
        return set()
    common = set(last[0][1])
    for entry in last[1:]:
        common &= set(entry[1])
    return common
