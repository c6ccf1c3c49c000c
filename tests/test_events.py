"""The event gate: a check scans only when inotify saw something (no server)."""

from __future__ import annotations

import os
import types
from pathlib import Path

import pytest

from uwsgi_reload.backends import inotify
from uwsgi_reload.backends.events import SAFETY_EVERY, EventGate, open_events
from uwsgi_reload.core.config import Config
from uwsgi_reload.core.detector import Detector

pytestmark = pytest.mark.skipif(not inotify.available(), reason="needs Linux inotify")


def gate_for(tmp_path: Path, modules: list, **config) -> EventGate:
    detector = Detector(Config(base_dir=str(tmp_path), **config), modules=lambda: modules)
    detector.start()
    events, reason = open_events(detector.config, [str(tmp_path)])
    assert events is not None, reason
    gate = EventGate(detector, events)
    gate.watch_tracked()
    return gate


def module(path: Path) -> types.ModuleType:
    mod = types.ModuleType(path.stem)
    mod.__file__ = str(path)
    return mod


def test_idle_checks_do_not_scan_and_a_save_does(tmp_path):
    app = tmp_path / "app.py"
    app.write_text("x = 1\n")
    gate = gate_for(tmp_path, [module(app)])
    assert gate.needs_scan()  # the first check always scans
    assert [gate.needs_scan() for _ in range(5)] == [False] * 5
    app.write_text("x = 2\n")
    assert gate.needs_scan()
    assert gate.detector.check().modified == {str(app)}


def test_new_file_under_an_include_wakes_the_gate(tmp_path):
    (tmp_path / "t" / "deep").mkdir(parents=True)
    gate = gate_for(tmp_path, [], include=("t",))
    gate.needs_scan()
    assert not gate.needs_scan()
    (tmp_path / "t" / "deep" / "new.html").write_text("x")
    assert gate.needs_scan()
    assert gate.detector.check().added == {str(tmp_path / "t" / "deep" / "new.html")}


def test_module_in_a_new_folder_is_watched_and_scanned(tmp_path):
    modules: list = []
    gate = gate_for(tmp_path, modules)
    gate.needs_scan()
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    late = pkg / "late.py"
    late.write_text("x = 1\n")
    modules.append(module(late))
    assert gate.needs_scan()  # a new folder to watch: scan once, in case of a save before
    assert str(pkg) in gate.events.watched()
    assert not gate.needs_scan()
    late.write_text("x = 22\n")
    assert gate.needs_scan()


def test_safety_scan_runs_now_and_then(tmp_path):
    gate = gate_for(tmp_path, [])
    scans = [gate.needs_scan() for _ in range(SAFETY_EVERY * 2)]
    assert scans.count(True) == 2


def test_poll_backend_opens_no_events(tmp_path):
    events, reason = open_events(Config(backend="poll"), [str(tmp_path)])
    assert events is None and reason == "backend poll"


def test_auto_polls_on_filesystems_without_events(tmp_path, monkeypatch):
    monkeypatch.setattr(inotify, "unreliable_filesystem", lambda path: "fuse (test)")
    events, reason = open_events(Config(backend="auto"), [str(tmp_path)])
    assert events is None and "fuse (test)" in reason
    forced, _ = open_events(Config(backend="inotify"), [str(tmp_path)])
    assert forced is not None
    forced.close()


def test_gate_fd_is_shared_with_a_forked_child(tmp_path):
    app = tmp_path / "app.py"
    app.write_text("x = 1\n")
    gate = gate_for(tmp_path, [module(app)])
    gate.needs_scan()
    pid = os.fork()
    if pid == 0:  # the child reads what the parent's watch reports
        app.write_text("x = 3\n")
        os._exit(0 if gate.needs_scan() else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert not gate.needs_scan()  # the child consumed the events


def test_pending_tells_without_consuming(tmp_path):
    app = tmp_path / "app.py"
    app.write_text("x = 1\n")
    gate = gate_for(tmp_path, [module(app)])
    gate.needs_scan()
    assert not gate.pending()
    app.write_text("x = 2\n")
    assert gate.pending() and gate.pending()
    assert gate.needs_scan() and not gate.pending()
