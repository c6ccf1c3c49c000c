"""Configuration: the ``uwsgi-reload-*`` keys, parsed and validated.

Pure: takes a mapping of option names to raw values (what ``uwsgi.opt`` holds, or an
ini section, or command-line flags) and returns a :class:`Config` or raises
:class:`ConfigError` listing every problem, each naming the key, the value and what
is allowed.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from uwsgi_reload.core.sources import absolute, has_glob

PREFIX = "uwsgi-reload-"

# uWSGI options that import a Python module: `import = uwsgi_reload` or a sibling
IMPORT_OPTIONS = (
    "import",
    "pyimport",
    "py-import",
    "python-import",
    "shared-import",
    "shared-pyimport",
    "shared-py-import",
    "shared-python-import",
)

RawValue = str | bytes | bool | int | list | tuple | None

MODES = ("graceful", "chain")
BACKENDS = ("auto", "poll", "inotify")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


class ConfigError(ValueError):
    """One or more ``uwsgi-reload-*`` values are wrong; ``problems`` has one line each."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


@dataclass(frozen=True)
class Config:
    """The effective configuration. Defaults are what an empty ini gives."""

    period: int = 1
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    mode: str = "graceful"
    delay: float = 0.3
    max_delay: float = 5.0
    check_syntax: bool = True
    backend: str = "auto"
    track_modules: bool = True
    loop_guard: int = 3
    fifo: str = ""
    base_dir: str = "."


# Keys whose every line counts when the ini repeats them (uWSGI users repeat lines);
# any other repeated key keeps its last value, as uWSGI does for its own options.
MERGED_KEYS = ("include", "exclude")


def _text(value: RawValue) -> str:
    """uWSGI gives bytes, a list for a repeated key (we take the last), or True for a flag."""
    if isinstance(value, (list, tuple)):
        value = value[-1] if value else ""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if value is True:
        return "true"
    if value is None:
        return ""
    return str(value).strip()


def option_values(options: Mapping[str, RawValue], name: str) -> list[str]:
    """Every value of a uWSGI option that may be repeated (``import``, ``mount``), as
    text; none for a missing option or a bare flag."""
    value = options.get(name)
    if value is None or value is True:
        return []
    values = value if isinstance(value, list) else [value]
    return [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in values]


def split_list(text: str) -> tuple[str, ...]:
    """Several items in one value, separated by spaces or commas."""
    return tuple(item for item in re.split(r"[\s,]+", text) if item)


def _whole_seconds(text: str) -> int:
    if not re.fullmatch(r"\+?\d+", text) or int(text) < 1:
        raise ValueError(
            "a whole number of seconds, 1 or more (uWSGI timers tick in whole seconds)"
        )
    return int(text)


def _seconds(limit: float) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = -1.0
        if not 0 <= value <= limit:
            raise ValueError(f"a number of seconds from 0 to {limit:g}, such as 0.3")
        return value

    return parse


def _choice(choices: tuple[str, ...]) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text.lower() not in choices:
            raise ValueError("one of " + ", ".join(choices))
        return text.lower()

    return parse


def _boolean(text: str) -> bool:
    if text.lower() in _TRUE:
        return True
    if text.lower() in _FALSE:
        return False
    raise ValueError("true or false (also 1/0, yes/no, on/off)")


def _count(text: str) -> int:
    if not re.fullmatch(r"\d+", text):
        raise ValueError("a whole number, 0 to turn the guard off")
    return int(text)


def _any(text: str) -> str:
    return text


# key (without prefix) -> (Config field, parser, one-line description for docs and `check`)
KEYS: dict[str, tuple[str, Callable[[str], object], str]] = {
    "period": ("period", _whole_seconds, "seconds between checks, whole seconds >= 1"),
    "include": ("include", split_list, "extra files, folders or globs to track"),
    "exclude": ("exclude", split_list, "globs of files and folders never to track"),
    "mode": ("mode", _choice(MODES), "how to reload: " + ", ".join(MODES)),
    "delay": ("delay", _seconds(10), "quiet time after the last change before reloading"),
    "max-delay": ("max_delay", _seconds(60), "reload anyway after this long of constant changes"),
    "check-syntax": ("check_syntax", _boolean, "compile changed .py files before reloading"),
    "backend": ("backend", _choice(BACKENDS), "how to notice changes: " + ", ".join(BACKENDS)),
    "track-modules": ("track_modules", _boolean, "track the files of imported modules"),
    "loop-guard": ("loop_guard", _count, "stop after this many reloads in a row for same files"),
    "fifo": ("fifo", _any, "uWSGI master FIFO to write to (chain mode)"),
}


def parse_config(options: Mapping[str, RawValue], base_dir: str = ".") -> Config:
    """Build a :class:`Config` from every ``uwsgi-reload-*`` entry of ``options``.

    Keys without the prefix are ignored (they belong to uWSGI). Unknown
    ``uwsgi-reload-*`` keys are errors, with the closest known key suggested.
    """
    values: dict[str, object] = {"base_dir": base_dir}
    problems: list[str] = []
    for name, raw in options.items():
        if not name.startswith(PREFIX):
            continue
        key = name[len(PREFIX) :]
        if key not in KEYS:
            problems.append(_unknown_key(name))
            continue
        attr, parse, _ = KEYS[key]
        if key in MERGED_KEYS and isinstance(raw, (list, tuple)):
            text = " ".join(_text(value) for value in raw)
        else:
            text = _text(raw)
        try:
            values[attr] = parse(text)
        except ValueError as allowed:
            problems.append(f"{name} = {text!r} is not allowed: expected {allowed}")
    if problems:
        raise ConfigError(problems)
    config = Config(**values)  # type: ignore[arg-type]
    return _check_combinations(config)


def _check_combinations(config: Config) -> Config:
    if config.max_delay < config.delay:
        raise ConfigError(
            [
                f"{PREFIX}max-delay = {config.max_delay:g} is smaller than "
                f"{PREFIX}delay = {config.delay:g}: expected max-delay >= delay"
            ]
        )
    return config


def _flag(options: Mapping[str, RawValue], *names: str) -> bool:
    for name in names:
        value = options.get(name)
        if value is not None and _text(value).lower() not in ("", *_FALSE):
            return True
    return False


def check_uwsgi_options(config: Config, options: Mapping[str, RawValue]) -> list[str]:
    """Problems with how the uWSGI options around us fit ``config`` (pure: ``options``
    is ``uwsgi.opt`` inside the server, or a parsed ini for ``uwsgi-reload check``)."""
    problems = []
    for pattern in config.include:
        if not has_glob(pattern) and not os.path.exists(absolute(pattern, config.base_dir)):
            problems.append(
                f"{PREFIX}include names {pattern!r}, which does not exist in "
                f"{config.base_dir}: expected an existing file or folder, or a glob"
            )
    if not _flag(options, "master"):
        problems.append(
            "uwsgi_reload needs the uWSGI master (its timers run there): "
            "add `master = true` to the [uwsgi] section"
        )
    lazy = _flag(options, "lazy-apps", "lazy")
    if config.mode == "chain" and not lazy:
        problems.append(
            f"{PREFIX}mode = {config.mode} needs `lazy-apps = true` (without it workers are "
            "forked from the master and keep the old code): add it, or use mode graceful"
        )
    if config.mode == "chain" and not (config.fifo or options.get("master-fifo")):
        problems.append(f"{PREFIX}mode = {config.mode} needs `master-fifo = PATH` in the ini")
    return problems


def load_uwsgi_config(options: Mapping[str, RawValue], base_dir: str) -> Config:
    """Parse and check everything; raise :class:`ConfigError` listing all problems."""
    config = parse_config(options, base_dir)
    problems = check_uwsgi_options(config, options)
    if problems:
        raise ConfigError(problems)
    return config


def _unknown_key(name: str) -> str:
    known = [PREFIX + key for key in KEYS]
    guess = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean {guess[0]}?)" if guess else ""
    return f"{name} is not a known key{hint}: known keys are " + ", ".join(known)


def describe(config: Config) -> Iterable[tuple[str, str]]:
    """(key, effective value) pairs, for the start-up line and ``uwsgi-reload check``."""
    for key, (attr, _, _) in KEYS.items():
        value = getattr(config, attr)
        if isinstance(value, tuple):
            value = " ".join(value) or "-"
        elif isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, float):
            value = f"{value:g}"
        yield PREFIX + key, str(value) if value != "" else "-"


def settings_line(config: Config) -> str:
    """``period=1, include=-, ...``: every setting, short names, for a server's log."""
    return ", ".join(f"{key[len(PREFIX) :]}={value}" for key, value in describe(config))
