"""The files one server instance shares between its processes (no server needed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from uwsgi_reload.core.snapshot import FileStat
from uwsgi_reload.hosts import state
from uwsgi_reload.hosts.records import Loaded, Reloading
from uwsgi_reload.hosts.state import processes

STAT = FileStat(1, 2, 3, 0o644, 0, 0)


def folder_size(path) -> tuple[int, int]:
    """(entries, bytes) under ``path``."""
    entries = size = 0
    for folder, dirs, files in os.walk(path):
        entries += len(dirs) + len(files)
        size += sum(os.lstat(os.path.join(folder, name)).st_size for name in files)
    return entries, size


def test_instance_dir_is_private_named_by_namespace_pid_and_start_time(tmp_path):
    mine = state.instance_dir(os.getpid(), root=str(tmp_path))
    namespace = os.stat("/proc/self/ns/pid").st_ino
    assert os.path.basename(mine).startswith(f"srv-{namespace}-{os.getpid()}-")
    assert mine == state.instance_dir(os.getpid(), root=str(tmp_path))
    assert oct(os.stat(mine).st_mode & 0o777) == "0o700"
    marker = json.loads((tmp_path / os.path.basename(mine) / "owner.json").read_text())
    assert marker["pid"] == os.getpid() and marker["pidns"] == namespace


def test_state_root_is_created_private_whatever_the_umask(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.delenv(state.STATE_DIR_ENV, raising=False)
    old = os.umask(0)
    try:
        root, refused = state.state_root()
    finally:
        os.umask(old)
    assert root == str(tmp_path / f"uwsgi-reload-{os.getuid()}") and refused == []
    assert oct(os.stat(root).st_mode & 0o7777) == "0o700"


def test_the_temp_folder_is_chosen_as_tempfile_would_each_in_turn(tmp_path):
    uid = os.getuid()
    env = {"TMPDIR": str(tmp_path / "missing"), "TEMP": str(tmp_path)}
    root, refused = state.state_root(env)
    assert root == str(tmp_path / f"uwsgi-reload-{uid}") and refused == []
    # a TMPDIR this user cannot use (someone else's, open to all) is refused with its
    # reason, and the next candidate is used
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    theirs.chmod(0o777)
    os.chown(theirs, 65534, 65534)
    root, refused = state.state_root({"TMPDIR": str(theirs), "TMP": str(tmp_path)})
    assert root == str(tmp_path / f"uwsgi-reload-{uid}")
    assert refused == [f"{theirs} belongs to uid 65534"]


def test_a_taken_or_open_state_folder_is_never_used(tmp_path):
    uid = os.getuid()
    taken = tmp_path / f"uwsgi-reload-{uid}"
    taken.mkdir()
    taken.chmod(0o777)  # made by someone else before our first start
    (tmp_path / f"uwsgi-reload-{uid}.1").symlink_to(tmp_path)
    root, refused = state.state_root({state.STATE_DIR_ENV: str(tmp_path)})
    assert root == str(tmp_path / f"uwsgi-reload-{uid}.2")
    assert refused == [
        f"{taken} has mode 777: other users can enter it",
        f"{taken}.1 is a symlink",
    ]
    assert oct(os.stat(root).st_mode & 0o777) == "0o700"


def test_state_dir_variable_gets_a_folder_of_our_own(tmp_path, monkeypatch):
    monkeypatch.setenv(state.STATE_DIR_ENV, str(tmp_path))
    said: list[str] = []
    folder = state.instance_dir(os.getpid(), log=said.append)
    assert os.path.dirname(folder) == str(tmp_path / f"uwsgi-reload-{os.getuid()}")
    assert said == []
    (tmp_path / f"uwsgi-reload-{os.getuid()}").chmod(0o755)
    folder = state.instance_dir(os.getpid(), log=said.append)
    assert os.path.dirname(folder) == str(tmp_path / f"uwsgi-reload-{os.getuid()}.1")
    state.instance_dir(os.getpid(), log=said.append)
    assert said == [
        f"state folder {tmp_path}/uwsgi-reload-{os.getuid()}.1: refused "
        f"{tmp_path}/uwsgi-reload-{os.getuid()} has mode 755: other users can enter it"
    ]


def test_xdg_runtime_dir_is_used_only_when_private(tmp_path, monkeypatch):
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    monkeypatch.delenv(state.STATE_DIR_ENV, raising=False)
    environ = {"XDG_RUNTIME_DIR": str(runtime)}
    assert state.state_root(environ)[0] == str(runtime / "uwsgi-reload")
    runtime.chmod(0o755)
    assert state.state_root(environ)[0] != str(runtime / "uwsgi-reload")


def test_files_are_never_followed_through_symlinks(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious")
    folder = tmp_path / "state"
    folder.mkdir(mode=0o700)
    for name in ("history.json", "reloads.json", "notices.json.lock", "lock", "journal-1"):
        (folder / name).symlink_to(victim)
    for pid in range(os.getpid() - 5, os.getpid() + 5):  # the old predictable temp names
        (folder / f"history.json.{pid}").symlink_to(victim)
    history = state.History(str(folder))
    assert history.load() == []
    with pytest.raises(OSError):
        state.Journal(str(folder), "1").append(Reloading(("x",)))
    with pytest.raises(OSError), state.Journal(str(folder), "1").exclusive():
        pass
    history.add(["/app.py"])  # replaces the symlink itself
    assert victim.read_text() == "precious"
    assert not (folder / "history.json").is_symlink() and history.load()[0][1] == ["/app.py"]


def test_cleanup_removes_only_dead_instances_it_made(tmp_path):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        mine = state.instance_dir(os.getpid(), root=str(tmp_path))
        dead = state.instance_dir(gone.pid, root=str(tmp_path))
        other = state.instance_dir(alive.pid, root=str(tmp_path))
        namespace = os.stat("/proc/self/ns/pid").st_ino
        # same pid, another start time: a reused pid, so this server is gone
        reused = tmp_path / f"srv-{namespace}-{alive.pid}-1"
        reused.mkdir(mode=0o700)
        marker = {"pid": alive.pid, "started": "1", "pidns": namespace, "boot": processes.boot_id()}
        (reused / "owner.json").write_text(json.dumps(marker))
        kept = ["2024-01-photos", "1-notes", f"{gone.pid}-1", "not-ours"]
        for name in kept:
            (tmp_path / name).mkdir()
        # our name pattern, but no marker, or another container's, or a symlink
        (tmp_path / f"srv-{namespace}-{gone.pid}-5").mkdir(mode=0o700)
        container = tmp_path / f"srv-1-{gone.pid}-0"
        container.mkdir(mode=0o700)
        (container / "owner.json").write_text(json.dumps({**marker, "pidns": 1, "started": "0"}))
        (tmp_path / f"srv-{namespace}-{gone.pid}-7").symlink_to(tmp_path / "2024-01-photos")
        kept += [f"srv-{namespace}-{gone.pid}-5", container.name, f"srv-{namespace}-{gone.pid}-7"]

        removed = state.remove_dead_instances(mine)

        assert sorted(removed) == sorted([os.path.basename(dead), reused.name])
        assert sorted(os.listdir(tmp_path)) == sorted(
            [os.path.basename(mine), os.path.basename(other), *kept]
        )
    finally:
        alive.kill()
        alive.wait()


def test_a_thousand_generations_stay_bounded(tmp_path):
    folder = state.instance_dir(os.getpid(), root=str(tmp_path))
    sizes = []
    for generation in range(1000):
        history = state.History(folder)
        journal = state.Journal(folder, f"{generation}")
        assert state.start_generation(journal, history)
        assert not state.start_generation(journal, history)  # the next worker: done
        journal.append(Loaded(f"/srv/app/module{generation}.py", STAT))
        journal.append(Reloading(("/srv/app/app.py",)))
        history.first_time(f"timer {generation}")
        history.add(["/srv/app/app.py"])
        sizes.append(folder_size(tmp_path))
    # the same entries, and bytes that only grow with the digits of the numbers
    assert sizes[-1][0] == sizes[100][0] and sizes[-1][1] < 1.1 * sizes[100][1], sizes[-1]
    entries, size = sizes[-1]
    assert entries < 20 and size < 20_000, sizes[-1]
    assert state.History(folder).count() == 1000
    assert len([n for n in os.listdir(folder) if n.startswith("journal-")]) == 2


def test_the_reload_mark_goes_with_its_generation(tmp_path):
    folder = str(tmp_path)
    journals = [state.Journal(folder, f"100-{n}") for n in range(3)]
    for n, journal in enumerate(journals):
        journal.append(Reloading(("/srv/app/app.py",)))
        journal.mark_reloading(True)
        journal.mark_reloading(True)  # asked again: still one mark
        os.utime(journal.path, ns=(n * 10**9, n * 10**9))
        os.utime(journal.reload_mark, ns=(n * 10**9, n * 10**9))
    journals[0].mark_reloading(False)  # asking failed
    assert not os.path.exists(journals[0].reload_mark)
    current = state.Journal(folder, "100-3")
    assert not os.path.exists(current.reload_mark)
    current.clear_old(keep_previous=True)
    # the previous generation, whose workers may still be leaving, keeps its mark
    assert sorted(os.listdir(folder)) == ["journal-100-2", "journal-100-2.reloading"]
    current.clear_old()
    assert os.listdir(folder) == []


def test_single_reader_journal_rotates_and_loses_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(state.journal, "JOURNAL_ROTATE_BYTES", 10_000)
    writer = state.Journal(str(tmp_path), "gunicorn")
    reader = state.Journal(str(tmp_path), "gunicorn", single_reader=True)
    seen = []
    for n in range(5000):
        writer.append(Loaded(f"/srv/app/m{n}.py", FileStat(n, 0, 0, 0o644, 0, 0)))
        if n % 50 == 0:
            seen += reader.read_new()
        if n == 2500:  # a writer that had opened the file before a rotation
            old = str(tmp_path / "journal-gunicorn.old")
            if os.path.exists(old):
                with open(old, "a") as f:
                    f.write(json.dumps({"loaded": ["/late.py", [0, 0, 0, 0, 0, 0]]}) + "\n")
    seen += reader.read_new() + reader.read_new()
    paths = [record.path for record in seen]
    assert paths.count("/late.py") == 1
    assert [p for p in paths if p != "/late.py"] == [f"/srv/app/m{n}.py" for n in range(5000)]
    assert folder_size(tmp_path)[1] < 40_000  # the journal and the one rotated away


def test_journal_drops_lines_of_the_wrong_shape(tmp_path):
    journal = state.Journal(str(tmp_path), "1")
    journal.append(Loaded("/srv/app/a.py", STAT))
    with open(journal.path, "a") as f:
        for line in (
            '{"loaded": "/etc/passwd"}',
            '{"baseline": {"/a.py": "x"}}',
            '["not", "a", "record"]',
            '{"reloading": [1]}',
            "not json",
        ):
            f.write(line + "\n")
    journal.append(Reloading(("/srv/app/a.py",)))
    assert state.Journal(str(tmp_path), "1").read_new() == [
        Loaded("/srv/app/a.py", STAT),
        Reloading(("/srv/app/a.py",)),
    ]


def test_state_dir_variable_naming_another_users_folder_is_refused(tmp_path):
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o777)
    theirs.chmod(0o777)
    os.chown(theirs, 65534, 65534)  # nobody's, writable by all, no sticky bit
    root, refused = state.state_root({state.STATE_DIR_ENV: str(theirs), "TMPDIR": str(tmp_path)})
    assert root == str(tmp_path / f"uwsgi-reload-{os.getuid()}")
    assert refused == [f"{theirs} belongs to uid 65534"]
    assert os.listdir(theirs) == []


def _process_state(pid: int) -> str:
    """'Z' for a zombie, '' once the process is gone (reaped)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return ""


def _poll(condition, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_work_run_before_exit_runs_in_its_own_session_and_is_reaped_at_the_next_call(
    tmp_path,
):
    """The waker of a worker that asks for a reload: one fork, not waited for. If the
    worker lives on (a reload it could not ask for), the finished child is a zombie
    until the worker's next call reaps it; never more than one."""
    session = tmp_path / "session"
    processes.run_before_exit(lambda: session.write_text(str(os.getsid(0))))
    first = processes._left_behind[-1]
    _poll(lambda: session.exists() and session.read_text(), "the child's work")
    assert int(session.read_text()) == first, "the child leads a session of its own"
    _poll(lambda: _process_state(first) == "Z", f"child {first} to finish")

    processes.run_before_exit(lambda: None)
    second = processes._left_behind[-1]
    assert processes._left_behind == [second]
    assert _process_state(first) == "", f"child {first} was not reaped"
    _poll(lambda: _process_state(second) == "Z", f"child {second} to finish")
    os.waitpid(second, 0)
    processes._left_behind.clear()
