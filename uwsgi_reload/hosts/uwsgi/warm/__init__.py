"""Warm mode (``uwsgi-reload-mode = warm``, with ``lazy-apps``): the uWSGI master keeps
the libraries the app imports, and a save replaces only the workers (``w`` on the
master FIFO), which then import only the project's own modules.

The master learns what to keep from the workers and never keeps a module it could not
import cleanly: every import sequence is first tried in a forked child (:mod:`trial`);
anything that fails there, or pulls in a project module, is left to the workers.
"""
