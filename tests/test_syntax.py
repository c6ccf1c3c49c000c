"""The syntax pre-check (core/syntax.py): what it compiles, what it leaves to the reload,
and that it never blocks on a file that is not a regular file."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from uwsgi_reload.core import syntax
from uwsgi_reload.core.snapshot import Changes, take


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def check_within(seconds: float, paths: list[str], unblock: str) -> syntax.Report:
    """check_files(paths) in a thread; if it has not returned after ``seconds``, open
    ``unblock`` (a FIFO) for writing so that the thread can end, and fail."""
    result: list[syntax.Report] = []
    thread = threading.Thread(target=lambda: result.append(syntax.check_files(paths)))
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        os.close(os.open(unblock, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(5)
        raise AssertionError(f"check_files blocked on {unblock} for more than {seconds}s")
    return result[0]


def test_errors_name_file_and_line(tmp_path):
    good = write(tmp_path / "good.py", "a = 1\n")
    bad = write(tmp_path / "bad.py", "a = 1\ndef f(:\n")
    other = write(tmp_path / "notes.txt", "def f(:\n")
    report = syntax.check_files([good, bad, other, str(tmp_path / "gone.py")])
    assert report.errors == {bad: f"{bad}:2: SyntaxError: invalid syntax"}
    assert report.unchecked == {}


def test_a_fifo_in_a_modules_place_does_not_block(tmp_path):
    fifo = str(tmp_path / "greeting.py")
    os.mkfifo(fifo)
    good = write(tmp_path / "good.py", "a = (\n")  # checked after the FIFO
    link = tmp_path / "linked.py"
    link.symlink_to(fifo)
    started = time.monotonic()
    report = check_within(5, [fifo, str(link), good], unblock=fifo)
    assert time.monotonic() - started < 1
    assert list(report.errors) == [good]  # the FIFO and the link to it are skipped


def test_a_device_or_folder_is_skipped(tmp_path):
    (tmp_path / "pkg.py").mkdir()
    report = syntax.check_files(["/dev/zero.py", str(tmp_path / "pkg.py")])
    assert report == syntax.Report()
    link = tmp_path / "zero.py"
    link.symlink_to("/dev/zero")  # would be read forever
    assert syntax.check_files([str(link)]) == syntax.Report()


def test_unreadable_file_is_left_to_the_reload(tmp_path):
    path = write(tmp_path / "secret.py", "def f(:\n")
    os.chmod(path, 0)
    try:
        if os.geteuid() == 0:  # root reads it anyway: then it is checked
            assert path in syntax.check_files([path]).errors
        else:
            assert syntax.check_files([path]) == syntax.Report()
    finally:
        os.chmod(path, 0o644)


def test_a_file_bigger_than_the_cap_is_not_compiled(tmp_path):
    big = write(tmp_path / "generated.py", "def f(:\n" + "x = 1\n" * 400)  # 2,408 bytes
    report = syntax.check_files([big], max_bytes=2000)
    assert report.errors == {}
    assert report.unchecked == {big: "0.0 MB, more than the 0.0 MB it compiles"}
    assert syntax.check_files([big], max_bytes=3000).errors.keys() == {big}


def test_the_cap_defaults_to_one_megabyte(tmp_path):
    lines = "".join(f"VALUE_{i:07d} = {{'n': {i}, 'name': 'item {i}'}}\n" for i in range(60_000))
    big = write(tmp_path / "generated.py", lines)  # 3 MB: seconds to compile
    started = time.monotonic()
    report = syntax.check_files([big])
    assert time.monotonic() - started < 0.5, "the big file must not be read or compiled"
    assert report.unchecked == {big: "3.0 MB, more than the 1.0 MB it compiles"}


def test_deep_nesting_is_a_compile_error_not_a_crash(tmp_path):
    # RecursionError in the compiler, MemoryError in the parser (its stack limit):
    # an import of either file fails the same way.
    plus = write(tmp_path / "plus.py", "X = " + "+".join(["1"] * 100_000) + "\n")
    minus = write(tmp_path / "minus.py", "X = " + "-" * 100_000 + "1\n")
    for path in (plus, minus):
        try:
            compile(Path(path).read_bytes(), path, "exec")
        except (RecursionError, MemoryError) as error:
            kind = type(error).__name__
        else:
            raise AssertionError(f"{path} compiled: the test needs a file that does not")
        assert syntax.check_files([path]).errors == {
            path: f"{path}:0: {kind}: too deeply nested for Python to compile "
            "(importing it would fail the same way)"
        }


def test_gate_compiles_only_files_that_exist(tmp_path):
    logged: list[str] = []
    gate = syntax.SyntaxGate(logged.append)
    fifo = str(tmp_path / "greeting.py")
    os.mkfifo(fifo)  # in the change, not in the current state (not a regular file)
    current = take([fifo])
    assert current == {}
    assert not gate.holds(Changes(deleted=frozenset({fifo})), current)
    assert logged == []


def test_gate_logs_a_big_file_once_per_change_and_lets_it_through(tmp_path):
    logged: list[str] = []
    gate = syntax.SyntaxGate(logged.append, max_bytes=100)
    big = write(tmp_path / "generated.py", "def f(:\n" + "x = 1\n" * 50)
    assert not gate.holds(Changes(modified=frozenset({big})), take([big]))
    assert logged == [
        f"reloading without the syntax pre-check for {big}: 0.0 MB, more than the 0.0 MB "
        "it compiles"
    ]


def test_gate_holds_a_deeply_nested_file_until_it_changes(tmp_path):
    logged: list[str] = []
    gate = syntax.SyntaxGate(logged.append)
    path = write(tmp_path / "nested.py", "X = " + "+".join(["1"] * 100_000) + "\n")
    change = Changes(modified=frozenset({path}))
    assert gate.holds(change, take([path]))
    assert len(logged) == 1 and logged[0].startswith(
        f"not reloading, this file does not compile: {path}:0: RecursionError: too deeply"
    )
    write(tmp_path / "nested.py", "X = 1\n")
    assert not gate.holds(change, take([path]))
