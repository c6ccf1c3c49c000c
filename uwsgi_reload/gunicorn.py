"""gunicorn's config module: ``gunicorn -c python:uwsgi_reload.gunicorn app:app``.

The hooks live in :mod:`uwsgi_reload.hosts.gunicorn`; this module only names them, so
that gunicorn, which applies every name of a config module that matches one of its
settings, sees nothing else.
"""

from uwsgi_reload.hosts.gunicorn import on_starting, when_ready

__all__ = ["on_starting", "when_ready"]
