"""The files one server instance shares between its processes (no server needed)."""

from __future__ import annotations

import os
import subprocess
import sys

from uwsgi_reload.hosts import state


def test_instance_dir_is_per_pid_and_start_time(tmp_path):
    mine = state.instance_dir(os.getpid(), root=str(tmp_path))
    assert os.path.basename(mine).startswith(f"{os.getpid()}-")
    assert mine == state.instance_dir(os.getpid(), root=str(tmp_path))
    assert oct(os.stat(mine).st_mode & 0o777) == "0o700"


def test_folders_of_dead_servers_are_removed_and_live_ones_kept(tmp_path):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        mine = state.instance_dir(os.getpid(), root=str(tmp_path))
        dead = state.instance_dir(gone.pid, root=str(tmp_path))
        other = state.instance_dir(alive.pid, root=str(tmp_path))
        reused = tmp_path / f"{alive.pid}-1"  # same pid, another start time: a reused pid
        reused.mkdir()
        (tmp_path / "not-ours").mkdir()
        (tmp_path / f"{gone.pid}-x" / "journal-1").parent.mkdir()

        removed = state.remove_dead_instances(mine)

        assert sorted(removed) == sorted([os.path.basename(dead), reused.name, f"{gone.pid}-x"])
        assert sorted(os.listdir(tmp_path)) == sorted(
            [os.path.basename(mine), os.path.basename(other), "not-ours"]
        )
    finally:
        alive.kill()
        alive.wait()
