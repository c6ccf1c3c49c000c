"""The pipeline stepped by hand, one tick at a time, as Django's tests step
``BaseReloader.tick()``: no server, no timer, real files in a temporary folder."""

from __future__ import annotations

import os
import time
import types
from pathlib import Path

from uwsgi_reload.core.config import Config
from uwsgi_reload.core.detector import Detector
from uwsgi_reload.core.loopguard import ReloadRecord
from uwsgi_reload.core.pipeline import Pipeline, Verdict, loop_message
from uwsgi_reload.core.syntax import SyntaxGate


def module(path: Path) -> types.ModuleType:
    mod = types.ModuleType(path.stem)
    mod.__file__ = str(path)
    return mod


def save(path: Path, text: str) -> None:
    """Write and move the mtime on, so that two saves in a row always differ."""
    path.write_text(text)
    stamp = time.time_ns() + 1_000_000
    os.utime(path, ns=(stamp, stamp))


class Framework:
    """Applies changes to the files it owns, like Django's template reset."""

    name = "fake"

    def __init__(self, suffix: str) -> None:
        self.suffix = suffix
        self.applied: list[list[str]] = []

    def handle(self, paths: list[str]) -> set[str]:
        self.applied.append(paths)
        return {p for p in paths if p.endswith(self.suffix)}


def pipeline_for(tmp_path: Path, *files: str, history=tuple, **config) -> tuple[Pipeline, list]:
    modules = []
    for name in files:
        path = tmp_path / name
        path.write_text("x = 1\n")
        modules.append(module(path))
    detector = Detector(Config(base_dir=str(tmp_path), delay=0, **config), modules=lambda: modules)
    detector.start()
    logged: list[str] = []
    return Pipeline(detector, SyntaxGate(logged.append), history=history), logged


def test_idle_ticks_decide_nothing(tmp_path):
    pipeline, logged = pipeline_for(tmp_path, "app.py")
    assert [pipeline.tick().verdict for _ in range(3)] == [Verdict.NOTHING] * 3
    assert logged == []


def test_a_save_reloads_and_is_found_again_until_the_host_says_it_reloaded(tmp_path):
    pipeline, _ = pipeline_for(tmp_path, "app.py")
    save(tmp_path / "app.py", "x = 2\n")
    decision = pipeline.tick()
    assert decision.verdict is Verdict.RELOAD
    assert decision.changes.modified == {str(tmp_path / "app.py")}
    assert decision.describe("graceful reload").endswith("app.py -> graceful reload")
    assert pipeline.tick().verdict is Verdict.RELOAD  # not carried out: still pending
    moved = pipeline.reloaded(decision)
    assert set(moved) == {str(tmp_path / "app.py")}
    assert pipeline.tick().verdict is Verdict.NOTHING


def test_a_broken_save_is_held_and_the_fix_reloads(tmp_path):
    pipeline, logged = pipeline_for(tmp_path, "app.py", "other.py")
    save(tmp_path / "app.py", "x = (\n")
    held = pipeline.tick()
    assert held.verdict is Verdict.HELD and held.accepted
    assert "does not compile" in logged[-1] and "app.py:1" in logged[-1]
    assert pipeline.tick().verdict is Verdict.NOTHING  # held, not logged again
    save(tmp_path / "other.py", "y = 2\n")
    assert pipeline.tick().verdict is Verdict.HELD  # another file changes: still waiting
    assert "waiting for a fix of" in logged[-1]
    save(tmp_path / "app.py", "x = 3\n")
    assert pipeline.tick().verdict is Verdict.RELOAD


def test_check_syntax_off_reloads_broken_code(tmp_path):
    pipeline, _ = pipeline_for(tmp_path, "app.py", check_syntax=False)
    save(tmp_path / "app.py", "x = (\n")
    assert pipeline.tick().verdict is Verdict.RELOAD


def test_a_framework_that_applies_every_change_saves_the_reload(tmp_path):
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "page.html").write_text("v1")
    pipeline, _ = pipeline_for(tmp_path, "app.py", include=("templates",))
    framework = Framework(".html")
    pipeline.appliers = [framework]
    pipeline.tick()
    save(tmp_path / "templates" / "page.html", "v2")
    decision = pipeline.tick()
    assert decision.verdict is Verdict.APPLIED and decision.applied_by == ("fake",)
    assert decision.describe("x").endswith("-> applied by fake in every worker, no reload")
    assert pipeline.tick().verdict is Verdict.NOTHING
    # a change it cannot apply in place, with one it can: a reload
    save(tmp_path / "templates" / "page.html", "v3")
    save(tmp_path / "app.py", "x = 4\n")
    assert pipeline.tick().verdict is Verdict.RELOAD


def test_without_appliers_a_framework_file_reloads(tmp_path):
    (tmp_path / "page.html").write_text("v1")
    pipeline, _ = pipeline_for(tmp_path, "app.py", include=("page.html",))
    save(tmp_path / "page.html", "v2")
    assert pipeline.tick().verdict is Verdict.RELOAD


def test_loop_guard_drops_a_file_written_during_each_of_the_last_starts(tmp_path):
    history: list[ReloadRecord] = []
    data = tmp_path / "state.json"
    data.write_text("0")
    pipeline, _ = pipeline_for(tmp_path, "app.py", include=("state.json",), history=lambda: history)
    for _n in range(2):  # two quick reloads already in the history
        history.append(ReloadRecord(time.time(), (str(data),), True))
    pipeline.generation_started_ns = time.time_ns()
    save(data, "1")  # written while this generation started
    pipeline.first_check_ns = time.time_ns() + 10_000_000
    decision = pipeline.tick()
    assert decision.verdict is Verdict.SUPPRESSED
    assert decision.looping == {str(data)}
    assert "state.json was written during each of the last 3 starts" in loop_message(
        decision.looping, 3, "uWSGI is restarted"
    )
    save(data, "2")
    assert pipeline.tick().verdict is Verdict.NOTHING  # no longer tracked
    save(tmp_path / "app.py", "x = 5\n")
    assert pipeline.tick().verdict is Verdict.RELOAD  # other files still reload


def test_a_save_after_the_first_check_is_never_quick(tmp_path):
    history = [ReloadRecord(time.time(), (str(tmp_path / "app.py"),), True)] * 5
    pipeline, _ = pipeline_for(tmp_path, "app.py", history=lambda: history)
    pipeline.generation_started_ns = time.time_ns() - 1_000_000_000
    pipeline.first_check_ns = time.time_ns() - 500_000_000
    save(tmp_path / "app.py", "x = 6\n")
    decision = pipeline.tick()
    assert decision.verdict is Verdict.RELOAD and not decision.quick and not decision.looping
