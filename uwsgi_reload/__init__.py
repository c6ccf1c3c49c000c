"""uwsgi-reload: reload uWSGI on save.

Inside uWSGI, ``import = uwsgi_reload`` in the ini switches reloading on. Anywhere
else, importing this package starts nothing: it exposes the change detector.
"""

from __future__ import annotations

from uwsgi_reload.core.config import Config, ConfigError, parse_config
from uwsgi_reload.core.detector import Detector
from uwsgi_reload.core.snapshot import Changes

__all__ = ["Changes", "Config", "ConfigError", "Detector", "parse_config"]
__version__ = "0.1.0"


def _activate_in_uwsgi() -> None:
    try:
        import uwsgi  # noqa: F401  (only exists inside a uWSGI process)
    except ImportError:
        return
    from uwsgi_reload.hosts.uwsgi import start

    start.activate()


_activate_in_uwsgi()
