"""FileStat (core/snapshot.py): what a check compares of a file, built in one place and
carried through the journal between processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from uwsgi_reload.core.snapshot import FileStat, diff, stat_file, take
from uwsgi_reload.hosts.records import Baseline, Broken, Loaded
from uwsgi_reload.hosts.state import Journal


def saved(path: Path, text: str = "TEXT = 'v1'\n") -> str:
    path.write_text(text)
    return str(path)


def test_a_permission_only_fix_is_a_modification(tmp_path):
    path = saved(tmp_path / "greeting.py")
    os.chmod(path, 0)
    before = take([path])
    os.chmod(path, 0o644)  # content, mtime, size and inode unchanged
    after = take([path])
    assert before[path].mode == 0 and after[path].mode == 0o644
    assert before[path].mtime_ns == after[path].mtime_ns
    assert diff(before, after).modified == {path}


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a file away")
def test_an_owner_only_fix_is_a_modification(tmp_path):
    path = saved(tmp_path / "greeting.py")
    before = take([path])
    os.chown(path, 65534, 65534)
    assert diff(before, take([path])).modified == {path}


def test_rewriting_the_same_stat_is_no_change(tmp_path):
    """What a `git checkout` that leaves a file alone does: nothing; and a rename of
    another file in the folder does not touch this one's stat (ctime would move on a
    rename of the file itself, mode does not)."""
    path = saved(tmp_path / "greeting.py")
    other = saved(tmp_path / "other.py")
    before = take([path])
    os.chmod(path, 0o644)  # the mode it already has
    os.rename(other, str(tmp_path / "renamed.py"))
    moved = str(tmp_path / "moved.py")
    os.rename(path, moved)
    os.rename(moved, path)
    assert not diff(before, take([path]))


def test_stat_fields_are_named(tmp_path):
    path = saved(tmp_path / "m.py", "x = 1\n")
    os.chmod(path, 0o640)
    stat = stat_file(path)
    st = os.stat(path)
    assert stat == FileStat(
        mtime_ns=st.st_mtime_ns, size=6, ino=st.st_ino, mode=0o640, uid=st.st_uid, gid=st.st_gid
    )


def test_a_fifo_or_folder_in_a_files_place_is_absent(tmp_path):
    os.mkfifo(tmp_path / "greeting.py")
    (tmp_path / "pkg.py").mkdir()
    assert stat_file(str(tmp_path / "greeting.py")) is None
    assert take([str(tmp_path / "greeting.py"), str(tmp_path / "pkg.py")]) == {}


def test_stats_survive_the_journal(tmp_path):
    """Processes exchange stats as JSON lists; read back they are FileStats again,
    equal to the original and readable by name."""
    path = saved(tmp_path / "greeting.py")
    stat = stat_file(path)
    assert stat is not None
    writer, reader = Journal(str(tmp_path), "g1"), Journal(str(tmp_path), "g1")
    writer.append(Loaded(path, stat))
    writer.append(Baseline({path: stat, str(tmp_path / "gone.py"): None}))
    writer.append(Broken({path: stat}))
    loaded, baseline, broken = reader.read_new()
    assert baseline.stats[str(tmp_path / "gone.py")] is None
    for back in (loaded.stat, baseline.stats[path], broken.stats[path]):
        assert back == stat and back.mode == stat.mode and type(back) is FileStat
    assert json.loads(json.dumps(stat)) == list(stat)


def test_load_time_stats_are_built_like_the_checks(tmp_path):
    """loadstats records what Python loaded with the same builder as stat_file, so
    the baseline of a module equals its stat until it changes."""
    saved(tmp_path / "loaded_module.py", "x = 1\n")
    code = (
        "import os, sys\n"
        "from uwsgi_reload.core import loadstats, snapshot\n"
        "loadstats.install()\n"
        f"sys.path.insert(0, {str(tmp_path)!r})\n"
        "import loaded_module\n"
        "path = os.path.normpath(loaded_module.__file__)\n"
        "recorded = loadstats.recorded()[path]\n"
        "assert type(recorded) is snapshot.FileStat, type(recorded)\n"
        "assert recorded == snapshot.stat_file(path), (recorded, snapshot.stat_file(path))\n"
        "print('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-B", "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip() == "ok", result.stderr
