"""The cost of one check of the change detector, without a server.

Generates N small modules (100 per package) in a temporary folder, imports them all,
and times ``Detector.check()`` on a tree where nothing changed (what every idle check
of the poll backend does). Run by hand:

    .venv/bin/python bench/check_cost.py [--modules 10000] [--checks 20]
"""

from __future__ import annotations

import argparse
import importlib
import sys
import tempfile
import time
from pathlib import Path

from uwsgi_reload.core.config import Config
from uwsgi_reload.core.detector import Detector


def make_tree(folder: Path, modules: int) -> list[str]:
    names = []
    for package in range(max(modules // 100, 1)):
        root = folder / f"pkg{package}"
        root.mkdir()
        (root / "__init__.py").write_text("")
        for index in range(min(modules, 100)):
            (root / f"m{index}.py").write_text(f"X = {index}\n")
            names.append(f"pkg{package}.m{index}")
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--modules", type=int, default=10_000)
    parser.add_argument("--checks", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="check-cost-") as folder:
        names = make_tree(Path(folder), args.modules)
        sys.path.insert(0, folder)
        for name in names:
            importlib.import_module(name)
        detector = Detector(Config(base_dir=folder))
        detector.start()
        detector.check()  # the first check builds what later ones reuse
        started = time.perf_counter()
        for _ in range(args.checks):
            assert not detector.check()
        took = (time.perf_counter() - started) / args.checks
        print(f"{len(detector.tracked())} files tracked: {took * 1e3:.2f} ms per idle check")


if __name__ == "__main__":
    main()
