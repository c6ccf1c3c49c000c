"""The fixed cost of one check per second, on the smallest app (two files tracked).

Idle CPU of a whole uWSGI instance (master + 2 workers) with no reloader, with a bare
``uwsgidecorators.timer(1)`` handler that does nothing (what uWSGI's signal delivery
costs), and with uwsgi_reload on each backend. Run by hand:

    .venv/bin/python bench/tick_floor.py [--seconds 20]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import cpu_seconds, group_pids
from servers import UWSGI, Server, free_port, plain_uwsgi_ini, write

APP = (
    "def application(environ, start_response):\n"
    "    start_response('200 OK', [])\n"
    "    return [b'ok']\n"
)
BARE_TIMER = "import uwsgidecorators\n\n@uwsgidecorators.timer(1)\ndef tick(signum):\n    pass\n"
VARIANTS = {
    "uWSGI alone": "",
    "bare timer handler": "import = bare_timer\n",
    "uwsgi_reload, auto": "import = uwsgi_reload\n",
    "uwsgi_reload, poll": "import = uwsgi_reload\nuwsgi-reload-backend = poll\n",
}


def group_cpu(pgid: int) -> float:
    return sum(cpu_seconds(pid) for pid in group_pids(pgid))


def idle_cpu(body: str, seconds: float) -> float:
    """ms of CPU per second of the whole instance, after a 3 s settle."""
    with tempfile.TemporaryDirectory(prefix="tick-floor-") as name:
        return _idle_cpu_in(Path(name), body, seconds)


def _idle_cpu_in(folder: Path, body: str, seconds: float) -> float:
    write(folder / "app.py", APP)
    write(folder / "bare_timer.py", BARE_TIMER)
    port = free_port()
    ini = folder / "uwsgi.ini"
    ini.write_text(plain_uwsgi_ini(port, f"wsgi-file = app.py\n{body}"))
    server = Server([UWSGI, "--ini", str(ini)], folder, port)
    try:
        server.wait_for_body("ok")
        time.sleep(3)  # the start is not idle
        before, started = group_cpu(server.proc.pid), time.monotonic()
        time.sleep(seconds)
        return (group_cpu(server.proc.pid) - before) / (time.monotonic() - started) * 1e3
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="window (default 20)")
    args = parser.parse_args()
    for name, body in VARIANTS.items():
        print(f"{name:22s} {idle_cpu(body, args.seconds):6.3f} ms/s", flush=True)


if __name__ == "__main__":
    main()
