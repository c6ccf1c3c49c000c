"""What warm mode has learned about one server, kept in its state folder:

- ``libraries``: the library modules the workers imported, in the order they did;
- ``project``: the project's modules (the master must never hold one);
- ``kept``: library modules proven to import cleanly in that order, which the master
  imports at its start;
- ``left``: modules left to the workers, with why (the first error is enough).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import ModuleType

from uwsgi_reload.core.sources import module_file
from uwsgi_reload.hosts.state.files import read_json, write_json

LOCK_NAME = "warm.lock"


@dataclass
class Learned:
    libraries: list[str] = field(default_factory=list)
    project: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    left: dict[str, str] = field(default_factory=dict)

    def unknown(self, held: Iterable[str] = ()) -> list[str]:
        """Libraries neither kept nor left yet (nor already held), in import order."""
        known = set(self.kept) | self.left.keys() | set(held)
        return [name for name in self.libraries if name not in known]


def _learned(data: object) -> Learned:
    if not isinstance(data, dict):
        raise TypeError("not an object")
    lists = {key: [str(n) for n in data.get(key, [])] for key in ("libraries", "project", "kept")}
    left = {str(k): str(v) for k, v in dict(data.get("left", {})).items()}
    return Learned(**lists, left=left)


def path(folder: str) -> str:
    return os.path.join(folder, "warm.json")


def load(folder: str) -> Learned:
    return read_json(path(folder), Learned(), _learned)


def save(folder: str, learned: Learned) -> None:
    write_json(path(folder), learned.__dict__)


def split_modules(
    modules: Mapping[str, ModuleType], is_project_file: Callable[[str], bool]
) -> tuple[list[str], list[str]]:
    """(library modules, project modules) among ``modules``, in import order. Modules
    without a file (built-in, namespace packages) come with their parents or children."""
    libraries: list[str] = []
    project: list[str] = []
    for name, module in list(modules.items()):
        if name in ("__main__", "__mp_main__") or module is None:
            continue
        filename = module_file(module)
        if filename is None:
            continue
        (project if is_project_file(filename) else libraries).append(name)
    return libraries, project
