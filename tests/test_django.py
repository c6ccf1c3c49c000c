"""Django on real uWSGI with 2 workers: a project made by ``django-admin startproject``
(DEBUG on, default loaders, so the cached template loader is on), plus an app whose view
renders a template with a translated string and the worker's pid.

Runs with the Django installed next to the interpreter running pytest; for another
Django version run pytest from another venv (see the Makefile's ``test-django42``).
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import textwrap
import time
from importlib.util import find_spec
from pathlib import Path

import pytest
from servers import (
    BIN,
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
    pytest.mark.skipif(find_spec("django") is None, reason="Django is not installed"),
]

BODY = (
    "module = mysite.wsgi:application\n"
    "env = DJANGO_SETTINGS_MODULE=mysite.settings\n"
    "disable-logging = true\n"  # no request lines: a failure shows what uwsgi_reload said
)
TEMPLATE = "pages/templates/pages/home.html"
MO = "pages/locale/fr/LC_MESSAGES/django.mo"
VIEWS = """\
import os
import time

from django.shortcuts import render
from django.utils.translation import gettext


def home(request):
    time.sleep(float(request.GET.get("sleep", 0)))  # lets a test reach both workers
    context = {"pid": os.getpid(), "greeting": gettext("Hello"), "view": "VIEW"}
    return render(request, "pages/home.html", context)
"""
URLS = """\
from django.urls import path

from pages import views

urlpatterns = [path("", views.home)]
"""
APPLY_LINE = r"-> applied by django in every worker, no reload"


def mo_file(messages: dict[str, str]) -> bytes:
    """A GNU gettext catalog (what msgfmt writes), without the hash table."""
    catalog = {"": "Content-Type: text/plain; charset=UTF-8\n", **messages}
    pairs = sorted((msgid.encode(), msgstr.encode()) for msgid, msgstr in catalog.items())
    count = len(pairs)
    ids_at = 28  # after the 7-word header
    strs_at = ids_at + 8 * count
    data_at = strs_at + 8 * count
    table: list[int] = []
    data = b""
    for column in (0, 1):  # the msgid table, then the msgstr table: (length, offset)
        for pair in pairs:
            table += [len(pair[column]), data_at + len(data)]
            data += pair[column] + b"\0"
    header = struct.pack("<7I", 0x950412DE, 0, count, ids_at, strs_at, 0, data_at)
    return header + struct.pack(f"<{len(table)}I", *table) + data


@pytest.fixture(scope="module")
def made_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("django")
    subprocess.run([str(BIN / "django-admin"), "startproject", "mysite"], cwd=root, check=True)
    project = root / "mysite"
    write(project / "pages" / "__init__.py", "")
    write(project / "pages" / "views.py", VIEWS.replace("VIEW", "view-v1"))
    write(project / TEMPLATE, "template-v1 pid={{ pid }} greeting={{ greeting }} view={{ view }}")
    (project / MO).parent.mkdir(parents=True)
    (project / MO).write_bytes(mo_file({"Hello": "Bonjour-v1"}))
    write(project / "mysite" / "urls.py", URLS)
    settings = project / "mysite" / "settings.py"
    write(settings, settings.read_text() + '\nINSTALLED_APPS += ["pages"]\nLANGUAGE_CODE = "fr"\n')
    return project


@pytest.fixture
def project(made_project: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(made_project, tmp_path / "mysite"))


def start(uwsgi_server, project: Path) -> Server:
    server = uwsgi_server(BODY, cwd=project)
    line = server.wait_for_log(READY + ".*").group(0)
    assert "extensions: django" in line, server.explain("Django was not detected")
    server.wait_for_body("template-v1")
    return server


def test_files_are_what_djangos_reloader_watches_besides_modules(project: Path) -> None:
    """In one process: the file set is ``watched_files()`` minus module files, and
    ``handle`` reports what Django's receivers applied (templates, .mo, not .py)."""
    script = textwrap.dedent(
        f"""
        import django, os
        from uwsgi_reload.frameworks import django as django_support
        assert django_support.extension() is None, "settings are not configured yet"
        django.setup()
        from django.utils import autoreload
        extension = django_support.extension()
        watched = {{str(p) for p in extension.reloader.watched_files()}}
        modules = {{str(p) for p in autoreload.iter_all_python_module_files()}}
        files = set(extension.files())
        assert files == watched - modules, (sorted(files), sorted(watched - modules))
        template, mo = os.path.abspath({TEMPLATE!r}), os.path.abspath({MO!r})
        assert {{template, mo}} <= files, sorted(files)
        views = os.path.abspath("pages/views.py")
        handled = extension.handle([template, mo, views])
        assert handled == {{template, mo}}, handled
        """
    )
    run_in_project(project, script, {"DJANGO_SETTINGS_MODULE": "mysite.settings"})


def test_template_edit_is_applied_in_every_worker_without_reload(
    project, uwsgi_server, capsys, record_property
):
    server = start(uwsgi_server, project)
    before = both_workers(server)  # each worker's cached loader now holds template-v1
    assert_all(server, before, "template-v1")
    template = project / TEMPLATE
    saved = time.monotonic()
    write(template, template.read_text().replace("template-v1", "template-v2"))
    server.wait_for_body("template-v2", timeout=10)
    took = time.monotonic() - saved
    record_property("template_save_to_new_page_s", round(took, 3))  # kept under xdist
    with capsys.disabled():
        print(f"\n[django] template save -> new page: {took:.2f}s")
    server.wait_every_worker("template-v2", timeout=5)
    after = both_workers(server)
    assert set(after) == set(before), server.explain(f"worker pids {before} -> {after}")
    server.wait_for_log(r"modified .*pages/home\.html " + APPLY_LINE)
    server.holds(lambda: server.count(r"graceful reload") == 0, 3, "no reload for a template")
    assert took < 5, server.explain(f"new template after {took:.1f}s")


def test_template_saved_before_the_first_check_reaches_every_worker(project, uwsgi_server):
    """Django's files are found at the generation's first check (Django is set up after
    our import; the check is raised as soon as a worker serves): a save right at the
    start, before or just after that check, must reach workers that cached the old
    template."""
    server = uwsgi_server(BODY, period=3, cwd=project)
    server.wait_for_log(r"spawned uWSGI worker 2")
    assert_all(server, both_workers(server), "template-v1")
    template = project / TEMPLATE
    write(template, template.read_text().replace("template-v1", "template-early"))
    server.wait_until(
        lambda: all("template-early" in body for body in both_workers(server).values()),
        15,
        "the early save in both workers",
    )
    server.wait_for_log(r"modified .*pages/home\.html " + APPLY_LINE)
    assert server.count(r"graceful reload") == 0, server.explain("the template edit reloaded")


def test_mo_change_refreshes_translations_without_reload(project, uwsgi_server):
    server = start(uwsgi_server, project)
    before = both_workers(server)
    assert_all(server, before, "greeting=Bonjour-v1")
    (project / MO).write_bytes(mo_file({"Hello": "Bonjour-v2"}))
    server.wait_for_body("greeting=Bonjour-v2", timeout=10)
    server.wait_every_worker("greeting=Bonjour-v2", timeout=5)
    after = both_workers(server)
    assert set(after) == set(before), server.explain(f"worker pids {before} -> {after}")
    server.wait_for_log(r"modified .*django\.mo " + APPLY_LINE)
    server.holds(lambda: server.count(r"graceful reload") == 0, 3, "no reload for a .mo file")


def test_view_edit_reloads(project, uwsgi_server):
    server = start(uwsgi_server, project)
    before = both_workers(server)  # both workers imported the views after the fork
    write(project / "pages" / "views.py", VIEWS.replace("VIEW", "view-v2"))
    server.wait_for_body("view=view-v2", timeout=15)
    server.wait_for_log(r"modified .*pages/views\.py -> graceful reload")
    after = both_workers(server)
    assert_all(server, after, "view=view-v2")
    assert not set(after) & set(before), server.explain(f"worker pids {before} -> {after}")


def test_broken_views_keep_serving_then_the_fix_reloads(project, uwsgi_server):
    server = start(uwsgi_server, project)
    both_workers(server)
    views = project / "pages" / "views.py"
    write(views, VIEWS.replace("VIEW", "view-v2").replace("def home(request):", "def home(:"))
    server.wait_for_log(r"does not compile: .*pages/views\.py")
    status, body = server.get()
    assert status == 200 and "view=view-v1" in body, server.explain("old code not served")
    assert server.count(r"graceful reload") == 0, server.explain("a broken save reloaded")
    write(views, VIEWS.replace("VIEW", "view-v3"))
    server.wait_for_body("view=view-v3", timeout=15)
    server.wait_for_log(r"modified .*pages/views\.py -> graceful reload")


def test_broken_settings_then_fixed_recovers(project, uwsgi_server):
    server = start(uwsgi_server, project)
    settings = project / "mysite" / "settings.py"
    good = settings.read_text()
    write(settings, good + "TIME_ZONE = undefined_name  # compiles, fails when run\n")
    server.wait_for_log(r"modified .*mysite/settings\.py -> graceful reload")
    server.wait_until(lambda: server.get()[0] == 500, 15, "no app while settings are broken")
    server.wait_for_log(r"NameError: name 'undefined_name' is not defined")
    server.wait_for_log(r"a load failed; tracking the files its error named: .*settings\.py")
    write(settings, good.replace('LANGUAGE_CODE = "fr"', 'LANGUAGE_CODE = "en"'))
    server.wait_for_body("greeting=Hello", timeout=15)
    server.wait_for_log(GENERATION, count=3)
    server.holds(lambda: server.count(r"graceful reload") == 2, 3, "exactly two reloads")


def test_broken_urls_then_fixed_recovers(project, uwsgi_server):
    """The URLconf is imported at requests (until an import succeeds), not at load: the
    app loads and every request fails (Django's debug page too, as it resolves the URL).
    The fixed file is imported by the next request."""
    server = start(uwsgi_server, project)
    urls = project / "mysite" / "urls.py"
    write(urls, URLS + "undefined_name\n")
    server.wait_for_log(r"modified .*mysite/urls\.py -> graceful reload")
    server.wait_for_log(GENERATION, count=2)
    server.wait_until(lambda: server.get()[0] != 200, 15, "failing requests")
    server.wait_for_log(r"NameError: name 'undefined_name' is not defined")
    write(urls, URLS)
    server.wait_for_body("template-v1", timeout=15)


def test_gunicorn_reloads_on_template_and_mo_changes(project):
    """gunicorn's arbiter never imports Django: the workers report the folders Django
    watches, and a change there reloads (every worker then has a fresh template cache)."""
    from test_gunicorn import start_gunicorn

    env = {"DJANGO_SETTINGS_MODULE": "mysite.settings"}
    server = start_gunicorn(project, "mysite.wsgi:application", app=None, env=env)
    try:
        server.wait_for_log(r"uwsgi_reload: reloading on: mode graceful \(HUP\)")
        assert_all(server, both_workers(server), "template-v1")
        template = project / TEMPLATE
        write(template, template.read_text().replace("template-v1", "template-v2"))
        server.wait_until(
            lambda: all("template-v2" in b for b in both_workers(server).values()),
            15,
            "template-v2 from both workers",
        )
        server.wait_for_log(r"modified \S*pages/home\.html -> graceful reload \(HUP\)")
        (project / MO).write_bytes(mo_file({"Hello": "Bonjour-v2"}))
        server.wait_until(
            lambda: all("Bonjour-v2" in b for b in both_workers(server).values()),
            15,
            "Bonjour-v2 from both workers",
        )
        server.wait_for_log(r"modified \S*django\.mo -> graceful reload \(HUP\)")
        server.holds(lambda: server.count(r"-> graceful reload") == 2, 3, "exactly 2 reloads")
    finally:
        server.stop()


def test_warm_mode_keeps_django_in_the_master_and_replaces_the_workers(project, uwsgi_server):
    warm = (
        "lazy-apps = true\nforkbomb-delay = 0\nmaster-fifo = master.fifo\n"
        "shared-import = uwsgi_reload\n"
        "uwsgi-reload-mode = warm\nuwsgi-reload-fast-exit = true\n"
    )
    server = uwsgi_server(BODY + warm, cwd=project)
    server.wait_for_body("template-v1")
    server.wait_for_log(r"warm: \d+ library modules can stay in the master", timeout=60)
    write(project / "pages" / "views.py", VIEWS.replace("VIEW", "view-v2"))
    server.wait_for_log(r"warm: a graceful reload this time: the master learns", timeout=20)
    kept = server.wait_for_log(r"warm: the master keeps (\d+) library modules", timeout=20)
    assert int(kept.group(1)) > 100, server.explain("Django's modules kept by the master")
    assert_all(server, both_workers(server), "view=view-v2")
    write(project / "pages" / "views.py", VIEWS.replace("VIEW", "view-v3"))
    server.wait_for_log(r"modified .*pages/views\.py -> warm reload", timeout=20)
    server.wait_every_worker("view=view-v3", timeout=20)
    # the workers set Django up themselves: translations and templates work
    write(project / TEMPLATE, "template-v2 pid={{ pid }} greeting={{ greeting }} view={{ view }}")
    server.wait_every_worker("template-v2", timeout=20)
    assert_all(server, both_workers(server), "greeting=Bonjour-v1 view=view-v3")
    assert server.count(r"gracefully \(RE\)spawned uWSGI master") == 1, server.explain("")
