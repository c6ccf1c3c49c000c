"""Issue 11 on real uWSGI: the state folder under attack by another local user, cleanup
that must not touch what is not ours, and state that stays bounded over many reloads.

The server runs as one user and the attacker as another (both created here; the tests
run as root and drop privileges with setpriv/runuser)."""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from servers import READY, UWSGI, Server, free_port, make_app, uwsgi_ini, write

from uwsgi_reload.hosts import state as state_module

pytestmark = pytest.mark.integration

DEV = "uwsgi-reload-dev"
ATTACKER = "uwsgi-reload-att"


def ensure_user(name: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
            check=False,  # a parallel test may create it at the same moment
            capture_output=True,
        )
        return pwd.getpwnam(name)


@pytest.fixture(scope="module")
def users() -> tuple[pwd.struct_passwd, pwd.struct_passwd]:
    if os.geteuid() != 0:
        pytest.skip("needs root to create the users and drop privileges")
    dev, attacker = ensure_user(DEV), ensure_user(ATTACKER)
    probe = subprocess.run(
        [*as_user(dev), sys.executable, "-c", "import uwsgi_reload"],
        capture_output=True,
        text=True,
        cwd="/",
    )
    assert probe.returncode == 0, (
        f"user {DEV} cannot import uwsgi_reload from {sys.executable}: the virtualenv and "
        f"the checkout must be readable by other users\n{probe.stderr}"
    )
    return dev, attacker


def as_user(user: pwd.struct_passwd) -> list[str]:
    return ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups", "--"]


def run_as(user: pwd.struct_passwd, script: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["runuser", "-u", user.pw_name, "--", "sh", "-c", script],
        capture_output=True,
        text=True,
        cwd="/",
    )


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A stand-in for /tmp (root's, mode 1777), private to this test: the suite runs
    in parallel and the users' real /tmp folders must not be shared between tests."""
    folder = Path(tempfile.mkdtemp(prefix="uwsgi-reload-sec-"))
    folder.chmod(0o1777)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def dev_server(users, shared_tmp) -> Iterator:
    """Start uWSGI as the developer in a folder of theirs; stopped at teardown."""
    dev = users[0]
    app = shared_tmp / "app"
    app.mkdir()
    started: list[Server] = []

    def start(body: str = "", env: dict | None = None, umask: int = 0o022) -> Server:
        make_app(app)
        port = free_port()
        ini = app / f"uwsgi-{port}.ini"
        ini.write_text(uwsgi_ini(port, "wsgi-file = app.py\ndisable-logging = true\n" + body))
        for path in app.iterdir():
            os.chown(path, dev.pw_uid, dev.pw_gid)
        os.chown(app, dev.pw_uid, dev.pw_gid)
        environ = {"TMPDIR": str(shared_tmp), "HOME": str(app), **(env or {})}
        command = f"umask {umask:03o}; exec {UWSGI} --ini {ini}"
        server = Server([*as_user(dev), "sh", "-c", command], app, port, environ)
        started.append(server)
        return server

    old_xdg = os.environ.pop("XDG_RUNTIME_DIR", None)  # root's: never the developer's
    try:
        yield start
    finally:
        for server in started:
            server.stop()
        if old_xdg is not None:
            os.environ["XDG_RUNTIME_DIR"] = old_xdg


def save_and_serve(server: Server, version: str) -> None:
    write(server.cwd / "greeting.py", f"TEXT = {version!r}\n")
    server.wait_for_body(version, timeout=20)


def tree(folder: Path) -> dict[str, tuple[int, int, int]]:
    """{relative path: (mode, uid, size)} of everything under ``folder``."""
    found = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = Path(root, name)
            info = path.lstat()
            found[str(path.relative_to(folder))] = (info.st_mode, info.st_uid, info.st_size)
    return found


def test_fresh_state_folder_is_private_even_under_umask_0(dev_server, users, shared_tmp):
    dev = users[0]
    server = dev_server(umask=0)
    server.wait_for_log(READY)
    save_and_serve(server, "v2")
    root = shared_tmp / f"uwsgi-reload-{dev.pw_uid}"
    assert stat.S_IMODE(root.lstat().st_mode) == 0o700 and root.lstat().st_uid == dev.pw_uid
    entries = tree(root)
    assert any(name.endswith("owner.json") for name in entries), entries
    open_to_others = {n: oct(m) for n, (m, _, _) in entries.items() if m & 0o077}
    assert open_to_others == {}, open_to_others
    assert {uid for _, uid, _ in entries.values()} == {dev.pw_uid}


@pytest.mark.parametrize("planted", ["open-folder", "symlink"])
def test_a_state_folder_planted_by_another_user_is_never_used(
    dev_server, users, shared_tmp, planted
):
    dev, attacker = users
    usual = shared_tmp / f"uwsgi-reload-{dev.pw_uid}"
    victim = shared_tmp / "app" / "victim.txt"  # a file of the developer's
    if planted == "open-folder":
        # before the developer's first start: mode 0777, full of symlinks to their files
        # and a journal that says a reload is running (saves would be ignored)
        script = (
            f"mkdir -m 777 {usual} && cd {usual} && "
            + " && ".join(
                f"ln -s {victim} {name}"
                for name in ("history.json", "reloads.json", "lock", "notices.json.lock")
            )
            + " && printf '%s\\n' '{\"reloading\":[\"x\"]}' > journal-planted"
        )
    else:
        script = f"ln -s {shared_tmp / 'app'} {usual}"
    done = run_as(attacker, script)
    assert done.returncode == 0, done.stderr
    before = tree(usual) if planted == "open-folder" else {}
    victim.write_text("precious")
    os.chown(victim, dev.pw_uid, dev.pw_gid)
    server = dev_server()
    server.wait_for_log(READY)
    for version in ("v2", "v3"):
        save_and_serve(server, version)
    refused = "is a symlink" if planted == "symlink" else "belongs to uid"
    server.wait_for_log(
        rf"uwsgi_reload: state folder {shared_tmp}/uwsgi-reload-{dev.pw_uid}\.1: refused "
        rf"{usual} {refused}"
    )
    assert server.count(r"state folder .*: refused") == 1, server.explain("logged once")
    assert victim.read_text() == "precious"
    if planted == "open-folder":
        assert tree(usual) == before, "the developer's server wrote into the attacker's folder"
    else:
        assert sorted(p.name for p in (shared_tmp / "app").iterdir() if p.is_dir()) == []
    fallback = shared_tmp / f"uwsgi-reload-{dev.pw_uid}.1"
    assert stat.S_IMODE(fallback.lstat().st_mode) == 0o700
    assert fallback.lstat().st_uid == dev.pw_uid
    # and the attacker can neither read nor write the developer's state
    peek = run_as(attacker, f"ls {fallback} || touch {fallback}/journal-x")
    assert peek.returncode != 0 and "Permission denied" in peek.stderr


def test_state_dir_variable_keeps_our_state_in_a_folder_of_our_own(dev_server, users, shared_tmp):
    dev = users[0]
    shared = shared_tmp / "shared-state"
    shared.mkdir()
    os.chown(shared, dev.pw_uid, dev.pw_gid)
    kept = ["2024-01-photos", "1-notes", "12345-67890"]
    for name in kept:
        (shared / name).mkdir()
        (shared / name / "data.txt").write_text("keep me")
        os.chown(shared / name, dev.pw_uid, dev.pw_gid)
    server = dev_server(env={"UWSGI_RELOAD_STATE_DIR": str(shared)})
    server.wait_for_log(READY)
    for version in ("v2", "v3", "v4"):
        save_and_serve(server, version)
    ours = f"uwsgi-reload-{dev.pw_uid}"
    assert sorted(os.listdir(shared)) == sorted([*kept, ours])
    for name in kept:
        assert (shared / name / "data.txt").read_text() == "keep me"
    assert stat.S_IMODE((shared / ours).lstat().st_mode) == 0o700


def state_entries(state: Path) -> tuple[int, int, int]:
    """(journals, entries, bytes) under the state folder: journals are counted by
    generation (a journal and its files, such as its ``.reloading`` mark, are one)."""
    files = [Path(r, n) for r, _, names in os.walk(state) for n in names]
    journals = {f.name.split(".", 1)[0] for f in files if f.name.startswith("journal-")}
    entries = sum(len(d) + len(n) for _, d, n in os.walk(state))
    return len(journals), entries, sum(_size(f) for f in files)


def _size(path: Path) -> int:
    """0 for a file gone meanwhile (a temp file of a JSON write being replaced)."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


@pytest.mark.parametrize(
    "mode",
    [
        "uwsgi-reload-mode = chain\nlazy-apps = true\nmaster-fifo = master.fifo\n",
        "uwsgi-reload-mode = graceful\n",
    ],
    ids=["lazy-chain", "graceful"],
)
def test_state_stays_bounded_over_many_reloads(tmp_path, uwsgi_server, mode):
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    (state / "2024-01-photos").mkdir()
    (state / "1-notes").mkdir()
    # a server that died long ago, with the folder it left
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    root = state_module.state_root({"UWSGI_RELOAD_STATE_DIR": str(state)})[0]
    dead = state_module.instance_dir(gone.pid, root=root)
    make_app(tmp_path)
    # saves come right after each start here, which the loop guard is for (issue 10)
    server = uwsgi_server(
        "wsgi-file = app.py\ndisable-logging = true\nuwsgi-reload-loop-guard = 0\n" + mode,
        env={"UWSGI_RELOAD_STATE_DIR": str(state)},
    )
    server.wait_for_log(READY)
    server.wait_for_body("v1")
    sizes = []
    for n in range(2, 14):
        write(tmp_path / "greeting.py", f"TEXT = 'v{n}'\n")
        server.wait_until(
            lambda n=n: {server.get()[1].split()[0] for _ in range(4)} == {f"v{n}"},
            20,
            f"v{n} everywhere",
        )
        # The generation's first check in a new worker cleans up after the last one. In
        # a chain reload the first check may come from an old worker: the next one does.
        server.wait_until(lambda: state_entries(state)[0] <= 2, 5, f"cleanup after v{n}")
        sizes.append(state_entries(state))
    journals, entries, size = sizes[-1]
    assert journals <= 2, server.explain(f"{journals} journals after 12 reloads: {sizes}")
    assert entries <= sizes[2][1] + 2, server.explain(f"entries grow: {sizes}")
    assert size < 64_000, sizes
    assert not os.path.exists(dead), "the folder of the dead server is still there"
    assert (state / "2024-01-photos").is_dir() and (state / "1-notes").is_dir()
