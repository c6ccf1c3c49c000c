"""How real tools save: the inotify events in a folder while vim, `git checkout`, `ruff
format` (and emulated VS Code and JetBrains saves) write, with monotonic timestamps.
Run by hand, never by CI; the numbers chose the settle rule (see bench/README.md).

    .venv/bin/python bench/save_patterns.py [--runs 5] [--patterns vim,git-checkout,...]
        [--json FILE]

Per pattern it prints: the events in the folder (our default exclusions left out, as
the reloader leaves them out), the events on tracked `.py` files, the burst (first to
last event on a tracked file), the largest gap between two consecutive events of the
burst (tracked files; and any file, as an include folder would see them), and whether
some moment of the burst leaves a tracked `.py` file missing (between a delete or a
rename away and its return) or half-written (from a truncation or first write to the
closing of the file), with the longest such moment. Then it replays every recorded
run against the settle rule (`uwsgi_reload.core.settle.settle_changes`, on a simulated
clock, the check starting right after any one of the burst's events) for several
delays, and prints the smallest delay that gave one reload with the final content for
every run.

Needs: vim (`apt-get install vim`; Debian's, started with `-u DEFAULTS`: the settings of
a user without a vimrc, `backupcopy=auto`, `writebackup` on), git, and ruff (the dev
venv's, or `--ruff PATH`). VS Code and JetBrains cannot run here: their documented save
sequences are emulated with the same system calls in the same order, and the output
says so.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from uwsgi_reload.backends import inotify_kernel as ik
from uwsgi_reload.core.config import Config
from uwsgi_reload.core.settle import BURST_QUIET, settle_changes
from uwsgi_reload.core.snapshot import FileStat
from uwsgi_reload.core.sources import Rules

MARKER = "zz-bench-marker.tmp"  # an excluded name (*.tmp): fences a recording
FILES = 200  # modules of the package for git checkout and ruff format


@dataclass
class Event:
    t: float  # time.monotonic() when the event was read
    path: str
    mask: int


class Recorder(ik.Inotify):
    """An inotify instance (our own, IN_MODIFY added: every write() a stat can see)
    that keeps each raw event with the time it was read, in a thread of its own."""

    def __init__(self, root: Path) -> None:
        super().__init__(excludes=lambda path: os.path.basename(path) == ".git")
        self.mask = ik.MASK | 0x00000002  # IN_MODIFY
        self.events: list[Event] = []
        self.watch_dirs([str(root)], recursive=True)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            readable, _, _ = select.select([self.fd], [], [], 0.05)
            if readable:
                self.read()

    def _parse(self, data: bytes, touched: set[str]) -> bool:
        stamp = time.monotonic()
        offset = 0
        size = ik._EVENT.size
        while offset + size <= len(data):
            wd, mask, _cookie, length = ik._EVENT.unpack_from(data, offset)
            name = os.fsdecode(data[offset + size : offset + size + length].rstrip(b"\0"))
            offset += size + length
            for folder in self._paths.get(wd, []):
                self.events.append(Event(stamp, os.path.join(folder, name), mask))
        return super()._parse(data, touched)

    def fence(self, root: Path, timeout: float = 10.0) -> int:
        """Write the marker and wait until its event was read: every event before it
        has been read too (one inotify queue is ordered). Returns the events' count."""
        marker = root / MARKER
        seen = len(self.events)
        marker.write_text(str(time.monotonic()))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(e.path == str(marker) for e in self.events[seen:]):
                return len(self.events)
            time.sleep(0.005)
        raise RuntimeError(f"the marker's event never came: {marker}")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.close()


# --- the save patterns ----------------------------------------------------------


@dataclass
class Pattern:
    name: str
    what: str  # the command or the emulated sequence, for the table
    prepare: Callable[[Path, int], list[str]]  # makes the folder; returns the tracked files
    act: Callable[[Path, int], None]  # the save, recorded
    emulated: bool = False


def module_text(i: int, version: int, formatted: bool = True) -> str:
    """A module of a few kB; ``formatted=False`` is the same code as ruff would not
    leave it (quotes, spacing), so ruff format rewrites it."""
    q = '"' if formatted else "'"
    sp = "" if formatted else " "  # ruff writes `b=0` for a default argument
    lines = [f"{q}Module {i}, version {version}.{q}", "", "import os", ""]
    lines.append(f"VALUE = {q}v{version}-{i}{q}")
    for n in range(40):
        lines += [
            "",
            "",
            f"def function_{n}(a, b{sp}={sp}{n}):",
            f"    return {{{q}a{q}: a, {q}b{q}: b, {q}n{q}: {n}, {q}where{q}: os.sep}}",
        ]
    return "\n".join(lines) + "\n"


def package(root: Path, version: int, formatted: bool = True) -> list[str]:
    files = []
    for i in range(FILES):
        path = root / "pkg" / f"sub{i // 20}" / f"mod{i}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(module_text(i, version, formatted))
        files.append(str(path))
    for folder in {root / "pkg", *(Path(f).parent for f in files)}:
        (folder / "__init__.py").touch()
    return files


def vim_pattern(name: str, setting: str) -> Pattern:
    def prepare(root: Path, run: int) -> list[str]:
        (root / "app.py").write_text(f"TEXT = 'v{run}'\n" + module_text(0, run))
        return [str(root / "app.py")]

    commands = ["-c", "call setline(1, \"TEXT = 'saved-{run}'\")", "-c", "wq"]
    if setting:
        commands = ["-c", f"set {setting}", *commands]
    argv = ["vim", "-Es", "-u", "DEFAULTS", "-i", "NONE", *commands, "app.py"]

    def act(root: Path, run: int) -> None:
        subprocess.run([a.replace("{run}", str(run)) for a in argv], cwd=root, check=True)

    return Pattern(name, " ".join(argv).replace("{run}", "N"), prepare, act)


def git(root: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost", *args],
        cwd=root,
        check=True,
        stdout=subprocess.DEVNULL,
    )


def git_prepare(root: Path, run: int) -> list[str]:
    if not (root / ".git").exists():
        git(root, "init", "-q", "-b", "main")
        package(root, 1)
        git(root, "add", "-A")
        git(root, "commit", "-q", "-m", "one")
        git(root, "tag", "one")
        package(root, 2)
        git(root, "commit", "-q", "-am", "two")
        git(root, "tag", "two")
    git(root, "status", "--short")  # the index is fresh: checkout does not stat-refresh
    return sorted(str(p) for p in (root / "pkg").rglob("*.py"))


def git_act(root: Path, run: int) -> None:
    git(root, "checkout", "-q", "one" if run % 2 == 0 else "two")


def ruff_pattern(ruff: str) -> Pattern:
    def prepare(root: Path, run: int) -> list[str]:
        return package(root, run, formatted=False)

    def act(root: Path, run: int) -> None:
        subprocess.run([ruff, "format", "-q", "pkg"], cwd=root, check=True)

    return Pattern("ruff format", f"ruff format pkg ({FILES} files, ~3 kB each)", prepare, act)


def vscode_prepare(root: Path, run: int) -> list[str]:
    (root / "app.py").write_text(module_text(0, run))
    return [str(root / "app.py")]


def vscode_act(root: Path, run: int) -> None:
    """VS Code writes in place: open the existing file, truncate, write, close."""
    fd = os.open(root / "app.py", os.O_WRONLY | os.O_TRUNC)
    try:
        os.write(fd, module_text(0, run + 100).encode())
    finally:
        os.close(fd)


def jetbrains_act(root: Path, run: int) -> None:
    """JetBrains "safe write": write name___jb_tmp___, rename name -> name___jb_old___,
    rename the tmp file -> name, delete the old one."""
    name = root / "app.py"
    tmp, old = Path(f"{name}___jb_tmp___"), Path(f"{name}___jb_old___")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, module_text(0, run + 100).encode())
    finally:
        os.close(fd)
    os.rename(name, old)
    os.rename(tmp, name)
    os.unlink(old)


def patterns(ruff: str) -> list[Pattern]:
    return [
        vim_pattern("vim", ""),
        vim_pattern("vim backupcopy=no", "backupcopy=no"),
        vim_pattern("vim backupcopy=yes", "backupcopy=yes"),
        Pattern(
            "VS Code (emulated)",
            "open(O_WRONLY|O_TRUNC), write, close",
            vscode_prepare,
            vscode_act,
            emulated=True,
        ),
        Pattern(
            "JetBrains safe write (emulated)",
            "write name___jb_tmp___, rename name -> name___jb_old___, rename tmp -> name, "
            "unlink old",
            vscode_prepare,
            jetbrains_act,
            emulated=True,
        ),
        Pattern(
            "git checkout",
            f"git checkout between two commits that differ in {FILES} .py files",
            git_prepare,
            git_act,
        ),
        ruff_pattern(ruff),
    ]


MASK_NAMES = {
    0x2: "MODIFY",
    ik.IN_ATTRIB: "ATTRIB",
    ik.IN_CLOSE_WRITE: "CLOSE_WRITE",
    ik.IN_MOVED_FROM: "MOVED_FROM",
    ik.IN_MOVED_TO: "MOVED_TO",
    ik.IN_CREATE: "CREATE",
    ik.IN_DELETE: "DELETE",
}

# --- analysis -------------------------------------------------------------------

GONE = ik.IN_DELETE | ik.IN_MOVED_FROM
BACK = ik.IN_MOVED_TO | ik.IN_CLOSE_WRITE
PARTIAL = ik.IN_CREATE | 0x00000002  # IN_MODIFY: a truncation or a write, not closed yet


@dataclass
class Run:
    events: list[Event]  # in the folder, exclusions left out
    tracked: list[Event]  # on the tracked .py files
    burst: float = 0.0
    gap: float = 0.0  # largest gap between consecutive tracked events
    gap_any: float = 0.0  # the same over every event of the folder
    unsafe: list[tuple[str, str, float]] = field(default_factory=list)  # path, what, seconds


def analyse(events: list[Event], tracked: set[str], rules: Rules) -> Run:
    relevant = [e for e in events if not rules.excludes(e.path) and not e.path.endswith(MARKER)]
    mine = [e for e in relevant if e.path in tracked]
    run = Run(relevant, mine)
    if mine:
        run.burst = mine[-1].t - mine[0].t
        run.gap = max((b.t - a.t for a, b in itertools.pairwise(mine)), default=0.0)
    if relevant:
        pairs = itertools.pairwise(relevant)
        run.gap_any = max((b.t - a.t for a, b in pairs), default=0.0)
    since: dict[str, tuple[str, float]] = {}  # path -> (missing|half-written, since)
    for e in mine:
        if e.mask & GONE:
            since[e.path] = ("missing", e.t)
        elif e.mask & PARTIAL and e.path not in since:
            since[e.path] = ("half-written", e.t)
        elif e.mask & BACK and e.path in since:
            what, start = since.pop(e.path)
            run.unsafe.append((e.path, what, e.t - start))
    for path, (what, start) in since.items():  # never came back
        run.unsafe.append((path, what + " at the end", mine[-1].t - start))
    return run


WALL0 = 1_000_000.0  # the simulated wall clock at monotonic 0 (mtimes are wall times)


def stat_states(
    tracked: list[tuple[float, str, int]],
) -> tuple[dict[str, FileStat], list[tuple[float, dict[str, FileStat]]]]:
    """The baseline and what a stat scan of the tracked files sees after each event
    ``(t, path, mask)``: each event is a change a stat can see (mtime, size or inode);
    a deleted or renamed-away file is absent until it comes back."""
    current = {path: FileStat(0, 0, 1, 0o644, 0, 0) for _, path, _ in tracked}
    baseline = dict(current)
    counts = dict.fromkeys(current, 0)
    states = []
    for t, path, mask in tracked:
        counts[path] += 1
        if mask & GONE:
            current.pop(path, None)
        else:
            current[path] = FileStat(int((WALL0 + t) * 1e9), counts[path], 1, 0o644, 0, 0)
        states.append((t, dict(current)))
    return baseline, states


class SimulatedClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return WALL0 + self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 0.001)


def replay(
    tracked: list[tuple[float, str, int]], delay: float, burst_quiet: float = BURST_QUIET
) -> tuple[bool, float]:
    """The settle rule on a simulated clock, the check starting just after each event
    in turn. Returns whether every start ended with the final state (nothing changes
    after it returns: one reload, with the final content), and how long after the last
    event the settle returned when the check started at the first event."""
    baseline, states = stat_states(tracked)
    if not states:
        return True, 0.0
    final = states[-1][1]
    waited = 0.0
    for start_index in range(len(states)):
        clock = SimulatedClock(states[start_index][0] + 1e-4)

        def scan(clock: SimulatedClock = clock) -> dict[str, FileStat]:
            seen = baseline
            for t, state in states:
                if t > clock.now:
                    break
                seen = state
            return seen

        _, state = settle_changes(
            scan,
            baseline,
            delay,
            5.0,
            clock.monotonic,
            clock.sleep,
            clock.wall,
            burst_quiet=burst_quiet,
        )
        if state != final:
            return False, 0.0
        if start_index == 0:
            waited = clock.now - states[-1][0]
    return True, waited


def compact(events: list[tuple[float, str, int]]) -> dict:
    """``{"files": [relative paths], "events": [[ms since the first, file index, mask]]}``"""
    files = sorted({path for _, path, _ in events})
    index = {path: i for i, path in enumerate(files)}
    return {
        "files": files,
        "events": [[round(t * 1000, 2), index[path], mask] for t, path, mask in events],
    }


def largest_gap(run: dict) -> float:
    times = [t for t, _, _ in run["events"]]
    return max((b - a for a, b in itertools.pairwise(times)), default=0.0)


# --- main -----------------------------------------------------------------------


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--patterns", default="all", help="comma-separated names (prefixes)")
    parser.add_argument("--ruff", default=str(Path(sys.executable).parent / "ruff"))
    parser.add_argument(
        "--dir",
        default=os.path.expanduser("~"),
        help="where the temporary folders go (not /tmp: vim's 'backupskip' makes no backup there)",
    )
    parser.add_argument("--json", help="write every run's events on tracked files here")
    parser.add_argument(
        "--test-data", help="write the run with the largest gap of each pattern here (for tests)"
    )
    parser.add_argument(
        "--show", type=int, default=0, help="print the first N events of each pattern's first run"
    )
    parser.add_argument("--delays", default="0.02,0.03,0.05,0.075,0.1,0.15,0.2,0.3")
    args = parser.parse_args()
    if shutil.which("vim") is None:
        print("vim is missing: apt-get install vim (Debian's)", file=sys.stderr)
        return 2
    chosen = [
        p
        for p in patterns(args.ruff)
        if args.patterns == "all" or any(p.name.startswith(n) for n in args.patterns.split(","))
    ]
    delays = [float(d) for d in args.delays.split(",")]
    print(
        f"{os.uname().sysname} {os.uname().release}, {os.cpu_count()} cores, load "
        f"{os.getloadavg()[0]:.2f}; {args.runs} runs per pattern; times in ms"
    )
    header = (
        "| pattern | events (tracked) | burst | largest gap | largest gap, any file "
        "| missing / half-written moments (longest) | smallest delay, plain rule "
        "| our rule: 1 reload, wait after the last write |"
    )
    rows = [header, "|" + "---|" * 8]
    dump: dict[str, list] = {}
    for pattern in chosen:
        runs: list[Run] = []
        with tempfile.TemporaryDirectory(prefix="save-patterns-", dir=args.dir) as folder:
            root = Path(folder)
            rules = Rules(base_dir=str(root))
            for number in range(args.runs):
                tracked = set(pattern.prepare(root, number))
                recorder = Recorder(root)
                try:
                    begin = recorder.fence(root)
                    pattern.act(root, number)
                    end = recorder.fence(root)
                finally:
                    recorder.stop()
                runs.append(analyse(recorder.events[begin:end], tracked, rules))
        base = str(root)
        recorded = [
            [(e.t - r.tracked[0].t, os.path.relpath(e.path, base), e.mask) for e in r.tracked]
            for r in runs
            if r.tracked
        ]
        if args.show and runs[0].events:
            first = runs[0].events[0].t
            for e in runs[0].events[: args.show]:
                names = "|".join(n for bit, n in MASK_NAMES.items() if e.mask & bit)
                print(f"  {ms(e.t - first):>8} ms  {os.path.relpath(e.path, base)}  {names}")
        fine = [d for d in delays if all(replay(events, d, 0)[0] for events in recorded)]
        smallest = f"{fine[0]:g} s" if fine and fine == delays[len(delays) - len(fine) :] else "-"
        default = [replay(events, Config().delay) for events in recorded]
        rule = (
            f"{sum(ok for ok, _ in default)}/{len(default)} runs, "
            f"{ms(statistics.median(w for _, w in default))}"
            if default
            else "-"
        )
        unsafe = [u for r in runs for u in r.unsafe]
        kinds = sorted({what for _, what, _ in unsafe})
        moments = (
            f"yes, {len(unsafe) / len(runs):g}/run: {', '.join(kinds)} "
            f"({ms(max(s for _, _, s in unsafe))})"
            if unsafe
            else "no"
        )
        name = pattern.name + (" *" if pattern.emulated else "")

        def spread(values: list[float]) -> str:
            return f"{ms(statistics.median(values))} (max {ms(max(values))})"

        rows.append(
            f"| {name} | {statistics.median(len(r.events) for r in runs):g} "
            f"({statistics.median(len(r.tracked) for r in runs):g}) "
            f"| {spread([r.burst for r in runs])} | {spread([r.gap for r in runs])} "
            f"| {spread([r.gap_any for r in runs])} | {moments} | {smallest} | {rule} |"
        )
        print(rows[-1], flush=True)
        dump[pattern.name] = [compact(events) for events in recorded]
    print()
    print("\n".join(rows))
    print("\n* emulated: the documented sequence of system calls, not the editor itself.")
    print("times: median over the runs (max); events: in the folder, our default exclusions")
    print("left out (tracked: on the tracked .py files). Replays: settle_changes on a simulated")
    print("clock, the check starting just after each event of each run in turn; plain rule:")
    print("the smallest --delays value with one reload in every replay when a burst gets no")
    print(f"more quiet than a single save; our rule: delay {Config().delay:g} s, at least")
    print(f"{BURST_QUIET:g} s for a visible burst; wait counted from a check at the first event.")
    if args.json:
        Path(args.json).write_text(json.dumps(dump))
    if args.test_data:  # per pattern, the run with the largest gap between two events
        worst = {name: max(runs, key=largest_gap) for name, runs in dump.items()}
        Path(args.test_data).write_text(json.dumps(worst, separators=(",", ":")) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
