"""Warm mode's import proving, on real forks and real modules: what a master may keep."""

from __future__ import annotations

import sys
import uuid

import pytest

from uwsgi_reload.hosts.uwsgi.warm import learned, trial
from uwsgi_reload.hosts.uwsgi.warm.proven import import_proven


@pytest.fixture
def modules(tmp_path, monkeypatch):
    """Write modules under unique names; returns name -> real module name."""
    monkeypatch.syspath_prepend(str(tmp_path))
    prefix = f"m{uuid.uuid4().hex[:8]}_"

    def make(sources: dict[str, str]) -> dict[str, str]:
        names = {}
        for short, source in sources.items():
            parts = short.split(".")
            folder = tmp_path
            for package in parts[:-1]:
                folder = folder / (prefix + package)
                folder.mkdir(exist_ok=True)
            leaf = prefix + parts[-1]
            path = folder / leaf / "__init__.py" if source.startswith("#package") else None
            if path is None:
                path = folder / f"{leaf}.py"
            path.parent.mkdir(exist_ok=True)
            path.write_text(source.replace("PREFIX", prefix))
            names[short] = ".".join(prefix + part for part in parts)
        return names

    yield make
    for name in [n for n in sys.modules if n.startswith(prefix)]:
        del sys.modules[name]


def test_a_trial_reports_how_far_the_imports_went_and_why_it_stopped(modules):
    names = modules(
        {
            "good1": "X = 1\n",
            "good2": "X = 2\n",
            "bad": "raise RuntimeError('configure the app first')\n",
            "good3": "X = 3\n",
        }
    )
    order = [names[n] for n in ("good1", "good2", "bad", "good3")]
    result = trial.try_imports(order)
    assert result == trial.TrialResult(2, "RuntimeError: configure the app first")
    assert not any(n in sys.modules for n in order)  # only the child imported them
    assert trial.try_imports(order[:2]) == trial.TrialResult(2)


def test_a_module_that_pulls_in_a_project_module_fails_the_trial(modules):
    names = modules({"settings": "X = 1\n", "lib": "import PREFIXsettings\n"})
    result = trial.try_imports([names["lib"]], forbidden=[names["settings"]])
    assert result.imported == 0
    assert result.failure == f"ImportError: it imports the project's {names['settings']}"


def test_a_module_that_starts_a_thread_at_import_fails_the_trial(modules):
    names = modules(
        {
            "threaded": "import threading, time\n"
            "threading.Thread(target=time.sleep, args=(5,)).start()\n"
        }
    )
    assert trial.try_imports([names["threaded"]]) == trial.TrialResult(
        0, "ImportError: it starts a thread"
    )


def test_an_import_that_ends_or_hangs_the_process_fails_the_trial(modules, monkeypatch):
    names = modules(
        {
            "exits": "import os\nos._exit(3)\n",
            "killed": "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n",
            "hangs": "import time\ntime.sleep(30)\n",
        }
    )
    assert trial.try_imports([names["exits"]]).failure == "the import ended the process (an exit)"
    assert trial.try_imports([names["killed"]]).failure == "the import ended the process (signal 9)"
    monkeypatch.setattr(trial, "STALL_LIMIT", 0.5)
    assert trial.try_imports([names["hangs"]]).failure == "no progress for 0.5 s"


def test_import_proven_imports_what_imports_cleanly_and_leaves_the_rest(modules):
    names = modules(
        {
            "good1": "X = 1\n",
            "bad": "raise RuntimeError('needs settings')\n",
            "pkg": "#package\nimport PREFIXpkg.PREFIXchild\nraise RuntimeError('half set up')\n",
            "pkg.child": "X = 1\n",
            "good2": "import PREFIXgood1\nX = 2\n",
        }
    )
    order = [names[n] for n in ("good1", "bad", "pkg", "pkg.child", "good2")]
    left: dict[str, str] = {}
    assert import_proven(order, (), left) == [names["good1"], names["good2"]]
    assert left == {
        names["bad"]: "RuntimeError: needs settings",
        names["pkg"]: "RuntimeError: half set up",
        names["pkg.child"]: f"its package {names['pkg']} is left to the workers",
    }
    # nothing half imported here: the failures happened in children only
    assert names["pkg.child"] not in sys.modules and names["bad"] not in sys.modules


def test_split_modules_and_what_is_still_to_sort(tmp_path):
    class Module:
        def __init__(self, path: str) -> None:
            self.__file__ = path
            self.__spec__ = None

    modules = {
        "__main__": Module(str(tmp_path / "main.py")),
        "lib": Module("/usr/lib/python3/lib.py"),
        "app": Module(str(tmp_path / "app.py")),
        "builtin": object(),
        "lib.sub": Module("/usr/lib/python3/lib/sub.py"),
    }
    libraries, project = learned.split_modules(modules, lambda p: p.startswith(str(tmp_path)))
    assert (libraries, project) == (["lib", "lib.sub"], ["app"])
    state = learned.Learned(libraries=["a", "b", "c", "d"], kept=["a"], left={"b": "why"})
    assert state.unknown(held=["c"]) == ["d"]
    learned.save(str(tmp_path), state)
    assert learned.load(str(tmp_path)) == state


def test_when_a_save_needs_the_master_restarted(tmp_path, monkeypatch):
    from uwsgi_reload.core.snapshot import stat_file
    from uwsgi_reload.hosts.uwsgi.warm import host

    library = tmp_path / "lib.py"
    library.write_text("X = 1\n")
    # a worker's modules when it starts are the master's: "json" stands for one it keeps
    held = host.MasterHeld(frozenset(), {str(library): stat_file(str(library))}, learned=True)
    monkeypatch.setattr(host, "_held", held)
    worker = host.WarmWorker(str(tmp_path), log=lambda line: None)
    state = learned.Learned(kept=["json"])
    learned.save(str(tmp_path), state)
    assert worker.why_graceful() == ""
    # a few modules the master lacks: cheaper in the workers than a restart
    state.kept += [f"new_{n}" for n in range(host.LEARN_AT_LEAST - 1)]
    learned.save(str(tmp_path), state)
    assert worker.why_graceful() == ""
    state.kept.append("one_more")
    learned.save(str(tmp_path), state)
    assert (
        worker.why_graceful() == f"the master learns {host.LEARN_AT_LEAST} library modules to keep"
    )
    # a master that started with nothing learned learns at the first chance
    worker.held.learned = False
    learned.save(str(tmp_path), learned.Learned(kept=["json", "new_1"]))
    assert worker.why_graceful() == "the master learns 1 library modules to keep"
    # a file the master holds changed: whatever else is true
    library.write_text("X = 22\n")
    assert worker.why_graceful() == f"{library} changed, and the master holds it"
