"""The inotify backend on real files: every kind of save an editor or a tool makes is
reported, new folders under a root are watched, lost events say so, the fd works
across fork(), and the limits fail clearly."""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from uwsgi_reload.backends import inotify, inotify_kernel
from uwsgi_reload.backends.inotify import RESCAN, Inotify, WatchLimitError

pytestmark = pytest.mark.skipif(not inotify.available(), reason="inotify not available")


@pytest.fixture
def ino():
    with Inotify(excludes=lambda path: os.path.basename(path) in ("node_modules", ".git")) as i:
        yield i


def write(path: Path, text: str = "x") -> str:
    path.write_text(text)
    return str(path)


def test_nothing_happened_reads_empty_and_never_blocks(tmp_path, ino):
    assert ino.watch_dirs([str(tmp_path)]) == set()
    assert ino.read() == set()
    assert ino.read() == set()


def test_create_write_in_place_delete_touch(tmp_path, ino):
    ino.watch_dirs([str(tmp_path)])
    path = write(tmp_path / "a.py", "A = 1\n")
    assert ino.read() == {path}
    write(tmp_path / "a.py", "A = 2\n")  # open(O_TRUNC), write, close
    assert ino.read() == {path}
    os.utime(path, None)  # `touch`, an IDE bumping the mtime
    assert ino.read() == {path}
    os.unlink(path)
    assert ino.read() == {path}


def test_editor_save_by_rename_over_the_old_file(tmp_path, ino):
    target = write(tmp_path / "views.py", "v1")
    ino.watch_dirs([str(tmp_path)])
    tmp = write(tmp_path / ".views.py.tmp123", "v2")
    os.replace(tmp, target)
    touched = ino.read()
    assert target in touched and tmp in touched
    # vim without `backupcopy`: rename the original away, write a new file
    backup = str(tmp_path / "views.py~")
    os.rename(target, backup)
    write(tmp_path / "views.py", "v3")
    os.unlink(backup)
    assert {target, backup} <= ino.read()
    # and the folder watch survives: the next save is seen too
    write(tmp_path / "views.py", "v4")
    assert ino.read() == {target}


def test_rename_reports_both_names(tmp_path, ino):
    old = write(tmp_path / "old.py")
    ino.watch_dirs([str(tmp_path)])
    new = str(tmp_path / "new.py")
    os.rename(old, new)
    assert ino.read() == {old, new}


def test_plain_watch_is_not_recursive(tmp_path, ino):
    (tmp_path / "sub").mkdir()
    ino.watch_dirs([str(tmp_path)])
    write(tmp_path / "sub" / "x.py")
    assert ino.read() == set()


def test_missing_folders_are_returned_not_raised(tmp_path, ino):
    missing = str(tmp_path / "nope")
    a_file = write(tmp_path / "f.py")
    assert ino.watch_dirs([missing, a_file, str(tmp_path)]) == {missing, a_file}
    assert ino.watched() == {str(tmp_path)}


def test_new_nested_folders_under_a_root_are_watched(tmp_path, ino):
    root = tmp_path / "templates"
    (root / "node_modules").mkdir(parents=True)
    ino.watch_dirs([str(root)], recursive=True)
    assert ino.watched() == {str(root)}  # excluded folders get no watch
    deep = root / "a" / "b" / "c"
    deep.mkdir(parents=True)
    early = write(deep / "early.html")  # written before any read: found by the scan
    first = ino.read()
    assert early in first and str(root / "a") in first
    assert {str(root / "a"), str(root / "a" / "b"), str(deep)} <= ino.watched()
    later = write(deep / "later.html")
    assert ino.read() == {later}
    write(root / "node_modules" / "x.js")
    assert ino.read() == set()


def test_folder_moved_into_a_root_is_watched(tmp_path, ino):
    root = tmp_path / "root"
    root.mkdir()
    outside = tmp_path / "outside"
    (outside / "pkg").mkdir(parents=True)
    moved_file = write(outside / "pkg" / "m.py")
    ino.watch_dirs([str(root)], recursive=True)
    os.rename(outside, root / "outside")
    touched = ino.read()
    assert str(root / "outside" / "pkg" / "m.py") in touched
    assert moved_file not in touched
    write(root / "outside" / "pkg" / "m.py", "2")
    assert ino.read() == {str(root / "outside" / "pkg" / "m.py")}


def test_folder_deleted_or_moved_away_names_the_folder(tmp_path, ino):
    root = tmp_path / "root"
    pkg = root / "pkg"
    pkg.mkdir(parents=True)
    mod = write(pkg / "mod.py")
    other = write(root / "other.py")
    ino.watch_dirs([str(root)], recursive=True)
    shutil.rmtree(pkg)
    touched = ino.read()
    assert touched is not RESCAN
    assert affected(touched, {mod, other}) == {mod}
    assert str(pkg) not in ino.watched()
    # moved away: the watch would follow the folder, so it is dropped
    pkg.mkdir()
    write(pkg / "mod.py")
    ino.read()
    assert str(pkg) in ino.watched()
    away = tmp_path / "away"
    os.rename(pkg, away)
    touched = ino.read()
    assert affected(touched, {mod, other}) == {mod}
    write(away / "mod.py", "changed")
    assert ino.read() == set()
    assert not any(p.startswith(str(away)) for p in ino.watched())


def test_watched_folder_itself_deleted(tmp_path, ino):
    folder = tmp_path / "pkg"
    folder.mkdir()
    mod = write(folder / "mod.py")
    ino.watch_dirs([str(folder)])
    shutil.rmtree(folder)
    assert affected(ino.read(), {mod}) == {mod}
    assert ino.watched() == set()
    folder.mkdir()  # the caller may watch it again when it is back
    assert ino.watch_dirs([str(folder)]) == set()
    assert ino.read() == set()


def test_same_folder_through_a_symlink_reports_both_paths(tmp_path, ino):
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real)
    ino.watch_dirs([str(real), str(link)])
    write(real / "a.py")
    assert ino.read() == {str(real / "a.py"), str(link / "a.py")}


def test_writes_to_an_open_log_file_wake_nobody(tmp_path):
    with Inotify() as ino, open(tmp_path / "app.log", "a") as log:
        ino.watch_dirs([str(tmp_path)])
        log.write("line\n")  # an open log file writing lines wakes nobody by default
        log.flush()
        assert ino.read() == set()


def test_queue_overflow_asks_for_a_rescan(tmp_path, ino):
    limit = int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
    if limit > 100_000:
        pytest.skip(f"max_queued_events = {limit}: too many events to make here")
    a, b = write(tmp_path / "a"), write(tmp_path / "b")
    ino.watch_dirs([str(tmp_path)])
    for _ in range(limit // 2 + 10):  # alternate: identical consecutive events merge
        os.utime(a, None)
        os.utime(b, None)
    assert ino.read() is RESCAN
    assert ino.read() == set()  # the queue is usable again
    assert ino.read() == set()
    assert write(tmp_path / "c") in ino.read()


def test_fd_made_before_fork_is_readable_by_the_child(tmp_path, ino):
    ino.watch_dirs([str(tmp_path)], recursive=True)
    target = str(tmp_path / "app.py")
    saved_r, saved_w = os.pipe()
    result_r, result_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: a uWSGI worker running the check
        code = 1
        try:
            os.close(saved_w)
            os.close(result_r)
            os.read(saved_r, 1)  # the save is complete: all its events are queued
            readable, _, _ = select.select([ino.fd], [], [], 10)
            seen = ino.read() if readable else set()
            (tmp_path / "sub").mkdir()  # a watch only the child knows
            ino.read()
            os.write(result_w, repr(sorted(seen)).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(saved_r)
    os.close(result_w)
    write(tmp_path / "app.py")
    os.write(saved_w, b"1")
    os.close(saved_w)
    with os.fdopen(result_r) as f:
        child_saw = f.read()
    assert os.waitpid(pid, 0)[1] == 0
    assert child_saw == repr([target])
    assert ino.read() == set()  # the child consumed the events
    # an event on the child's watch: unknown here, so rescan once and learn it
    write(tmp_path / "sub" / "x.py")
    assert ino.read() is RESCAN
    assert str(tmp_path / "sub") in ino.watched()
    assert ino.read() == set()
    assert ino.read() == set()
    write(tmp_path / "sub" / "x.py", "2")
    assert ino.read() == {str(tmp_path / "sub" / "x.py")}


def test_watch_limit_raises_a_clear_error(tmp_path):
    """Run in a user namespace whose inotify watch limit is 3 (Linux >= 5.11)."""
    if not shutil.which("unshare"):
        pytest.skip("no unshare")
    for name in "abcdef":
        (tmp_path / name).mkdir()
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent.parent)!r})
        with open("/proc/sys/user/max_inotify_watches", "w") as f:
            f.write("3")
        from uwsgi_reload.backends.inotify import Inotify, WatchLimitError
        ino = Inotify()
        try:
            ino.watch_dirs([{str(tmp_path)!r}], recursive=True)
        except WatchLimitError as error:
            print("LIMIT", error)
        else:
            print("NO LIMIT", len(ino.watched()))
        """
    )
    run = subprocess.run(
        ["unshare", "-Ur", sys.executable, "-c", script], capture_output=True, text=True
    )
    if run.returncode != 0 and "LIMIT" not in run.stdout:
        pytest.skip(f"user namespaces not usable here: {run.stderr.strip()[-200:]}")
    assert run.stdout.startswith("LIMIT"), run.stdout + run.stderr
    assert "max_user_watches" in run.stdout and "poll" in run.stdout


def test_watch_limit_error_is_an_oserror_with_enospc(tmp_path, ino, monkeypatch):
    class FullLibc:
        def inotify_add_watch(self, fd: int, path: bytes, mask: int) -> int:
            import ctypes

            ctypes.set_errno(28)  # ENOSPC
            return -1

    monkeypatch.setattr(inotify_kernel, "_LIBC", FullLibc())
    with pytest.raises(WatchLimitError) as raised:
        ino.watch_dirs([str(tmp_path)])
    assert raised.value.errno == 28 and isinstance(raised.value, OSError)


def test_closed_instance_refuses_to_read(tmp_path):
    ino = Inotify()
    ino.close()
    ino.close()
    with pytest.raises(ValueError):
        ino.read()


def affected(touched: set[str], tracked: set[str]) -> set[str]:
    """The tracked paths a read names, directly or by naming a folder above them."""
    prefixes = tuple(path + os.sep for path in touched)
    return {p for p in tracked if p in touched or (prefixes and p.startswith(prefixes))}


def test_after_an_overflow_folders_made_meanwhile_under_a_root_are_watched(tmp_path, ino):
    """Folders created while the queue overflowed were never reported: the roots are
    walked again, so what is written in them later is seen."""
    limit = int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
    if limit > 100_000:
        pytest.skip(f"max_queued_events = {limit}: too many events to make here")
    root = tmp_path / "root"
    root.mkdir()
    a, b = write(root / "a"), write(root / "b")
    ino.watch_dirs([str(root)], recursive=True)
    for _ in range(limit // 2 + 10):
        os.utime(a, None)
        os.utime(b, None)
    (root / "made" / "during").mkdir(parents=True)  # its events are lost in the overflow
    assert ino.read() is RESCAN
    assert str(root / "made" / "during") in ino.watched()
    assert write(root / "made" / "during" / "new.html") in ino.read()
