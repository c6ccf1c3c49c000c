"""Save -> reload decided -> new code, for single saves of a 1-module app on real uWSGI
(2 workers, default backend). Run by hand, never by CI.

    .venv/bin/python bench/single_save.py [--saves 7] [--set uwsgi-reload-delay=0.3]
        [--pythonpath DIR] [--editor write|vim]

Per save: when the reload was decided (the stamp of our `-> graceful reload` line,
uWSGI logging with `log-encoder = format ${micros} ${msg}`, minus the wall time of
the save), what our `new code serving, X s after the save` line says, and when the
first response with the new code came (polling every 5 ms). Prints each and the
median. ``--pythonpath`` runs another copy of uwsgi_reload (for a before/after:
`git archive COMMIT uwsgi_reload | tar -x -C DIR`).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

APP = """\
import uwsgi_reload
print("uwsgi_reload from", uwsgi_reload.__file__, flush=True)
TOKEN = "{token}"

def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [TOKEN.encode()]
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def body(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.read().decode()
    except OSError as error:
        return f"error: {error}"


def wait(predicate: Callable[[], bool], timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
            raise SystemExit(f"timed out waiting for {what}\n{tail}")
        time.sleep(0.005)


def save(path: Path, token: str, editor: str) -> None:
    if editor == "vim":
        line = f'TOKEN = "{token}"'
        edit = ["-c", f"call setline(3, '{line}')", "-c", "wq"]
        vim = ["vim", "-Es", "-u", "DEFAULTS", "-i", "NONE", *edit, path.name]
        subprocess.run(vim, cwd=path.parent, check=True)
    else:
        path.write_text(APP.format(token=token))


def breakdown(log: str, decided_us: int) -> dict[str, float]:
    """From the decision: the master's "gracefully killing workers", the last old
    worker buried, and the new generation's first check ("new code serving")."""
    events = r"(\d{16}) (\.\.\.gracefully killing workers|worker \d+ buried|uwsgi_reload: new code)"
    marks: dict[str, float] = {}
    for stamp, what in re.findall(events, log):
        at = (int(stamp) - decided_us) / 1e6
        if at < 0:
            continue
        key = what.split()[0] if not what.startswith("...") else "killing"
        if key == "killing" and "killing" not in marks:
            marks["killing"] = at
        elif key == "worker" and "code" not in marks:
            marks["buried"] = at
        elif key == "uwsgi_reload:" and "code" not in marks:
            marks["code"] = at
    return marks


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--saves", type=int, default=7)
    parser.add_argument("--set", action="append", default=[], help="an ini line KEY=VALUE")
    parser.add_argument("--pythonpath", help="import uwsgi_reload from this folder")
    parser.add_argument(
        "--editor",
        choices=("write", "vim"),
        default="write",
        help="save with an in-place write, or with Debian's vim (-u DEFAULTS: rename the "
        "old file away, write a new one); the save's moment is the new file's mtime",
    )
    args = parser.parse_args()
    uwsgi = Path(sys.executable).parent / "uwsgi"
    env = dict(os.environ)
    if args.pythonpath:
        env["PYTHONPATH"] = args.pythonpath
    decided, reported, served, after_decision = [], [], [], []
    # not in /tmp: vim's 'backupskip' would make it write in place there
    with tempfile.TemporaryDirectory(prefix="single-save-", dir=os.path.expanduser("~")) as folder:
        root = Path(folder)
        port = free_port()
        (root / "app.py").write_text(APP.format(token="token-0"))
        extra = "".join(line.replace("=", " = ", 1) + "\n" for line in args.set)
        (root / "uwsgi.ini").write_text(
            f"[uwsgi]\nhttp-socket = 127.0.0.1:{port}\nmaster = true\nprocesses = 2\n"
            "import = uwsgi_reload\nwsgi-file = app.py\ndie-on-term = true\n"
            "log-encoder = format ${micros} ${msg}\n" + extra
        )
        log = root / "uwsgi.log"
        with open(log, "wb") as out:
            server = subprocess.Popen(
                [str(uwsgi), "--ini", "uwsgi.ini"],
                cwd=root,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=env,
            )
        try:
            url = f"http://127.0.0.1:{port}/"
            text = lambda: log.read_text(errors="replace")  # noqa: E731
            wait(lambda: "uwsgi_reload: reloading on" in text(), 30, "reloading on", log)
            wait(lambda: body(url) == "token-0", 30, "token-0", log)
            print(re.search(r"uwsgi_reload from \S+?\.py", text()).group(0))
            for n in range(1, args.saves + 1):
                time.sleep(1.0)  # the developer looks, then saves again
                count = text().count("-> graceful reload")
                save(root / "app.py", f"token-{n}", args.editor)
                saved = (root / "app.py").stat().st_mtime
                wait(lambda n=n: body(url) == f"token-{n}", 20, f"token-{n}", log)
                served.append(time.time() - saved)
                wait(lambda c=count: text().count("new code serving") > c, 10, "serving", log)
                stamps = re.findall(
                    r"(\d{16}) uwsgi_reload: modified .*?-> graceful reload", text()
                )
                decided.append(int(stamps[-1]) / 1e6 - saved)
                line = re.findall(r"new code serving, ([0-9.]+) s after the save", text())
                reported.append(float(line[-1]))
                steps = breakdown(text(), int(stamps[-1]))
                print(
                    f"save {n}: decided {decided[-1]:.3f} s, 'new code serving' "
                    f"{reported[-1]:.2f} s, first new response {served[-1]:.3f} s; "
                    + ", ".join(f"{k} +{v:.3f}" for k, v in steps.items())
                )
                after_decision.append(steps.get("code", float("nan")))
            reloads = text().count("-> graceful reload")
            print(f"{reloads} reloads for {args.saves} saves")
        finally:
            os.killpg(server.pid, signal.SIGINT)
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait(5)
    print(
        f"median of {len(decided)}: decided {statistics.median(decided):.3f} s, "
        f"'new code serving' {statistics.median(reported):.2f} s, "
        f"first new response {statistics.median(served):.3f} s; "
        f"decision -> new code {statistics.median(after_decision):.3f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
