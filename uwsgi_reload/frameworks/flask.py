"""Flask: the template folders of the app and its blueprints (what its Jinja loader
searches), and a template change applied without a restart by emptying the Jinja
template cache of each app.

Flask 2.3 to 3.1: each app and blueprint with a ``template_folder`` has a ``jinja_loader``
(a Jinja ``FileSystemLoader``), and the app's environment searches the app's loader, then
the blueprints' (``iter_blueprints()``). Jinja keeps every compiled template in
``jinja_env.cache`` and, unless ``TEMPLATES_AUTO_RELOAD`` (on with debug) is set, never
looks at the file again: each worker holds its own cache, so the host empties it in
every worker (the same way the Django support resets Django's loaders).

Imported only when the app imported Flask (see :func:`uwsgi_reload.frameworks.discover`);
it never imports Flask itself, and looks at the apps the app made.

How the apps are found: the module-level ``Flask`` instances in ``sys.modules``. That is
where ``app = Flask(__name__)`` and ``app = create_app()`` in a ``wsgi.py`` put them,
whatever uWSGI option loaded them (``module``, ``wsgi-file``, ``mount``, which do not
tell us the callable's module in the same way), and it covers several apps in one
process. An app only reachable through a wrapper (``application = ProxyFix(create_app())``)
is not in a module namespace; for that case, and only when the namespaces hold no app,
the objects the garbage collector tracks are searched once. Types are compared with
``type()``, never ``isinstance``: Flask's ``current_app`` is a proxy that would raise
outside an app context.
"""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Iterable, Iterator
from typing import Any

from uwsgi_reload.core import sources
from uwsgi_reload.frameworks import files_matching

EVERY_FILE = "**/*"


def flask_class() -> type | None:
    """The ``Flask`` class the app imported, or None (never imports Flask)."""
    for name in ("flask.app", "flask"):
        cls = getattr(sys.modules.get(name), "Flask", None)
        if isinstance(cls, type):
            return cls
    return None


def module_level_apps(cls: type, modules: dict[str, Any]) -> list[Any]:
    """The instances of ``cls`` (or a subclass) bound to a name at module level."""
    found: dict[int, Any] = {}
    for module in list(modules.values()):
        namespace = getattr(module, "__dict__", None)
        if not isinstance(namespace, dict):
            continue
        for value in list(namespace.values()):
            if issubclass(type(value), cls):
                found.setdefault(id(value), value)
    return list(found.values())


def tracked_apps(cls: type) -> list[Any]:
    """Every instance of ``cls`` the garbage collector knows (slow: the fallback)."""
    return [value for value in gc.get_objects() if issubclass(type(value), cls)]


def find_apps(modules: dict[str, Any] | None = None) -> list[Any]:
    """The Flask apps this process holds: module-level first, then any (see above)."""
    cls = flask_class()
    if cls is None:
        return []
    return module_level_apps(cls, sys.modules if modules is None else modules) or tracked_apps(cls)


def loader_folders(loader: Any, seen: set[int] | None = None) -> Iterator[str]:
    """The folders a Jinja loader reads templates from: ``FileSystemLoader`` paths,
    the loaders inside ``ChoiceLoader`` and ``PrefixLoader``, the folder of a
    ``PackageLoader`` installed as files, and Flask's dispatching loader (the app's and
    its blueprints' loaders). Loaders of other kinds (functions, dicts) have none."""
    seen = set() if seen is None else seen
    if loader is None or id(loader) in seen:
        return
    seen.add(id(loader))
    searchpath = getattr(loader, "searchpath", None)
    if isinstance(searchpath, (list, tuple)):
        yield from (os.fspath(path) for path in searchpath)
    package_root = getattr(loader, "_template_root", None)  # PackageLoader, Jinja 3
    if isinstance(package_root, str):
        yield package_root
    for inner in getattr(loader, "loaders", None) or ():  # ChoiceLoader
        yield from loader_folders(inner, seen)
    mapping = getattr(loader, "mapping", None)  # PrefixLoader
    if isinstance(mapping, dict):
        for inner in mapping.values():
            yield from loader_folders(inner, seen)
    app = getattr(loader, "app", None)  # flask.templating.DispatchingJinjaLoader
    if app is not None and callable(getattr(app, "iter_blueprints", None)):
        yield from app_folders(app, seen)


def app_folders(app: Any, seen: set[int] | None = None) -> Iterator[str]:
    """The template folders of a Flask app: its own, its blueprints' (nested ones
    included: Flask registers them on the app too), and whatever loader its Jinja
    environment was given, if the environment exists yet."""
    seen = set() if seen is None else seen
    yield from loader_folders(app.jinja_loader, seen)
    for blueprint in app.iter_blueprints():
        yield from loader_folders(blueprint.jinja_loader, seen)
    env = app.__dict__.get("jinja_env")  # a cached property: do not create it
    if env is not None:
        yield from loader_folders(env.loader, seen)


def clear_template_cache(app: Any) -> None:
    """Forget every compiled template of ``app``: the next render reads the file."""
    env = app.__dict__.get("jinja_env")
    cache = getattr(env, "cache", None)
    if cache is not None:  # None: never created, or cache_size 0
        cache.clear()


def extension() -> FlaskExtension | None:
    """The Flask extension, or None when this process holds no Flask app (for example
    after a failed load)."""
    apps = find_apps()
    return FlaskExtension(apps) if apps else None


def under(path: str, folders: Iterable[str]) -> bool:
    return any(path.startswith(folder + os.sep) for folder in folders)


class FlaskExtension:
    name = "flask"

    def __init__(self, apps: list[Any]) -> None:
        self.apps = apps
        folders: dict[str, None] = {}
        for app in apps:
            for folder in app_folders(app):
                folder = os.path.abspath(folder)
                # templates of installed extensions do not change while you develop
                if not sources.in_system_dir(folder):
                    folders.setdefault(folder)
        self.template_folders = list(folders)

    def watched(self) -> tuple[list[str], list[tuple[str, str]]]:
        """Every file under the template folders, as (folder, glob) pairs (also plain
        data for a host whose checks run in another process: gunicorn's arbiter)."""
        return [], [(folder, EVERY_FILE) for folder in self.template_folders]

    def files(self) -> list[str]:
        return files_matching(*self.watched())

    def folders(self) -> list[str]:
        return [folder for folder in self.template_folders if os.path.isdir(folder)]

    def handle(self, paths: list[str]) -> set[str]:
        """A change under a template folder (added, modified or deleted; a ``.py`` file
        there excepted, as Django does) empties the template cache of every app."""
        handled = {
            path
            for path in paths
            if not path.endswith(".py") and under(path, self.template_folders)
        }
        if handled:
            for app in self.apps:
                clear_template_cache(app)
        return handled
