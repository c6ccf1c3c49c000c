"""The load hook: a listener that asks where the system folders are (as the hosts' do)
works from the very first load, on every Python version."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_listener_asking_for_system_folders_before_sysconfig_is_set_up() -> None:
    """In a fresh interpreter (sysconfig not yet used): on Python 3.13 the first use of
    sysconfig after the hook was installed loaded ``_sysconfigdata``, whose load called
    the listener, which asked sysconfig again while it was half set up: AttributeError
    'abi_thread', logged by uWSGI as an internal error."""
    script = textwrap.dedent(
        """
        from uwsgi_reload.core import loadstats, sources
        seen = []
        loadstats.install(lambda path, stat: seen.append((path, sources.in_system_dir(path))))
        sources.system_dirs()
        import json.decoder, json.scanner, csv  # more loads after
        assert loadstats.listener_errors == [], loadstats.listener_errors
        assert seen and all(system for path, system in seen), seen
        """
    )
    result = subprocess.run(
        [sys.executable, "-I", "-c", script], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
