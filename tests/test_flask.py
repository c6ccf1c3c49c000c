"""Flask on real uWSGI with 2 workers and no extra configuration: ``Flask(__name__)``,
``render_template``, a ``templates/`` folder, and a blueprint with its own template
folder. The pages show the worker's pid, so a test sees what each worker serves.

Runs with the Flask installed next to the interpreter running pytest; ``make
test-flask23`` runs it on Flask 2.3 in a second venv.
"""

from __future__ import annotations

import shutil
import textwrap
import time
from importlib.util import find_spec
from pathlib import Path

import pytest
from servers import (
    GENERATION,
    READY,
    Server,
    assert_all,
    both_workers,
    run_in_project,
    write,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(find_spec("flask") is None, reason="Flask is not installed"),
]

BODY = "module = app:app\ndisable-logging = true\n"
APP = """\
import os
import time

from flask import Flask, render_template, request

from shop import shop

app = Flask(__name__)
app.register_blueprint(shop, url_prefix="/shop")


@app.route("/")
def home():
    time.sleep(float(request.args.get("sleep", 0)))  # lets a test reach both workers
    return render_template("home.html", pid=os.getpid(), view="VIEW")
"""
SHOP = """\
import os
import time

from flask import Blueprint, render_template, request

shop = Blueprint("shop", __name__, template_folder="templates")


@shop.route("/")
def item():
    time.sleep(float(request.args.get("sleep", 0)))
    return render_template("shop/item.html", pid=os.getpid())
"""
HOME = "templates/home.html"
ITEM = "shop/templates/shop/item.html"
APPLY_LINE = r"-> applied by flask in every worker, no reload"


@pytest.fixture(scope="module")
def made_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = tmp_path_factory.mktemp("flask") / "site"
    write(project / "app.py", APP.replace("VIEW", "view-v1"))
    write(project / "shop" / "__init__.py", SHOP)
    write(project / HOME, "home-v1 pid={{ pid }} view={{ view }}")
    write(project / ITEM, "item-v1 pid={{ pid }}")
    return project


@pytest.fixture
def project(made_project: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(made_project, tmp_path / "site"))


def start(uwsgi_server, project: Path) -> Server:
    server = uwsgi_server(BODY, cwd=project)
    line = server.wait_for_log(READY + ".*").group(0)
    assert "extensions: flask" in line, server.explain("Flask was not detected")
    server.wait_for_body("home-v1")
    return server


def edit(path: Path, old: str, new: str) -> float:
    write(path, path.read_text().replace(old, new))
    return time.monotonic()


def test_extension_finds_the_apps_folders_and_empties_their_caches(project: Path) -> None:
    """In one process: the template folders are the app's and the blueprint's, a
    template change is handled (a .py file there is not), and handling empties the
    Jinja cache, so a render reads the new file. Also: an app reachable only through a
    wrapper is found, and Flask's ``current_app`` proxy does not break the search."""
    script = textwrap.dedent(
        f"""
        import os, sys
        from uwsgi_reload.frameworks import discover
        assert discover() == [], "no Flask imported yet"
        from app import app
        [extension] = discover()
        assert extension.name == "flask" and extension.apps == [app], extension.apps
        home, item = os.path.abspath({HOME!r}), os.path.abspath({ITEM!r})
        assert extension.template_folders == [
            os.path.abspath("templates"), os.path.abspath("shop/templates")
        ], extension.template_folders
        assert {{home, item}} <= set(extension.files()), extension.files()
        client = app.test_client()
        assert b"home-v1" in client.get("/").data
        with open(home, "w") as f:
            f.write("home-v2")
        assert b"home-v1" in client.get("/").data, "Jinja's cache serves the old page"
        views = os.path.abspath("shop/templates/helpers.py")
        assert extension.handle([home, views, os.path.abspath("app.py")]) == {{home}}
        assert b"home-v2" in client.get("/").data, "the cache was not emptied"

        from uwsgi_reload.frameworks import flask as flask_support
        from werkzeug.middleware.proxy_fix import ProxyFix
        import flask
        hidden = flask.Flask("hidden")
        wrapped = ProxyFix(hidden)
        # no app in these namespaces: the garbage collector's objects are searched
        found = flask_support.find_apps({{"flask": sys.modules["flask"]}})
        assert {{id(a) for a in found}} == {{id(app), id(hidden)}}, found
        """
    )
    run_in_project(project, script)


def test_template_edits_are_applied_in_every_worker_without_reload(
    project, uwsgi_server, capsys, record_property
):
    server = start(uwsgi_server, project)
    pids = set()
    for page, template, old, new in [
        ("/", HOME, "home-v1", "home-v2"),
        ("/shop/", ITEM, "item-v1", "item-v2"),  # the blueprint's own folder
    ]:
        before = both_workers(server, path=page)  # each worker's Jinja cache holds the page
        assert_all(server, before, old)
        pids |= set(before)
        saved = edit(project / template, old, new)
        server.wait_for_body(new, timeout=10, path=page)
        took = time.monotonic() - saved
        record_property(f"{new}_save_to_new_page_s", round(took, 3))
        with capsys.disabled():
            print(f"\n[flask] template {template} save -> new page: {took:.2f}s")
        server.wait_every_worker(new, timeout=5, path=page)
        after = both_workers(server, path=page)
        assert set(after) == set(before), server.explain(f"worker pids {before} -> {after}")
        name = template.rsplit("/", 1)[-1].replace(".", r"\.")
        server.wait_for_log(rf"modified \S*{name} " + APPLY_LINE)
        assert took < 5, server.explain(f"new template after {took:.1f}s")
    assert len(pids) == 2, server.explain(f"pages came from {pids}")
    assert server.count(r"graceful reload") == 0, server.explain("a template edit reloaded")


def test_with_lazy_apps_a_template_edit_reloads(project, uwsgi_server):
    """Each lazy-apps worker loads the app itself and no signal reaches every worker's
    cache: the change reloads (as the README says) instead of leaving stale workers."""
    server = uwsgi_server(BODY + "lazy-apps = true\n", cwd=project)
    server.wait_for_log(READY + r".*extensions: flask")
    assert_all(server, both_workers(server), "home-v1")
    edit(project / HOME, "home-v1", "home-v2")
    server.wait_for_log(r"modified \S*home\.html -> graceful reload")
    server.wait_until(
        lambda: all("home-v2" in body for body in both_workers(server).values()),
        15,
        "home-v2 from both workers",
    )


def test_view_edit_reloads(project, uwsgi_server):
    server = start(uwsgi_server, project)
    before = both_workers(server)
    saved = edit(project / "app.py", "view-v1", "view-v2")
    server.wait_for_body("view=view-v2", timeout=15)
    took = time.monotonic() - saved
    print(f"[flask] view save -> new page: {took:.2f}s")
    server.wait_for_log(r"modified \S*app\.py -> graceful reload")
    after = both_workers(server)
    assert_all(server, after, "view=view-v2")
    assert not set(after) & set(before), server.explain(f"worker pids {before} -> {after}")


def test_broken_view_keeps_serving_then_the_fix_reloads(project, uwsgi_server):
    server = start(uwsgi_server, project)
    app = project / "app.py"
    write(app, APP.replace("VIEW", "view-v2").replace("def home():", "def home(:"))
    server.wait_for_log(r"does not compile: \S*app\.py")
    status, body = server.get()
    assert status == 200 and "view=view-v1" in body, server.explain("old code not served")
    assert server.count(r"graceful reload") == 0, server.explain("a broken save reloaded")
    write(app, APP.replace("VIEW", "view-v3"))
    server.wait_for_body("view=view-v3", timeout=15)
    server.wait_for_log(r"modified \S*app\.py -> graceful reload")


def test_view_failing_at_import_recovers_when_fixed(project, uwsgi_server):
    """Compiles, fails when run: uWSGI runs without the app (no Flask app in the
    workers: no extension), and saving the fix brings it back with Flask support."""
    server = start(uwsgi_server, project)
    app = project / "app.py"
    write(app, APP.replace("VIEW", "view-v2") + "undefined_name\n")
    server.wait_for_log(r"modified \S*app\.py -> graceful reload")
    server.wait_until(lambda: server.get()[0] != 200, 15, "no app while app.py is broken")
    server.wait_for_log(r"NameError: name 'undefined_name' is not defined")
    write(app, APP.replace("VIEW", "view-v3"))
    server.wait_for_body("view=view-v3", timeout=15)
    server.wait_for_log(GENERATION, count=3)
    edit(project / HOME, "home-v1", "home-v2")  # the recovered app's templates are tracked
    server.wait_for_body("home-v2", timeout=10)
    server.wait_for_log(r"modified \S*home\.html " + APPLY_LINE)


def test_gunicorn_reloads_on_template_changes(project):
    """gunicorn's arbiter never imports Flask: the workers report the template folders,
    and a change there reloads (every new worker starts with an empty Jinja cache)."""
    from test_gunicorn import start_gunicorn

    server = start_gunicorn(project, "app:app", app=None)
    try:
        server.wait_for_log(r"uwsgi_reload: reloading on: mode graceful \(HUP\)")
        for page, template, old, new in [
            ("/", HOME, "home-v1", "home-v2"),
            ("/shop/", ITEM, "item-v1", "item-v2"),
        ]:
            assert_all(server, both_workers(server, path=page), old)
            edit(project / template, old, new)
            server.wait_until(
                lambda page=page, new=new: all(
                    new in body for body in both_workers(server, path=page).values()
                ),
                15,
                f"{new} from both workers",
            )
        server.wait_for_log(r"modified \S*home\.html -> graceful reload \(HUP\)")
        server.wait_for_log(r"modified \S*item\.html -> graceful reload \(HUP\)")
        assert server.count(r"-> graceful reload") == 2, server.explain("expected 2 reloads")
    finally:
        server.stop()
