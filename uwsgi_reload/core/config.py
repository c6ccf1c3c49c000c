"""Configuration: the ``uwsgi-reload-*`` keys, parsed and validated.

Pure: takes a mapping of option names to raw values (what ``uwsgi.opt`` holds, or an
ini section, or command-line flags) and returns a :class:`Config` or raises
:class:`ConfigError` listing every problem, each naming the key, the value and what
is allowed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping
from typing import NamedTuple

from uwsgi_reload.core.globs import has_glob
from uwsgi_reload.core.sources import absolute

PREFIX = "uwsgi-reload-"

RawValue = str | bytes | bool | int | list | tuple | None

MODES = ("graceful", "chain", "warm")
BACKENDS = ("auto", "poll", "inotify")
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")


def ini_key(key: str) -> str:
    """How the ini spells a setting: ``max-delay`` -> ``uwsgi-reload-max-delay``."""
    return PREFIX + key


class Problem(NamedTuple):
    """One wrong setting. ``message`` names settings as ``{key}`` (``{max-delay}``), so
    that each host spells them its own way: ini key, environment variable, flag."""

    message: str

    def spelled(self, spell: Callable[[str], str] = ini_key) -> str:
        return re.sub(r"\{([a-z][a-z-]*)\}", lambda m: spell(m.group(1)), self.message)


class ConfigError(ValueError):
    """One or more settings are wrong; ``problems`` has one line each, in the ini's
    words (``issues`` holds them as :class:`Problem` for other spellings)."""

    def __init__(self, issues: list[Problem | str]) -> None:
        self.issues = [i if isinstance(i, Problem) else Problem(i) for i in issues]
        super().__init__("; ".join(self.problems))

    @property
    def problems(self) -> list[str]:
        return self.spelled()

    def spelled(self, spell: Callable[[str], str] = ini_key) -> list[str]:
        return [issue.spelled(spell) for issue in self.issues]


class Config(NamedTuple):
    """The effective configuration. Defaults are what an empty ini gives.

    Named tuples, not dataclasses, for what a uWSGI master imports: it imports this
    package at every start, which a graceful reload waits for, and ``dataclasses``
    brings ``inspect`` (about 10 ms)."""

    period: int = 1
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    mode: str = "graceful"
    delay: float = 0.05
    max_delay: float = 5.0
    check_syntax: bool = True
    backend: str = "auto"
    track_modules: bool = True
    loop_guard: int = 3
    fifo: str = ""
    browser: bool = False
    debug: bool = False
    fast_exit: bool = True
    base_dir: str = "."


# Keys whose every line counts when the ini repeats them (uWSGI users repeat lines);
# any other repeated key keeps its last value, as uWSGI does for its own options.
MERGED_KEYS = ("include", "exclude")


def option_text(value: RawValue) -> str:
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


def split_list(text: str) -> tuple[str, ...]:
    """Several items in one value, separated by spaces or commas."""
    return tuple(item for item in re.split(r"[\s,]+", text) if item)


def _whole_seconds(text: str) -> int:
    if not re.fullmatch(r"\+?\d+", text) or int(text) < 1:
        raise ValueError(
            "a whole number of seconds, 1 or more (uWSGI timers tick in whole seconds)"
        )
    return int(text)


def seconds(low: float, high: float, example: str) -> Callable[[str], float]:
    """A parser of a number of seconds from ``low`` to ``high`` (the ini's, the
    environment's and the command line's)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = -1.0
        if not low <= value <= high:  # NaN too
            raise ValueError(f"a number of seconds from {low:g} to {high:g}, such as {example}")
        return value

    return parse


def _choice(choices: tuple[str, ...]) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text.lower() not in choices:
            raise ValueError("one of " + ", ".join(choices))
        return text.lower()

    return parse


def _boolean(text: str) -> bool:
    if text.lower() in TRUE_WORDS:
        return True
    if text.lower() in FALSE_WORDS:
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
    "delay": ("delay", seconds(0, 10, "0.05"), "quiet time after the last change before reloading"),
    "max-delay": (
        "max_delay",
        seconds(0, 60, "5"),
        "reload anyway after this long of constant changes",
    ),
    "check-syntax": ("check_syntax", _boolean, "compile changed .py files before reloading"),
    "backend": ("backend", _choice(BACKENDS), "how to notice changes: " + ", ".join(BACKENDS)),
    "track-modules": ("track_modules", _boolean, "track the files of imported modules"),
    "loop-guard": ("loop_guard", _count, "stop after this many reloads in a row for same files"),
    "fifo": ("fifo", _any, "uWSGI master FIFO to write to (chain mode)"),
    "browser": ("browser", _boolean, "open pages refresh once new code serves; held saves show"),
    "debug": ("debug", _boolean, "log every check and the timing of each reload"),
    "fast-exit": (
        "fast_exit",
        _boolean,
        "workers replaced by a reload skip Python's teardown (atexit handlers still run)",
    ),
}


def parse_config(options: Mapping[str, RawValue], base_dir: str = ".") -> Config:
    """Build a :class:`Config` from every ``uwsgi-reload-*`` entry of ``options``.

    Keys without the prefix are ignored (they belong to uWSGI). Unknown
    ``uwsgi-reload-*`` keys are errors, with the closest known key suggested.
    """
    values: dict[str, object] = {"base_dir": base_dir}
    problems: list[Problem] = []
    for name, raw in options.items():
        if not name.startswith(PREFIX):
            continue
        key = name[len(PREFIX) :]
        if key not in KEYS:
            problems.append(Problem(_unknown_key(key, name)))
            continue
        attr, parse, _ = KEYS[key]
        if key in MERGED_KEYS and isinstance(raw, (list, tuple)):
            text = " ".join(option_text(value) for value in raw)
        else:
            text = option_text(raw)
        try:
            values[attr] = parse(text)
        except ValueError as allowed:
            problems.append(Problem(f"{{{key}}} = {text!r} is not allowed: expected {allowed}"))
    if problems:
        raise ConfigError(problems)
    config = Config(**values)  # type: ignore[arg-type]
    return _check_combinations(config)


def _check_combinations(config: Config) -> Config:
    if config.max_delay < config.delay:
        raise ConfigError(
            [
                Problem(
                    f"{{max-delay}} = {config.max_delay:g} is smaller than "
                    f"{{delay}} = {config.delay:g}: expected max-delay >= delay"
                )
            ]
        )
    return config


def check_includes(config: Config) -> list[Problem]:
    """An include that names no glob must name something that exists."""
    return [
        Problem(
            f"{{include}} names {pattern!r}, which does not exist in "
            f"{config.base_dir}: expected an existing file or folder, or a glob"
        )
        for pattern in config.include
        if not has_glob(pattern) and not os.path.exists(absolute(pattern, config.base_dir))
    ]


def _unknown_key(key: str, name: str) -> str:
    import difflib  # only for a misspelled key: 5 ms of import at every server start

    guess = difflib.get_close_matches(key, list(KEYS), n=1)
    hint = f" (did you mean {{{guess[0]}}}?)" if guess else ""
    named = f"{{{key}}}" if re.fullmatch(r"[a-z][a-z-]*", key) else name
    return f"{named} is not a known key{hint}: known keys are " + ", ".join(
        f"{{{known}}}" for known in KEYS
    )


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
