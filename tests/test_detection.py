"""Pure detection logic without a server: matching, include expansion, snapshots,
diffs, the detector's baselines and the settle loop."""

from __future__ import annotations

import bisect
import functools
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from uwsgi_reload.core import entrypoints, globs, snapshot, sources, syntax
from uwsgi_reload.core.config import Config
from uwsgi_reload.core.detector import MIXED, Detector
from uwsgi_reload.core.settle import BURST_QUIET
from uwsgi_reload.core.settle import settle_changes as settle
from uwsgi_reload.core.snapshot import Changes, FileStat, diff, stat_file, take
from uwsgi_reload.hosts.uwsgi import options


def touch(path: Path, text: str = "x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def written_before_now(path: Path) -> Path:
    """Wait until the file clock has passed ``path``'s stamps: a file written in the
    same tick as a detector's start counts as written after it (a missed save would
    be worse than a reload too many)."""
    st = os.stat(path)
    deadline = time.monotonic() + 5
    while snapshot.file_clock_ns() <= max(st.st_mtime_ns, st.st_ctime_ns):
        assert time.monotonic() < deadline, f"the file clock never passed {path}'s stamps"
        time.sleep(0.001)
    return path


# --- matching ---------------------------------------------------------------


def test_glob_double_star_matches_zero_or_more_folders():
    regex = globs.glob_regex("/p/**/*.html")
    assert regex.fullmatch("/p/a.html")
    assert regex.fullmatch("/p/x/y/a.html")
    assert not regex.fullmatch("/q/a.html")
    assert not regex.fullmatch("/p/a.htm")


def test_glob_star_stays_in_one_segment_and_matches_dotfiles():
    regex = globs.glob_regex("/p/*.py")
    assert regex.fullmatch("/p/a.py") and regex.fullmatch("/p/.hidden.py")
    assert not regex.fullmatch("/p/sub/a.py")


def test_glob_naming_a_folder_matches_below_it():
    assert globs.glob_regex("/p/build").fullmatch("/p/build/x/y.py")


def test_default_rules_exclude_caches_vcs_logs_and_editor_files():
    rules = sources.Rules(base_dir="/p")
    for path in [
        "/p/__pycache__/a.cpython-311.pyc",
        "/p/.git/HEAD",
        "/p/app.log",
        "/p/.app.py.swp",
        "/p/app.py~",
        "/p/.#app.py",
        "/p/db.sqlite3",
        "/p/node_modules/x/index.py",
        "/p/4913",
    ]:
        assert rules.excludes(path), path
    assert not rules.excludes("/p/app.py")
    assert not rules.excludes("/p/.env")  # dotfiles are not excluded by default


def test_rules_only_look_below_the_base_dir():
    assert not sources.Rules(base_dir="/home/me/venv/project").excludes(
        "/home/me/venv/project/app.py"
    )


def test_user_exclude_by_name_and_by_path():
    rules = sources.Rules(["*.gen.py", "build/**", "static/"], base_dir="/p")
    assert rules.excludes("/p/models.gen.py")
    assert rules.excludes("/p/build/x.py")
    assert rules.excludes("/p/static/a.css")
    assert not rules.excludes("/p/src/build.py")


def reference_excludes(patterns: list[str], base_dir: str, path: str) -> bool:
    """Rules.excludes as first written: one regex over every segment below base_dir."""
    names = [globs.segment_regex(p) for p in patterns if "/" not in p]
    paths = [globs.glob_regex(sources.absolute(p, base_dir)).pattern for p in patterns if "/" in p]
    if paths and re.fullmatch("(?:" + "|".join(paths) + ")", path):
        return True
    if not names:
        return False
    if path.startswith(base_dir + "/"):
        path = path[len(base_dir) + 1 :]
    name = re.compile("(?:" + "|".join(names) + ")")
    return any(name.fullmatch(part) for part in path.split("/") if part)


NAMES = ["p", "venv", "node_modules", "a.log", "x.py", "m.pyc", ".#x", "#x#", "f~", "sub"]
PATTERNS = ["*.gen.py", "build/**", "sub", "x*", "[ab].py", "??", "*", "#*#", "f?", "*.p?"]
SEGMENTS = st.sampled_from([*NAMES, "xy", "a.py", "x.pyc", "", "."])
USER_PATTERNS = st.lists(
    st.sampled_from([*PATTERNS, "*[xy]", "x*y", "sub/*.py"]),
    max_size=3,
)


@settings(max_examples=500, deadline=None)
@given(
    patterns=USER_PATTERNS,
    base=st.sampled_from(["/p", "/p/venv", "/", "/p/sub"]),
    start=st.sampled_from(["", "/", "base"]),
    segments=st.lists(SEGMENTS, max_size=4),
)
def test_rules_answer_as_one_regex_per_segment_would(patterns, base, start, segments):
    """The exclusion rules match names without a regex where they can and remember each
    folder's answer (the master asks about every module it loads): the same answers as
    one regex over each segment, for any path, and asked twice."""
    rules = sources.Rules(patterns, base_dir=base)
    path = (base + "/" if start == "base" else start) + "/".join(segments)
    expected = reference_excludes([*sources.DEFAULT_EXCLUDE, *patterns], base, path)
    assert rules.excludes(path) == expected, path
    assert rules.excludes(path) == expected, path  # from the folder cache


def test_in_system_dir_is_the_same_for_files_and_folders_asked_again():
    system = sources.system_dirs()[0]
    parent = system.rpartition("/")[0]
    for path in [
        *(system, system + "/", system + "/x.py", system + "//x.py", system + "/a/b/c.py"),
        *(system + "x/y.py", parent, parent + "/x.py", "/p/x.py", "x.py", "", "/"),
    ]:
        expected = any(path == d or path.startswith(d + "/") for d in sources.system_dirs())
        assert sources.in_system_dir(path) == expected, path
        assert sources.in_system_dir(path) == expected, path  # from the folder cache


# --- sources ----------------------------------------------------------------


def test_module_files_maps_pyc_and_skips_stdlib_and_builtins(tmp_path):
    mine = types.ModuleType("mine")
    mine.__file__ = str(tmp_path / "__pycache__" / "mine.cpython-311.pyc")
    detector = Detector(Config(base_dir=str(tmp_path)), modules=lambda: [mine, os, sys])
    assert detector.tracked() == {str(tmp_path / "mine.py")}


def test_our_own_modules_are_not_the_apps_even_installed_editable():
    detector = Detector(Config(base_dir="/"), modules=lambda: [sources, syntax])
    assert detector.tracked() == set()
    assert sources.in_system_dir(sources.__file__)


def test_expand_includes_file_folder_and_glob(tmp_path):
    touch(tmp_path / "a.txt")
    touch(tmp_path / "t" / "x.html")
    touch(tmp_path / "t" / "__pycache__" / "c.pyc")
    touch(tmp_path / "s" / "deep" / "y.css")
    touch(tmp_path / "s" / "z.js")
    rules = sources.Rules(base_dir=str(tmp_path))
    files = sources.expand_includes(["a.txt", "t", "s/**/*.css"], str(tmp_path), rules)
    assert files == {
        str(tmp_path / "a.txt"),
        str(tmp_path / "t" / "x.html"),
        str(tmp_path / "s" / "deep" / "y.css"),
    }


def test_walk_survives_symlink_loops(tmp_path):
    touch(tmp_path / "d" / "f.txt")
    os.symlink(tmp_path / "d", tmp_path / "d" / "loop")
    files = set(sources.walk_files(str(tmp_path), sources.Rules(base_dir=str(tmp_path))))
    assert str(tmp_path / "d" / "f.txt") in files


# --- snapshots and diffs ----------------------------------------------------


def test_stat_file_treats_folders_and_missing_as_absent(tmp_path):
    assert stat_file(str(tmp_path)) is None
    assert stat_file(str(tmp_path / "nope")) is None
    assert stat_file(str(touch(tmp_path / "f"))) is not None


def test_rename_over_save_is_a_modification_even_with_same_mtime_and_size(tmp_path):
    target = touch(tmp_path / "a.py", "x = 1\n")
    before = take([str(target)])
    replacement = touch(tmp_path / "a.py.tmp", "x = 2\n")
    st = os.stat(target)
    os.utime(replacement, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(replacement, target)
    assert diff(before, take([str(target)])).modified == {str(target)}


stats = st.builds(
    FileStat,
    st.integers(0, 5),
    st.integers(0, 3),
    st.integers(0, 3),
    st.sampled_from([0, 0o644]),
    st.just(0),
    st.just(0),
)
snapshots = st.dictionaries(st.sampled_from("abcdefgh"), stats, max_size=8)


@given(snapshots, snapshots)
def test_diff_partitions_every_path(old, new):
    changes = diff(old, new)
    assert changes.added.isdisjoint(changes.modified | changes.deleted)
    assert changes.modified.isdisjoint(changes.deleted)
    assert changes.added == new.keys() - old.keys()
    assert changes.deleted == old.keys() - new.keys()
    unchanged = (old.keys() & new.keys()) - changes.modified
    assert all(old[p] == new[p] for p in unchanged)
    assert bool(changes) == (old != new)


@given(snapshots)
def test_diff_with_itself_is_empty(snap):
    assert not diff(snap, dict(snap))


def test_changes_describe_limits_names():
    changes = Changes(modified=frozenset(f"f{i}" for i in range(15)), deleted=frozenset({"x"}))
    text = changes.describe(limit=3)
    assert text.startswith("modified f0, f1, f10 (+12 more)")
    assert text.endswith("deleted 1 more")


# --- the detector -------------------------------------------------------------


def detector_for(tmp_path: Path, modules=(), load_stats=None, **config) -> Detector:
    config.setdefault("base_dir", str(tmp_path))
    return Detector(
        Config(**config),
        modules=lambda: list(modules),
        load_stats=load_stats or dict,
    )


def a_stat(mtime_ns: int) -> FileStat:
    return FileStat(mtime_ns, size=1, ino=1, mode=0o644, uid=0, gid=0)


def module(path: Path) -> types.ModuleType:
    mod = types.ModuleType(path.stem)
    mod.__file__ = str(path)
    return mod


def test_load_time_stat_is_the_baseline(tmp_path):
    """A file saved between load and the first check is a change."""
    path = touch(tmp_path / "m.py", "a = 1\n")
    loaded = {str(path): stat_file(str(path))}
    touch(path, "a = 22\n")
    detector = detector_for(tmp_path, [module(path)], lambda: loaded)
    detector.start()
    assert detector.check().modified == {str(path)}


def test_module_seen_later_uses_its_load_stat(tmp_path):
    path = touch(tmp_path / "late.py", "a = 1\n")
    modules: list = []
    loaded: dict = {}
    detector = detector_for(tmp_path, modules, lambda: loaded)
    detector.start()
    loaded[str(path)] = stat_file(str(path))
    modules.append(module(path))
    touch(path, "a = 2222\n")
    assert detector.check().modified == {str(path)}


def test_two_processes_loading_two_versions_is_a_change(tmp_path):
    path = touch(tmp_path / "m.py")
    detector = detector_for(tmp_path)
    detector.start()
    detector.learn_loaded(str(path), a_stat(1))
    detector.learn_loaded(str(path), a_stat(2))
    assert detector.baseline[str(path)] == MIXED
    assert detector.check().modified == {str(path)}


def test_new_and_deleted_files_under_include(tmp_path):
    keep = touch(tmp_path / "t" / "a.html")
    detector = detector_for(tmp_path, include=("t",))
    detector.start()
    assert not detector.check()
    new = touch(tmp_path / "t" / "sub" / "b.html")
    keep.unlink()
    changes = detector.check()
    assert changes.added == {str(new)} and changes.deleted == {str(keep)}


def test_accept_moves_the_baseline(tmp_path):
    path = touch(tmp_path / "t" / "a.html")
    detector = detector_for(tmp_path, include=("t",))
    detector.start()
    touch(path, "changed content")
    assert detector.check()
    detector.accept(detector.current())
    assert not detector.check()


def test_failure_files_written_after_start_count_as_changed(tmp_path):
    old = written_before_now(touch(tmp_path / "old.py"))
    detector = detector_for(tmp_path)
    detector.start()
    fixed = touch(tmp_path / "fixed.py")
    detector.track_failure_files([str(old), str(fixed), str(tmp_path / "appears.py")])
    assert detector.check().modified == {str(fixed)}
    appears = touch(tmp_path / "appears.py")
    assert str(appears) in detector.check().added


def test_failure_file_made_readable_after_start_counts_as_changed(tmp_path):
    """A module the load could not read, fixed with chmod alone between the failed
    load and the first check: its mtime is old, its ctime is not."""
    unreadable = touch(tmp_path / "greeting.py")
    untouched = touch(tmp_path / "other.py")
    os.chmod(unreadable, 0)
    detector = detector_for(tmp_path)
    detector.start()
    detector.started_ns = os.stat(unreadable).st_ctime_ns + 1  # the load failed after
    deadline = time.monotonic() + 5
    while os.stat(unreadable).st_ctime_ns <= detector.started_ns:  # coarse kernel clock
        assert time.monotonic() < deadline, "ctime did not move"
        os.chmod(unreadable, 0o644)
    detector.track_failure_files([str(unreadable), str(untouched)])
    assert detector.check().modified == {str(unreadable)}


def test_failure_files_include_the_file_an_import_could_not_read(tmp_path):
    fake_sys = types.SimpleNamespace(path=[str(tmp_path)])
    try:  # what importlib's get_data raises for a module it may not read
        raise PermissionError(13, "Permission denied", str(tmp_path / "greeting.py"))
    except PermissionError as error:
        fake_sys.last_value = error
    assert str(tmp_path / "greeting.py") in entrypoints.failure_files(fake_sys)


def test_provider_files_are_baselined_when_added(tmp_path):
    template = written_before_now(touch(tmp_path / "tpl" / "x.html"))
    detector = detector_for(tmp_path)
    detector.start()
    detector.add_provider(lambda: [str(template)])
    assert not detector.check()
    touch(template, "new template content")
    assert detector.check().modified == {str(template)}


operations = st.lists(
    st.tuples(
        st.sampled_from(
            ["write", "delete", "folder", "import", "learn", "failure", "accept", "check"]
        ),
        st.integers(0, 4),
    ),
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(operations)
def test_idle_checks_find_what_full_checks_find(ops):
    """The shortcut of idle checks (stat the last check's files again) against a
    detector that always rebuilds the tracked set, through any mix of saves, deletions,
    folders in place of files, imports, learned stats, failure files and accepts."""
    with tempfile.TemporaryDirectory() as folder:
        files = [Path(folder) / f"m{i}.py" for i in range(5)]
        for path in files[:3]:
            touch(path)
        modules = [module(files[0])]
        fast, full = (detector_for(Path(folder), modules) for _ in range(2))
        fast.rebuild_every = 1_000_000
        full.rebuild_every = 1
        # One start for both: a clock tick between their constructions would make a
        # file written just before count as written after one start and not the other.
        full.started_ns = fast.started_ns
        for detector in (fast, full):
            detector.start()
        for step, (op, i) in enumerate(ops):
            path = files[i]
            if op == "write":
                if path.is_dir():
                    path.rmdir()
                touch(path, "x" * step)
            elif op == "delete" and path.is_file():
                path.unlink()
            elif op == "folder" and not path.is_dir():
                path.unlink(missing_ok=True)
                path.mkdir()
            elif op == "import" and all(m.__file__ != str(path) for m in modules):
                modules.append(module(path))
            for detector in (fast, full):
                if op == "learn":
                    detector.learn(str(path), stat_file(str(path)))
                elif op == "failure":
                    detector.track_failure_files([str(path)])
                elif op == "accept":
                    detector.accept(detector.current())
            if op == "check" or step == len(ops) - 1:
                assert fast.check() == full.check(), (step, op, i)


# --- settle -----------------------------------------------------------------


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 0.001)


@given(
    writes=st.lists(st.floats(0.0, 3.0), max_size=20),
    delay=st.floats(0.05, 1.0),
    max_delay=st.floats(1.0, 5.0),
)
def test_settle_ends_quiet_or_at_max_delay_and_sees_the_final_state(writes, delay, max_delay):
    """Writes happen at the given times; settle returns once `delay` passed without a
    write (then the state is the final one of those writes) or after `max_delay`."""
    time_ = FakeTime()
    write_times = sorted(writes)

    def scan() -> dict:
        done = sum(1 for t in write_times if t <= time_.now)
        return {"f": a_stat(done)}

    changes, state = settle(scan, {"f": a_stat(-1)}, delay, max_delay, time_.clock, time_.sleep)
    elapsed = time_.now
    assert elapsed <= max_delay + 0.06
    assert changes.modified == {"f"}
    pending = [t for t in write_times if t > elapsed]
    if elapsed < max_delay:
        # it stopped because it was quiet: no write in the last `delay` seconds
        assert not [t for t in write_times if elapsed - delay + 1e-9 < t <= elapsed]
    if not pending:
        assert state == {"f": a_stat(len(write_times))}


def test_settle_without_delay_scans_once():
    calls = []

    def scan() -> dict:
        calls.append(1)
        return {"a": (1, 1, 1)}

    changes, _ = settle(scan, {}, 0, 5)
    assert calls == [1] and changes.added == {"a"}


# --- failure files and syntax -------------------------------------------------


def test_failure_files_from_traceback_syntax_error_and_missing_module(tmp_path):
    broken = touch(tmp_path / "broken.py", "def f(:\n")
    fake_sys = types.SimpleNamespace(path=[str(tmp_path)])
    try:
        compile(broken.read_text(), str(broken), "exec")
    except SyntaxError as error:
        fake_sys.last_value = error
    assert str(broken) in entrypoints.failure_files(fake_sys)

    try:
        __import__("surely_missing_module_xyz")
    except ModuleNotFoundError as error:
        fake_sys.last_value = error
    files = entrypoints.failure_files(fake_sys)
    assert str(tmp_path / "surely_missing_module_xyz.py") in files
    assert __file__ in files  # the frame that raised


def test_entry_files_from_options(tmp_path):
    touch(tmp_path / "pkg" / "__init__.py")
    touch(tmp_path / "pkg" / "wsgi.py")
    files = options.entry_files(
        {"wsgi-file": b"app.py", "module": b"pkg.wsgi:application"}, str(tmp_path)
    )
    assert files == {str(tmp_path / "app.py"), str(tmp_path / "pkg" / "wsgi.py")}


def test_import_outside_uwsgi_starts_nothing():
    code = (
        "import threading, uwsgi_reload\n"
        "assert threading.active_count() == 1\n"
        "assert callable(uwsgi_reload.Detector)\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "ok", result.stderr


def test_settle_counts_quiet_time_from_the_newest_mtime():
    time_ = FakeTime()
    saved_at = 100.0  # wall clock: saved 0.5 s before the check
    state = {"f": a_stat(int(saved_at * 1e9))}
    changes, _ = settle(
        lambda: state, {}, 0.3, 5, time_.clock, time_.sleep, wall=lambda: saved_at + 0.5
    )
    assert changes.added == {"f"} and time_.now == 0  # no wait: quiet for 0.5 s already


def test_settle_ignores_mtimes_from_the_future():
    time_ = FakeTime()
    state = {"f": a_stat(int(200 * 1e9))}
    settle(lambda: state, {}, 0.3, 5, time_.clock, time_.sleep, wall=lambda: 100.0)
    assert 0.3 <= time_.now < 0.4


def test_one_file_saved_settles_after_the_default_delay():
    """A save of one file (the edit-reload loop) waits for `delay` only: 0.05 s by
    default (it was 0.3 s: most of what a save cost before the reload began)."""
    time_ = FakeTime()
    state = {"f": a_stat(int(100 * 1e9))}
    changes, _ = settle(
        lambda: state, {}, Config().delay, 5, time_.clock, time_.sleep, wall=lambda: 100.0
    )
    assert changes.added == {"f"} and Config().delay <= time_.now < 0.1


def test_settle_starts_from_the_scan_of_the_check_that_found_the_change(tmp_path):
    app = touch(tmp_path / "app.py", "A = 1\n")
    detector = detector_for(tmp_path, include=("app.py",), delay=0.05)
    detector.start()
    scans = []
    real_current = detector.current
    detector.current = lambda: scans.append(1) or real_current()
    touch(app, "A = 2\n")
    old = time.time() - 1  # saved a second ago: quiet already
    os.utime(app, (old, old))
    assert detector.check().modified == {str(app)} and len(scans) == 1
    changes, _ = detector.settle()
    assert changes.modified == {str(app)} and len(scans) == 1  # no second scan
    # without a check that found the change just before, the settle scans
    changes, _ = detector.settle()
    assert changes.modified == {str(app)} and len(scans) == 2
    assert detector.check() and len(scans) == 3


def test_settle_rescans_only_when_an_event_backend_saw_something():
    time_ = FakeTime()
    writes = [(0.0, 1), (0.03, 2)]  # a second write during the settle
    scans = []

    def scan() -> dict:
        scans.append(time_.now)
        size = max(s for t, s in writes if t <= time_.now)
        return {"f": FileStat(int(size), size, 1, 0o644, 0, 0)}

    def events() -> bool:
        return any(0 < t <= time_.now for t, _ in writes)

    first = scan()
    _, state = settle(
        scan, {"f": a_stat(0)}, 0.05, 5, time_.clock, time_.sleep, first_scan=first, events=events
    )
    assert state["f"].size == 2 and len(scans) > 1  # the event made it look again
    # no event: no rescan, the state of the check stands once it has been quiet
    time_.now, scans[:] = 0.0, []
    _, state = settle(
        scan,
        {"f": a_stat(0)},
        0.05,
        5,
        time_.clock,
        time_.sleep,
        first_scan=first,
        events=lambda: False,
    )
    assert state == first and scans == [] and time_.now >= 0.05


def test_one_file_written_in_several_writes_is_one_save():
    """Truncated at the first look, written at the next: still a save of one file."""
    time_ = FakeTime()
    writes = [(0.0, 1), (0.01, 2)]  # (time, size)

    def scan() -> dict:
        size = max(s for t, s in writes if t <= time_.now)
        return {"f": FileStat(int(size), size, 1, 0o644, 0, 0)}

    settle(scan, {"f": a_stat(0)}, 0.05, 5, time_.clock, time_.sleep)
    assert 0.05 <= time_.now < 0.12


@pytest.mark.parametrize(
    ("baseline", "state"),
    [({}, {"a": a_stat(1), "b": a_stat(1)}), ({"a": a_stat(0)}, {})],
    ids=["several-files", "a-file-missing"],
)
def test_a_visible_burst_waits_for_the_burst_quiet(baseline, state):
    time_ = FakeTime()
    settle(lambda: state, baseline, 0.05, 5, time_.clock, time_.sleep)
    assert BURST_QUIET <= time_.now < BURST_QUIET + 0.06


def test_a_burst_with_old_mtimes_still_waits_for_most_of_the_burst_quiet():
    """rsync -t or tar keep the files' old mtimes: they count for `delay` at most."""
    time_ = FakeTime()
    state = {"a": a_stat(int(100 * 1e9)), "b": a_stat(int(100 * 1e9))}
    settle(lambda: state, {}, 0.05, 5, time_.clock, time_.sleep, wall=lambda: 200.0)
    assert BURST_QUIET - 0.05 - 1e-9 <= time_.now < BURST_QUIET


# --- settle: replays of measured saves ----------------------------------------
# tests/data/save_patterns.json: per pattern, the recorded run with the largest gap
# between two events (`bench/save_patterns.py --test-data`): vim, VS Code and JetBrains
# saves, a git checkout of 200 files, a ruff format of 200 files. Each event is a change
# a stat can see; a delete or a rename away leaves the file missing until it comes back.

SAVE_PATTERNS = json.loads((Path(__file__).parent / "data" / "save_patterns.json").read_text())
GONE = 0x40 | 0x200  # IN_MOVED_FROM | IN_DELETE
WALL0 = 1000.0  # wall clock at simulated monotonic 0: mtimes are wall times


@functools.cache
def measured_states(pattern: str) -> tuple[dict, list[float], list[dict]]:
    """The baseline, and the time of each event with what a scan sees after it."""
    run = SAVE_PATTERNS[pattern]
    files = run["files"]
    current = {path: FileStat(0, 0, 1, 0o644, 0, 0) for path in files}
    baseline = dict(current)
    times, states = [], []
    for n, (ms, index, mask) in enumerate(run["events"]):
        path, t = files[index], ms / 1000
        if mask & GONE:
            current.pop(path, None)
        else:
            current[path] = FileStat(int((WALL0 + t) * 1e9), n + 1, 1, 0o644, 0, 0)
        times.append(t)
        states.append(dict(current))
    return baseline, times, states


def settled_results(pattern: str, start: float, delay: float, burst_quiet: float) -> list[dict]:
    """The host on a simulated clock: a check begins at `start`, settles, and every
    change after that begins another check (what the inotify wake-up does). Returns
    the state each check settled on: one per reload."""
    baseline, times, states = measured_states(pattern)
    time_ = FakeTime()
    time_.now = start

    def scan() -> dict:
        seen = bisect.bisect_right(times, time_.now)
        return states[seen - 1] if seen else baseline

    results: list[dict] = []
    while True:
        _, state = settle(
            scan,
            results[-1] if results else baseline,
            delay,
            5,
            time_.clock,
            time_.sleep,
            wall=lambda: WALL0 + time_.now,
            burst_quiet=burst_quiet,
        )
        results.append(state)
        later = bisect.bisect_right(times, time_.now)
        if later == len(times):
            return results
        time_.now = times[later] + 1e-4


def starts(pattern: str) -> list[float]:
    """Just after each moment events were read (events read at once share a time)."""
    return sorted({t + 1e-4 for t in measured_states(pattern)[1]})


@pytest.mark.parametrize("pattern", sorted(SAVE_PATTERNS))
def test_measured_save_gives_one_settled_result_with_the_final_content(pattern):
    """Whichever event the first check follows, the default rule settles once, on the
    final content of every file."""
    final = measured_states(pattern)[2][-1]
    for start in starts(pattern):
        results = settled_results(pattern, start, Config().delay, BURST_QUIET)
        assert len(results) == 1 and results[0] == final, (
            f"{pattern}: a check starting {start * 1000:.2f} ms into the burst settled "
            f"{len(results)} times"
        )


def test_the_replay_catches_a_rule_that_waits_too_little():
    """The measured git checkout has pauses: a rule that waits 5 ms and never longer
    for a burst reloads more than once, so the replays above can fail."""
    pattern = "git checkout"
    assert any(len(settled_results(pattern, t, 0.005, 0.0)) > 1 for t in starts(pattern))


def test_provider_file_written_after_start_is_a_change(tmp_path):
    """The kernel stamps a write with its clock's last tick, up to a few ms before
    time.time_ns(): a template saved just after the start must still count. The
    pauses put the start at different points of a tick (one in 80 missed before)."""
    missed = []
    for attempt in range(150):
        detector = detector_for(tmp_path / str(attempt))
        detector.start()
        template = touch(tmp_path / str(attempt) / "tpl" / "saved-early.html")
        detector.add_provider(lambda template=template: [str(template)])
        if detector.check().modified != {str(template)}:
            missed.append(os.stat(template).st_mtime_ns - detector.started_ns)
        time.sleep(0.0017)
    assert not missed, f"saves missed, written this many ns before the start: {missed}"


def test_framework_globs_in_installed_packages_are_not_walked(tmp_path):
    """Django apps register template and locale trees of installed packages too
    (Wagtail's took 150 ms per walk); their files are never tracked, so the walk is
    skipped, and so is a watch on them."""
    import sysconfig

    from uwsgi_reload import frameworks

    stdlib = sysconfig.get_paths()["stdlib"]
    page = tmp_path / "templates" / "page.html"
    page.parent.mkdir()
    page.write_text("x")
    globs = [(stdlib, "**/*"), (str(page.parent), "**/*")]
    assert frameworks.files_matching([], globs) == [str(page)]
    assert frameworks.project_folders([stdlib, str(page.parent)]) == [str(page.parent)]
