from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from servers import Server, start_uwsgi


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "integration: starts real server processes")


@pytest.fixture
def uwsgi_server(tmp_path: Path) -> Iterator:
    """Start real uWSGI instances in tmp_path; every one is stopped at teardown."""
    started: list[Server] = []

    def start(body: str, period: int = 1, env: dict | None = None, cwd: Path = tmp_path) -> Server:
        server = start_uwsgi(cwd, body, period, env)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
