"""Import as much of a list of modules as imports cleanly, proving each step first."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Collection, MutableMapping, Sequence

from uwsgi_reload.hosts.uwsgi.warm.trial import try_imports


def _package_left(name: str, left: MutableMapping[str, str]) -> str | None:
    parts = name.split(".")
    for end in range(1, len(parts)):
        if ".".join(parts[:end]) in left:
            return ".".join(parts[:end])
    return None


def import_proven(
    names: Sequence[str], forbidden: Collection[str], left: MutableMapping[str, str]
) -> list[str]:
    """Import ``names`` in order in this process, except those a forked child could not
    import cleanly from the same state (recorded in ``left`` with why, and skipped with
    the modules below them). Returns the names imported here. Raises only if an import
    a child proved fails here after all, which leaves this process as it is."""
    imported: list[str] = []
    remaining = list(names)
    while remaining:
        todo = []
        for name in remaining:
            package = _package_left(name, left)
            if package is not None:
                left[name] = f"its package {package} is left to the workers"
            elif name not in sys.modules:
                todo.append(name)
        if not todo:
            break
        result = try_imports(todo, forbidden)
        for name in todo[: result.imported]:
            importlib.import_module(name)
            imported.append(name)
        if not result.failure:
            break
        left[todo[result.imported]] = result.failure
        remaining = todo[result.imported + 1 :]
    return imported
