"""Globs as uwsgi-reload reads them: ``*`` and ``?`` stay inside one path segment and
match dot-names too; ``**`` as a whole segment matches any number of folders. Pure."""

from __future__ import annotations

import re

_GLOB_CHARS = re.compile(r"[*?\[]")


def has_glob(pattern: str) -> bool:
    return bool(_GLOB_CHARS.search(pattern))


def segment_regex(segment: str) -> str:
    out = []
    i = 0
    while i < len(segment):
        char = segment[i]
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            end = segment.find("]", i + 2)
            if end == -1:
                out.append(re.escape(char))
            else:
                body = segment[i + 1 : end]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = end
        else:
            out.append(re.escape(char))
        i += 1
    return "".join(out)


def glob_regex(pattern: str) -> re.Pattern[str]:
    """Compile an absolute glob. ``*`` and ``?`` stay inside one path segment and match
    dot-names too; ``**`` as a whole segment matches zero or more segments. A pattern
    that names a folder also matches everything below it."""
    parts = pattern.split("/")
    out = []
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        if part == "**":
            out.append(".*" if last else "(?:[^/]+/)*")
            continue
        out.append(segment_regex(part))
        if not last:
            out.append("/")
    return re.compile("".join(out) + "(?:/.*)?")


def static_root(pattern: str) -> str:
    """The longest leading folder of an absolute glob that has no glob character."""
    parts = pattern.split("/")
    root = []
    for part in parts:
        if has_glob(part):
            break
        root.append(part)
    return "/".join(root) or "/"
