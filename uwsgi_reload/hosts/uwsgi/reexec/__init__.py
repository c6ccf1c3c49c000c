"""A folder put first on ``PYTHONPATH`` for the master's re-exec under pyuwsgi; see
:mod:`uwsgi_reload.hosts.uwsgi.pyuwsgi`. Its ``pyuwsgi`` module is the trampoline."""
