"""The uWSGI host: imported by ``import = uwsgi_reload``, reads uWSGI options, registers
timers, reloads. Only ``reloader`` imports the ``uwsgi`` module."""
