"""Configuration parsing: every key, every kind of bad value, with messages that name
the key, the value and what is allowed."""

from __future__ import annotations

import re

import pytest

from uwsgi_reload.core.config import (
    Config,
    ConfigError,
    describe,
    parse_config,
    settings_line,
    split_list,
)
from uwsgi_reload.hosts.uwsgi.options import check_uwsgi_options, load_uwsgi_config


def test_defaults_from_no_keys():
    assert parse_config({"http-socket": b":8000"}) == Config()
    assert Config().period == 1 and Config().mode == "graceful"


def test_values_as_uwsgi_gives_them():
    config = parse_config(
        {
            "uwsgi-reload-period": b"2",
            "uwsgi-reload-include": b"templates, static/**/*.css  conf.toml",
            "uwsgi-reload-exclude": [b"ignored", b"*.gen.py"],  # repeated: every line counts
            "uwsgi-reload-delay": [b"0.5", b"0.25"],  # any other repeated key: last wins
            "uwsgi-reload-mode": b"CHAIN",
            "uwsgi-reload-check-syntax": b"off",
            "uwsgi-reload-track-modules": True,  # a bare flag
        },
        base_dir="/srv",
    )
    assert config.period == 2
    assert config.include == ("templates", "static/**/*.css", "conf.toml")
    assert config.exclude == ("ignored", "*.gen.py")
    assert config.mode == "chain"
    assert config.delay == 0.25
    assert config.check_syntax is False
    assert config.track_modules is True
    assert config.base_dir == "/srv"


@pytest.mark.parametrize("value", ["fast", "0.5", "-1", "0", "1.0", "", "1e3"])
def test_bad_period_names_key_value_and_what_is_allowed(value):
    with pytest.raises(ConfigError) as error:
        parse_config({"uwsgi-reload-period": value.encode()})
    message = str(error.value)
    assert "uwsgi-reload-period" in message
    assert repr(value) in message
    assert "whole number of seconds, 1 or more" in message


@pytest.mark.parametrize(
    "key, value, allowed",
    [
        ("mode", "rolling", "graceful, chain"),
        ("backend", "kqueue", "auto, poll, inotify"),
        ("check-syntax", "maybe", "true or false"),
        ("delay", "soon", "from 0 to 10"),
        ("delay", "11", "from 0 to 10"),
        ("loop-guard", "-2", "whole number"),
    ],
)
def test_bad_values(key, value, allowed):
    with pytest.raises(ConfigError) as error:
        parse_config({f"uwsgi-reload-{key}": value})
    assert f"uwsgi-reload-{key} = {value!r}" in str(error.value)
    assert allowed in str(error.value)


def test_typo_in_key_suggests_the_known_one():
    with pytest.raises(ConfigError) as error:
        parse_config({"uwsgi-reload-perod": b"2"})
    assert "uwsgi-reload-perod is not a known key (did you mean uwsgi-reload-period?)" in str(
        error.value
    )


def test_every_problem_is_reported_at_once():
    with pytest.raises(ConfigError) as error:
        parse_config({"uwsgi-reload-period": "0.5", "uwsgi-reload-mdoe": "chain"})
    assert len(error.value.problems) == 2


def test_max_delay_below_delay():
    with pytest.raises(ConfigError, match="max-delay"):
        parse_config({"uwsgi-reload-delay": "2", "uwsgi-reload-max-delay": "1"})


def test_split_list():
    assert split_list(" a,b  c,,d ") == ("a", "b", "c", "d")


def test_server_options_checks(tmp_path):
    (tmp_path / "templates").mkdir()
    options = {"master": b"true", "uwsgi-reload-include": b"templates missing.txt **/*.html"}
    config = parse_config(options, str(tmp_path))
    problems = [p.spelled() for p in check_uwsgi_options(config, options)]
    assert len(problems) == 1 and "'missing.txt', which does not exist" in problems[0]

    no_master = [p.spelled() for p in check_uwsgi_options(Config(base_dir=str(tmp_path)), {})]
    assert any("add `master = true`" in p for p in no_master)

    chain = Config(mode="chain", base_dir=str(tmp_path))
    problems = [p.spelled() for p in check_uwsgi_options(chain, {"master": True})]
    assert any("lazy-apps = true" in p for p in problems)
    assert any("master-fifo" in p for p in problems)
    assert (
        check_uwsgi_options(chain, {"master": True, "lazy-apps": True, "master-fifo": b"f"}) == []
    )


def test_warm_mode_needs_lazy_apps_a_master_fifo_and_the_master_import(tmp_path):
    warm = Config(mode="warm", base_dir=str(tmp_path))
    problems = [p.spelled() for p in check_uwsgi_options(warm, {"master": True})]
    assert any("uwsgi-reload-mode = warm needs `lazy-apps = true`" in p for p in problems)
    assert any("needs `master-fifo = PATH`" in p for p in problems)
    assert any("write `shared-import = uwsgi_reload` instead of" in p for p in problems)
    complete = {"master": True, "lazy-apps": True, "master-fifo": b"f"}
    assert check_uwsgi_options(warm, {**complete, "shared-import": b"uwsgi_reload"}) == []
    assert check_uwsgi_options(warm, {**complete, "shared-pyimport": [b"x", b"uwsgi_reload"]}) == []


def test_load_uwsgi_config_raises_with_all_problems(tmp_path):
    with pytest.raises(ConfigError) as error:
        load_uwsgi_config({"uwsgi-reload-include": b"nope"}, str(tmp_path))
    assert len(error.value.problems) == 2  # missing include, no master


def test_describe_lists_every_key():
    keys = [key for key, _ in describe(Config())]
    assert keys[0] == "uwsgi-reload-period"
    assert len(keys) == len(set(keys)) >= 10


def test_settings_line_names_every_key_shortly():
    line = settings_line(Config(include=("a", "b")))
    assert line.startswith("period=1, include=a b, exclude=-, mode=graceful, delay=0.05, ")
    assert line.count("=") == len(list(describe(Config())))


def test_check_merges_every_repeated_include_and_exclude_line(tmp_path):
    """`uwsgi-reload check` used to show the third of three include lines and say OK."""
    from uwsgi_reload.cli import arguments, check

    for name in ("a", "b", "c"):
        (tmp_path / name).mkdir()
        (tmp_path / name / f"{name}.txt").write_text(name)
    (tmp_path / "uwsgi.ini").write_text(
        "[uwsgi]\nmaster = true\nimport = uwsgi_reload\n"
        f"chdir = {tmp_path}\n"
        "uwsgi-reload-include = a\nuwsgi-reload-include = b\nuwsgi-reload-include = c\n"
        "uwsgi-reload-exclude = *.tmp1\nuwsgi-reload-exclude = *.tmp2\n"
        "uwsgi-reload-delay = 0.5\nuwsgi-reload-delay = 0.25\n"
    )
    lines: list[str] = []
    args = arguments.parser().parse_args(["check", "--ini", str(tmp_path / "uwsgi.ini")])
    assert check.check(args, lines.append) == 0, lines
    out = "\n".join(lines)
    assert re.search(r"uwsgi-reload-include +=  *a b c$", out, re.M), out
    assert re.search(r"uwsgi-reload-exclude +=  *\*\.tmp1 \*\.tmp2$", out, re.M), out
    assert re.search(r"uwsgi-reload-delay +=  *0\.25$", out, re.M), out  # others: the last wins
    for name in ("a", "b", "c"):
        assert str(tmp_path / name / f"{name}.txt") in out, out


def test_explicit_include_wins_over_a_default_exclusion_above_it(tmp_path):
    """`.venv` and `venv` are excluded by name, also above an include (the Docker
    image's /opt/venv): an explicit include of a package in a virtualenv tracked 0 files."""
    from uwsgi_reload.core import sources

    project = tmp_path / "project"
    inside = project / ".venv/lib/python3.11/site-packages/somepkg"
    outside = tmp_path / "opt/venv/lib/python3.12/site-packages/otherpkg"
    for folder in (inside, outside):
        (folder / "__pycache__").mkdir(parents=True)
        (folder / "__init__.py").write_text("")
        (folder / "__pycache__" / "__init__.cpython-311.pyc").write_text("")
        (folder / "debug.log").write_text("")
    rules = sources.Rules(("*.log",), str(project))
    patterns = (".venv/lib/python3.11/site-packages/somepkg", str(outside), ".venv/**/*.py")
    files = sources.expand_includes(patterns, str(project), rules)
    # below the included folder the exclusions still apply (__pycache__, *.log)
    assert files == {str(inside / "__init__.py"), str(outside / "__init__.py")}
    # a glob that does not name the excluded folder itself keeps it excluded
    assert sources.expand_includes(("**/*.py",), str(project), rules) == set()
    assert sources.empty_include_warnings(patterns, str(project), rules) == []


def test_an_include_that_tracks_nothing_is_a_warning_naming_key_and_reason(tmp_path):
    from uwsgi_reload.core import sources

    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "app.log").write_text("")
    (tmp_path / "empty").mkdir()
    rules = sources.Rules((), str(tmp_path))
    warnings = sources.empty_include_warnings(
        ("logs", "empty", "*.toml", "nowhere/**/*.py", "missing-file.txt"), str(tmp_path), rules
    )
    assert warnings == [
        "warning: uwsgi-reload-include 'logs' tracks no file: every file it names is "
        f"excluded (for example {tmp_path}/logs/app.log, by the exclusion '*.log'); narrow "
        "uwsgi-reload-exclude, or include a folder below the excluded one",
        "warning: uwsgi-reload-include 'empty' tracks no file: the folder has no file",
        "warning: uwsgi-reload-include '*.toml' tracks no file: no file matches it",
        f"warning: uwsgi-reload-include 'nowhere/**/*.py' tracks no file: its folder "
        f"{tmp_path}/nowhere does not exist",
    ]
