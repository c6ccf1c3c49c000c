"""The scan gate and the backend registry: a check scans only when the backend saw
something; a failing backend falls back to polling (no server)."""

from __future__ import annotations

import os
import threading
import time
import types
from pathlib import Path

import pytest

from uwsgi_reload import backends
from uwsgi_reload.backends import inotify
from uwsgi_reload.backends.gate import SAFETY_EVERY, ScanGate
from uwsgi_reload.backends.inotify import Inotify
from uwsgi_reload.backends.poll import PollBackend
from uwsgi_reload.core.config import Config
from uwsgi_reload.core.detector import Detector

pytestmark = pytest.mark.skipif(not inotify.available(), reason="needs Linux inotify")


def gate_for(tmp_path: Path, modules: list, log: list | None = None, **config) -> ScanGate:
    detector = Detector(Config(base_dir=str(tmp_path), **config), modules=lambda: modules)
    detector.start()
    backend, reason = backends.open_backend("inotify", [str(tmp_path)], detector.rules.excludes)
    assert backend.name == "inotify", reason
    gate = ScanGate(detector, backend, (log if log is not None else []).append)
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
    assert str(pkg) in gate.backend.watched()
    assert not gate.needs_scan()
    late.write_text("x = 22\n")
    assert gate.needs_scan()


def test_safety_scan_runs_now_and_then(tmp_path):
    gate = gate_for(tmp_path, [])
    scans = [gate.needs_scan() for _ in range(SAFETY_EVERY * 2)]
    assert scans.count(True) == 2


def test_registry_names_every_backend_the_config_allows():
    from uwsgi_reload.core.config import BACKENDS

    assert set(BACKENDS) == {"auto", *backends.BACKENDS}


def test_poll_backend_always_asks_for_a_scan(tmp_path):
    backend, reason = backends.open_backend("poll", [str(tmp_path)], lambda path: False)
    assert backend.name == "poll" and reason == ""
    assert backend.changed() is backends.base.RESCAN


def test_auto_polls_on_filesystems_without_events(tmp_path, monkeypatch):
    monkeypatch.setattr(
        backends.filesystems, "unreliable_filesystem", lambda path: "/x is a fuse.test mount"
    )
    backend, reason = backends.open_backend("auto", [str(tmp_path)], lambda path: False)
    assert backend.name == "poll" and "fuse.test" in reason
    forced, _ = backends.open_backend("inotify", [str(tmp_path)], lambda path: False)
    assert forced.name == "inotify"
    forced.close()


def test_mountinfo_names_the_mount_and_its_type(tmp_path):
    info = tmp_path / "mountinfo"
    info.write_text(
        "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n"
        "40 22 0:50 / /srv/my\\040app rw - fuse.bindfs bindfs rw\n"
        "41 22 0:51 / /mnt/share rw shared:1 - virtiofs share rw\n"
    )
    unreliable = backends.filesystems.unreliable_filesystem
    assert unreliable("/srv/my app/x.py", str(info)) == "/srv/my app is a fuse.bindfs mount (FUSE)"
    assert "virtiofs" in unreliable("/mnt/share/a", str(info))
    assert unreliable("/home/me/a.py", str(info)) is None


def test_include_root_adds_no_watch_under_excluded_folders(tmp_path):
    for name in ("node_modules/pkg/lib", ".git/objects/aa", ".venv/lib/site", "src/app/deep"):
        (tmp_path / "proj" / name).mkdir(parents=True)
    gate = gate_for(tmp_path, [], include=("proj",))
    watched = gate.backend.watched()
    assert str(tmp_path / "proj" / "src" / "app" / "deep") in watched
    excluded = [p for p in watched if any(n in p for n in ("node_modules", ".git", ".venv"))]
    assert excluded == [], excluded
    (tmp_path / "proj" / "node_modules" / "new").mkdir()  # made later: not watched either
    gate.needs_scan()
    assert not [p for p in gate.backend.watched() if "node_modules" in p]


def test_include_root_already_watched_as_a_module_folder_becomes_recursive(tmp_path):
    app = tmp_path / "app.py"
    app.write_text("x = 1\n")
    gate = gate_for(tmp_path, [module(app)], include=(".",))
    gate.needs_scan()
    (tmp_path / "templates" / "deep").mkdir(parents=True)
    gate.needs_scan()  # the new folders are watched as their events arrive
    (tmp_path / "templates" / "deep" / "page.html").write_text("x")
    assert gate.needs_scan()


def test_a_failing_backend_falls_back_to_polling_and_says_why(tmp_path):
    log: list = []
    gate = gate_for(tmp_path, [], log)

    def fail(*args, **kwargs):
        raise backends.BackendFailed(28, "watch limit reached (test)")

    gate.backend.changed = fail
    assert gate.needs_scan()
    assert isinstance(gate.backend, PollBackend)
    assert len(log) == 1 and "watch limit reached (test)" in log[0] and "polling" in log[0]
    assert gate.needs_scan() and gate.needs_scan()  # polling: every check scans
    assert len(log) == 1


def test_a_change_the_events_missed_switches_to_polling(tmp_path):
    log: list = []
    app = tmp_path / "app.py"
    app.write_text("x = 1\n")
    gate = gate_for(tmp_path, [module(app)], log)
    assert gate.needs_scan()  # the first check
    gate.detector.check()
    gate.backend.events.close()  # a filesystem that delivers nothing
    gate.backend.events = Inotify()
    app.write_text("x = 22\n")
    while not gate.needs_scan():  # nothing reported until the safety scan is due
        pass
    changes = gate.detector.check()
    assert changes.modified == {str(app)}
    gate.after_scan(changes)
    assert isinstance(gate.backend, PollBackend)
    assert len(log) == 1 and "reported no event for" in log[0], log


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


def test_pending_waits_for_a_save_that_closes_during_the_wait(tmp_path):
    """A check woken by a write (uWSGI's file monitors) waits briefly for the close,
    which is when the backend reports the file."""
    app = tmp_path / "app.py"
    app.write_text("x = 1\n")
    gate = gate_for(tmp_path, [module(app)])
    gate.needs_scan()
    started = time.monotonic()
    assert not gate.pending(timeout=0.05)
    assert time.monotonic() - started >= 0.04  # nothing came: it waited

    with open(app, "w") as f:
        f.write("x = 2\n")
        f.flush()
        assert not gate.pending()  # written, not closed: nothing reported yet
        closer = threading.Timer(0.02, f.close)
        closer.start()
        started = time.monotonic()
        assert gate.pending(timeout=2.0)
        closer.join()
    assert time.monotonic() - started < 1.0  # it returned at the close, not at 2 s
