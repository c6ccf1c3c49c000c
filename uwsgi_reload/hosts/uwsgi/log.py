"""uWSGI's log, with our prefix on every line."""

from __future__ import annotations

import uwsgi


def log(message: str) -> None:
    # file names that are not UTF-8 arrive as surrogates, which uwsgi.log cannot encode
    message = message.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    for line in message.rstrip("\n").splitlines():
        uwsgi.log(f"uwsgi_reload: {line}")
