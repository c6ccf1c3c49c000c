"""The command line: ``uwsgi-reload watch`` (``watch.py``) and ``uwsgi-reload check``
(``check.py``); ``arguments.py`` parses the arguments."""

from collections.abc import Sequence

EXIT_PROBLEMS = 1  # `check` found problems
EXIT_USAGE = 2  # bad arguments, or the target of `watch` is not usable
LARGE = 5000  # tracked files worth a warning: each is stat'ed at every check


def main(argv: Sequence[str] | None = None) -> int:
    from uwsgi_reload.cli.arguments import main as run

    return run(argv)
