"""The benchmark's per-reload breakdown (bench/breakdown.py), read from uWSGI log lines
stamped by ``log-encoder = format ${micros} ${msgnl}``. Pure parsing: no server (the
benchmark itself is run by hand, never here)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parent.parent / "bench" / "breakdown.py"
_SPEC = importlib.util.spec_from_file_location("bench_breakdown", _PATH)
assert _SPEC and _SPEC.loader
breakdown = importlib.util.module_from_spec(_SPEC)
sys.modules[_SPEC.name] = breakdown  # dataclasses look their module up there
_SPEC.loader.exec_module(breakdown)

# One graceful reload as uWSGI 2.0.31 logged it in a bench run (times shortened to the
# seconds after T = 1795698590; the new master's startup lines are all stamped when its
# loop starts, which is why they share one stamp).
T = 1795698590
GRACEFUL = f"""\
[uWSGI] getting INI configuration from /tmp/x.ini
[log-encoder] registered format ${{micros}} ${{msgnl}}
{T + 0}491678 WSGI app 0 (mountpoint='') ready in 0 seconds on interpreter 0x1 pid: 15174
{T + 0}600000 [pid: 15190|app: 0|req: 1/1] 127.0.0.1 () GET / => generated 20 bytes
{T + 3}422382 uwsgi_reload: modified /tmp/p/version.py -> graceful reload
{T + 3}422641 ...gracefully killing workers...
{T + 3}422700 Gracefully killing worker 2 (pid: 15191)...
{T + 3}602785 worker 1 buried after 0 seconds
{T + 3}680036 worker 2 buried after 0 seconds
{T + 3}680060 binary reloading uWSGI...
{T + 3}680070 running /venv/bin/uwsgi
[uWSGI] getting INI configuration from /tmp/x.ini
[log-encoder] registered format ${{micros}} ${{msgnl}}
{T + 4}063600 *** Starting uWSGI 2.0.31 (64bit) on [Thu Nov 26 13:09:54 2026] ***
{T + 4}063800 WSGI app 0 (mountpoint='') ready in 0 seconds on interpreter 0x2 pid: 15174
{T + 4}063828 gracefully (RE)spawned uWSGI master process (pid: 15174)
{T + 4}071410 uwsgi_reload: new code serving, 0.98 s after the save
"""


def test_stamped_lines_skip_the_lines_without_a_stamp() -> None:
    lines = breakdown.stamped_lines(GRACEFUL)
    assert len(lines) == 13  # 17 lines, 4 of them written before the encoder was set up
    assert lines[0].at == pytest.approx(T + 0.491678)
    assert lines[0].text.startswith("WSGI app 0")


def test_a_graceful_reload_splits_into_its_steps() -> None:
    lines = breakdown.stamped_lines(GRACEFUL)
    saved = T + 3.1
    seen = T + 4.08
    steps = breakdown.reload_steps(lines, saved, seen, until=float("inf"))
    assert list(steps) == list(breakdown.STEPS)
    expected = {
        "detected": 3.422382 - 3.1,
        "reload begins": 3.422641 - 3.422382,
        "old gone": 3.680036 - 3.422641,  # the last worker buried, not the first
        "exec": 3.680060 - 3.680036,
        "app loaded": 4.063800 - 3.680060,
        "first response": 4.08 - 4.063800,
    }
    for step, value in expected.items():
        assert steps[step] == pytest.approx(value, abs=1e-6), step
    assert sum(steps.values()) == pytest.approx(seen - saved, abs=1e-6)


def test_lines_of_the_next_save_are_not_counted() -> None:
    lines = breakdown.stamped_lines(GRACEFUL)
    steps = breakdown.reload_steps(lines, T + 3.1, None, until=T + 3.5)
    assert steps["detected"] == pytest.approx(3.422382 - 3.1, abs=1e-6)
    assert steps["old gone"] is None  # "buried" lines after `until` belong to the next save
    assert steps["exec"] is None
    assert steps["first response"] is None


def test_py_autoreload_and_touch_reload_lines_count_as_detected() -> None:
    for line in (
        "[uwsgi-python-reloader] module/file /tmp/p/version.py has been modified",
        "*** /tmp/trigger has been touched... grace them all !!!",
    ):
        log = f"{T}100000 {line}\n{T}200000 ...gracefully killing workers...\n"
        steps = breakdown.reload_steps(breakdown.stamped_lines(log), T, None, float("inf"))
        assert steps["detected"] == pytest.approx(0.1, abs=1e-6), line
        assert steps["reload begins"] == pytest.approx(0.1, abs=1e-6), line


def test_a_chain_reload_has_no_all_workers_gone_nor_exec() -> None:
    log = (
        f"{T}100000 uwsgi_reload: modified /tmp/p/app.py -> chain reload\n"
        f"{T}110000 chain reload starting\n"
        f"{T}300000 worker 1 buried after 0 seconds\n"
        f"{T}500000 WSGI app 0 (mountpoint='') ready in 0 seconds on interpreter 0x3\n"
        f"{T}510000 Respawned uWSGI worker 1 (new pid: 99)\n"
    )
    steps = breakdown.reload_steps(breakdown.stamped_lines(log), T, T + 0.6, float("inf"))
    assert steps["old gone"] is None
    assert steps["exec"] is None
    assert steps["app loaded"] == pytest.approx(0.39, abs=1e-6)
    assert steps["first response"] == pytest.approx(0.1, abs=1e-6)


def test_a_workers_only_reload_ends_old_gone_at_the_first_worker_killed() -> None:
    # warm mode, as uWSGI 2.0.31 logged it (FIFO w): each worker is respawned on its own
    log = (
        f"{T}100000 uwsgi_reload: modified /tmp/p/models.py -> warm reload\n"
        f"{T}110000 Gracefully killing worker 1 (pid: 32256)...\n"
        f"{T}110020 Gracefully killing worker 2 (pid: 32252)...\n"
        f"{T}150000 worker 2 killed successfully (pid: 32252)\n"
        f"{T}150020 Respawned uWSGI worker 2 (new pid: 32271)\n"
        f"{T}240000 worker 1 killed successfully (pid: 32256)\n"
        f"{T}600000 WSGI app 0 (mountpoint='') ready in 0 seconds on interpreter 0x3\n"
    )
    steps = breakdown.reload_steps(breakdown.stamped_lines(log), T, T + 0.7, float("inf"))
    assert steps["reload begins"] == pytest.approx(0.01, abs=1e-6)
    assert steps["old gone"] == pytest.approx(0.04, abs=1e-6)
    assert steps["exec"] is None
    assert steps["app loaded"] == pytest.approx(0.45, abs=1e-6)
    assert steps["first response"] == pytest.approx(0.1, abs=1e-6)


def test_median_steps_skip_the_saves_where_a_step_is_missing() -> None:
    rows = [
        dict.fromkeys(breakdown.STEPS, 1.0),
        {**dict.fromkeys(breakdown.STEPS, 3.0), "exec": None},
        {**dict.fromkeys(breakdown.STEPS, 2.0), "exec": None},
    ]
    medians = breakdown.median_steps(rows)
    assert medians["detected"] == 2.0
    assert medians["exec"] == 1.0
    assert breakdown.median_steps([{**dict.fromkeys(breakdown.STEPS)}])["exec"] is None
