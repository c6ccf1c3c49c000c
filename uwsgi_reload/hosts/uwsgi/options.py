"""The options the uWSGI host reads: ``uwsgi.opt``, plus every line of a repeated
``uwsgi-reload-include`` / ``uwsgi-reload-exclude``.

uWSGI keeps unknown keys as placeholders, and a placeholder written twice keeps only
its last value in ``uwsgi.opt`` (measured on 2.0.31: three include lines give the
third). The lines are still in the ini file(s) named by ``--ini``, which we read again
with the reader of ``uwsgi-reload check``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from uwsgi_reload.core.config import MERGED_KEYS, PREFIX, RawValue, option_values
from uwsgi_reload.hosts.uwsgi.ini import read_uwsgi_ini, split_spec


def _ini_paths(spec: str) -> list[str]:
    """Where an ``--ini`` value may be: relative to the folder uWSGI was started in
    (``$PWD`` when a shell started it), or to the current one (before a ``chdir``)."""
    path, section = split_spec(spec)
    if os.path.isabs(path):
        folders = [""]
    else:
        folders = [f for f in (os.environ.get("PWD"), os.getcwd()) if f]
    return [f"{os.path.join(folder, path)}:{section}" for folder in folders]


def with_repeated_lines(opt: Mapping[str, RawValue]) -> dict[str, RawValue]:
    """``opt`` with every line of a repeated merged key, when the ini file that set
    its last value can be read again; otherwise ``opt`` as it is."""
    options = dict(opt)
    for spec in option_values(opt, "ini"):
        for candidate in _ini_paths(spec):
            try:
                ini = read_uwsgi_ini(candidate)
            except OSError:
                continue
            for key in MERGED_KEYS:
                name = PREFIX + key
                lines = [v for v in ini.options.get(name, []) if isinstance(v, str)]
                last = option_values(opt, name)
                # only when this file is where uWSGI's value came from
                if len(lines) > 1 and last and last[-1].strip() == lines[-1]:
                    options[name] = lines
            break
    return options
