"""Every line of uWSGI's import-like options. ``uwsgi.opt`` keeps only the last value
of a repeated option (measured on 2.0.31, ini and command line alike), so
``import = uwsgi_reload`` followed by ``import = myapp.tasks`` leaves no trace of us
there: read the ini files, the command line and the environment again. Read only when
``uwsgi.opt`` hides earlier lines (:func:`options.imports_hidden`); pure but for the
files it reads."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence

from uwsgi_reload.core.config import RawValue
from uwsgi_reload.hosts.uwsgi.ini import OTHER_LOADERS, UwsgiIni, read_uwsgi_ini, split_spec
from uwsgi_reload.hosts.uwsgi.options import (
    IMPORT_OPTIONS,
    imports_hidden,
    option_values,
    read_ini_spec,
    requested,
)

# uWSGI options that rename the process: a worker may be renamed before `lazy-apps`
# imports us there, and its /proc/self/cmdline is then the new name (measured, 2.0.31)
PROCNAME_OPTIONS = (
    "procname",
    "procname-prefix",
    "procname-prefix-spaced",
    "procname-append",
    "procname-master",
    "auto-procname",
)


@dataclasses.dataclass
class ImportLines:
    """``options`` with every value of its import-like options, read again from where
    uWSGI read them; ``unread``: the sources that could not be read, when the ones read
    do not import us (then nobody can tell whether an option did)."""

    options: Mapping[str, RawValue]
    unread: list[str]

    def warning(self) -> str | None:
        """What to log when it cannot be told whether an option imports us."""
        if not self.unread:
            return None
        last = [
            f"`{name} = {values[-1].strip()}`"
            for name in IMPORT_OPTIONS
            if (values := option_values(self.options, name))
        ]
        return (
            "WARNING: reloading is OFF: uWSGI keeps only the last value of a repeated "
            f"option ({', '.join(last)}), and these could not be read to find an "
            f"`import = uwsgi_reload` before it: {'; '.join(self.unread)}. Put "
            "`import = uwsgi_reload` after your other import lines (if your app imports "
            "uwsgi_reload from its own code, this is expected: ignore it)"
        )


def cmdline_imports(argv: Sequence[str]) -> tuple[dict[str, list[str]], list[str]]:
    """From a uWSGI command line (``argv[0]`` is the program): the values of its
    import-like options and its ini files (``--import X``, ``--import=X``, ``--ini F``,
    a lone ``app.ini``), and the config files in other formats, which are not read."""
    found: dict[str, list[str]] = {}
    others: list[str] = []
    args = list(argv[1:])
    while args:
        arg = args.pop(0)
        if arg.startswith("--"):
            name, eq, value = arg[2:].partition("=")
            if name not in (*IMPORT_OPTIONS, "ini", *OTHER_LOADERS):
                continue
            if not eq:
                if not args:
                    continue
                value = args.pop(0)
            if name in OTHER_LOADERS:
                others.append(f"--{name} {value}")
            else:
                found.setdefault(name, []).append(value)
        elif not arg.startswith("-") and "=" not in arg:
            extension = split_spec(arg)[0].rpartition(".")[2]
            if extension == "ini":
                found.setdefault("ini", []).append(arg)
            elif extension in OTHER_LOADERS:
                others.append(arg)
    return found, others


def environ_option(environ: Mapping[str, str], name: str) -> list[str]:
    """The value uWSGI reads for option ``name`` from the environment (``UWSGI_IMPORT``)."""
    value = environ.get("UWSGI_" + name.upper().replace("-", "_"))
    return [value] if value else []


def every_import_line(
    opt: Mapping[str, RawValue],
    cmdline: Sequence[str] | None,
    environ: Mapping[str, str],
    read_ini: Callable[[str], UwsgiIni] = read_uwsgi_ini,
) -> ImportLines:
    """``opt`` (``uwsgi.opt``) with every value of its import-like options, from the
    ini files uWSGI read (``opt``'s ``ini``, the command line's, ``UWSGI_INI``), the
    command line (None: it could not be read) and the environment. Reads nothing when
    the last values already say whether we are imported (the usual single line)."""
    if not imports_hidden(opt):
        return ImportLines(opt, [])
    values = {name: option_values(opt, name) for name in IMPORT_OPTIONS}
    unread = [f"`{name} = ...` (only ini files are read)" for name in OTHER_LOADERS if name in opt]
    specs = option_values(opt, "ini") + environ_option(environ, "ini")
    if cmdline is None:
        unread.append("the command line (/proc/self/cmdline)")
    else:
        found, others = cmdline_imports(cmdline)
        specs += found.pop("ini", [])
        unread += [f"{other} (only ini files are read)" for other in others]
        for name, more in found.items():
            values[name] += more
    for name in IMPORT_OPTIONS:
        values[name] += environ_option(environ, name)
    for spec in dict.fromkeys(specs):
        ini = read_ini_spec(spec, read_ini)
        if ini is None:
            unread.append(f"the ini {split_spec(spec)[0]}")
            continue
        unread += ini.notes
        for name in IMPORT_OPTIONS:
            values[name] += [v for v in ini.options.get(name, []) if isinstance(v, str)]
    options = dict(opt)
    options.update({name: lines for name, lines in values.items() if lines})
    return ImportLines(options, [] if requested(options) else list(dict.fromkeys(unread)))


def own_cmdline(opt: Mapping[str, RawValue], in_worker: bool) -> list[str] | None:
    """This process's command line (uWSGI's), or None when it cannot be read, or may
    be a name uWSGI gave a worker (the PROCNAME_OPTIONS)."""
    if in_worker and any(name in opt for name in PROCNAME_OPTIONS):
        return None
    try:
        with open("/proc/self/cmdline", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    return [arg.decode("utf-8", "surrogateescape") for arg in raw.split(b"\0")[:-1]] or None
