"""``uwsgi-reload-browser = true``: open pages follow the server.

Pure tests of the middleware, then real servers (uWSGI graceful and chain, gunicorn,
Django, Flask) with pages open in a real headless Chromium driven by Selenium: the test only
reads the page's DOM, never acts on the page. ``make test-browser`` installs Chromium,
chromedriver and Selenium; without them the browser tests are skipped, saying so.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import statistics
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from servers import BIN, GENERATION, READY, UWSGI, Server, free_port, plain_uwsgi_ini, write

from uwsgi_reload.browser import middleware, state
from uwsgi_reload.browser.middleware import BrowserMiddleware

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROME_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1000,620",
)
SCREENSHOT = Path(__file__).parent.parent / "docs" / "browser-overlay.png"

HTML_APP = """\
import greeting

def application(environ, start_response):
    body = (
        "<!doctype html><html><head><title>demo</title></head><body>"
        f"<h1>Greeting</h1><p id='text'>{greeting.TEXT}</p></body></html>"
    ).encode()
    headers = [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(body)))]
    headers += getattr(greeting, "HEADERS", [])
    start_response("200 OK", headers)
    return [body]
"""

CHAIN = (
    "lazy-apps = true\nmaster-fifo = master.fifo\nforkbomb-delay = 0\nuwsgi-reload-mode = chain\n"
)


def make_html_app(folder: Path, text: str = "v1", extra: str = "") -> None:
    write(folder / "app.py", HTML_APP)
    write(folder / "greeting.py", f"TEXT = {text!r}\n{extra}")


# --------------------------------------------------------------------------- pure


def simple_app(status="200 OK", headers=None, body=(b"<html><body>hi</body></html>",)):
    headers = headers if headers is not None else [("Content-Type", "text/html")]

    def app(environ, start_response):
        start_response(status, list(headers))
        return body

    return app


def call(app, path="/", script_name="") -> tuple[str, list, bytes]:
    seen: dict = {}

    def start_response(status, headers, exc_info=None):
        seen.update(status=status, headers=headers)
        return lambda data: None

    result = app({"PATH_INFO": path, "SCRIPT_NAME": script_name}, start_response)
    body = b"".join(result)
    return seen["status"], seen["headers"], body


@pytest.fixture
def state_file(tmp_path: Path) -> str:
    path = state.state_path(str(tmp_path))
    state.write(path, {"key": "k", "generation": "g1", "held": []})
    return path


def test_html_page_gets_the_script_before_body_end_with_content_length_fixed(state_file):
    body = b"<html><BODY>hi</BODY></html>"
    app = simple_app(headers=[("Content-Type", "text/html; charset=utf-8")], body=[body])
    _, headers, page = call(BrowserMiddleware(app, state_file), script_name="/mount")
    tag = (
        b'<script src="/mount/__uwsgi_reload__/client.js" '
        b'data-state="/mount/__uwsgi_reload__/state" data-generation="g1"></script>'
    )
    assert page == b"<html><BODY>hi" + tag + b"</BODY></html>"
    assert dict(headers)["Content-Length"] == str(len(page))


@pytest.mark.parametrize(
    "status, headers, body",
    [
        ("404 Not Found", [("Content-Type", "text/html")], [b"<body>x</body>"]),
        ("200 OK", [("Content-Type", "application/json")], [b"<body>x</body>"]),
        (
            "200 OK",
            [("Content-Type", "text/html"), ("Content-Encoding", "gzip")],
            [b"<body>x</body>"],
        ),
        ("200 OK", [("Content-Type", "text/html")], iter([b"<body>", b"stream</body>"])),
        ("200 OK", [("Content-Type", "text/html")], [b"no body end tag"]),
    ],
    ids=["not-200", "not-html", "compressed", "streaming", "no-body-tag"],
)
def test_other_responses_pass_unchanged(state_file, status, headers, body):
    expected = b"".join(list(body)) if isinstance(body, list) else b"<body>stream</body>"
    got_status, got_headers, page = call(
        BrowserMiddleware(simple_app(status, headers, body), state_file)
    )
    assert (got_status, got_headers, page) == (status, headers, expected)


def test_streaming_response_keeps_its_iterable_and_close():
    closed = []

    class Stream:
        def __iter__(self):
            yield b"<body>"
            yield b"</body>"

        def close(self):
            closed.append(True)

    stream = Stream()

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/html")])
        return stream

    result = BrowserMiddleware(app, "/nonexistent")({"PATH_INFO": "/"}, lambda *a: None)
    assert result is stream


def test_csp_nonce_is_used_for_the_script_tag(state_file):
    csp = "default-src 'self'; script-src 'nonce-r4nd0m+/=' 'strict-dynamic'"
    app = simple_app(headers=[("Content-Type", "text/html"), ("Content-Security-Policy", csp)])
    _, _, page = call(BrowserMiddleware(app, state_file))
    assert b'nonce="r4nd0m+/="' in page
    assert middleware.script_nonce([("Content-Security-Policy", "default-src 'nonce-a1'")]) == "a1"
    assert middleware.script_nonce([("Content-Security-Policy", "script-src 'self'")]) == ""


def test_own_endpoints_answer_at_once_before_the_app(state_file):
    def app(environ, start_response):
        raise AssertionError("the app must not see our paths")

    wrapped = BrowserMiddleware(app, state_file)
    status, headers, body = call(wrapped, "/__uwsgi_reload__/state")
    assert status == "200 OK" and body == b'{"generation": "g1", "held": []}'
    assert ("Cache-Control", "no-store") in headers
    status, _, body = call(wrapped, "/__uwsgi_reload__/client.js")
    assert status == "200 OK" and b"location.reload()" in body
    assert call(wrapped, "/__uwsgi_reload__/nothing")[0] == "404 Not Found"


def test_held_problem_names_file_line_and_message(tmp_path):
    broken = tmp_path / "views.py"
    broken.write_text("def f(:\n")
    [problem] = state.held_problems({str(broken): object()}, {})
    assert (problem["file"], problem["line"]) == (str(broken), 1), problem
    assert problem["message"].startswith("SyntaxError: "), problem
    ini = str(tmp_path / "uwsgi.ini")
    checks = {ini: lambda: f"{ini}:7: uwsgi-reload-period = 'x' is not allowed"}
    assert state.held_problems({ini: object()}, checks) == [
        {"file": ini, "line": 7, "message": "uwsgi-reload-period = 'x' is not allowed"}
    ]


# --------------------------------------------------------------------------- browser


@pytest.fixture
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable]:
    """A function that opens a new headless Chromium; all are quit at teardown."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.path.exists(p)]
    if missing:
        pytest.skip(f"{', '.join(missing)} missing: `make test-browser` installs them (root)")
    webdriver = pytest.importorskip(
        "selenium.webdriver", reason="selenium missing: `make test-browser` installs it"
    )
    drivers = []

    def open_browser():
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in CHROME_FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium')}")
        service = webdriver.ChromeService(executable_path=CHROMEDRIVER)
        driver = webdriver.Chrome(options=options, service=service)
        driver.set_page_load_timeout(30)
        drivers.append(driver)
        return driver

    yield open_browser
    for driver in drivers:
        driver.quit()


def page_text(driver, element_id: str = "text") -> str | None:
    """The text of the element, or None while the page is being replaced."""
    from selenium.common.exceptions import WebDriverException

    try:
        return driver.execute_script(
            "var e = document.getElementById(arguments[0]); return e ? e.textContent : null;",
            element_id,
        )
    except WebDriverException:
        return None


def overlay_text(driver) -> str | None:
    return page_text(driver, "uwsgi-reload-overlay")


def wait_page(server: Server, driver, predicate: Callable[[], bool], what: str, timeout=20.0):
    return server.wait_until(predicate, timeout, f"the page in the browser: {what}")


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for server in started:
        server.stop()


def start_uwsgi_browser(servers: list, folder: Path, body: str) -> Server:
    port = free_port()
    ini = folder / "uwsgi.ini"
    ini.write_text(
        plain_uwsgi_ini(
            port,
            "import = uwsgi_reload\nuwsgi-reload-delay = 0.1\ndie-on-term = true\n"
            "disable-logging = true\nuwsgi-reload-browser = true\n" + body,
        )
    )
    server = Server([UWSGI, "--ini", str(ini)], folder, port)
    servers.append(server)
    server.wait_for_log(READY)
    return server


def follow_saves(server: Server, driver, folder: Path, generations: int = 1) -> None:
    """The page open in ``driver`` shows v2 after the save, by itself; what it showed
    meanwhile was only ever the old or the new page (never an error page)."""
    driver.get(server.url + "/")
    assert page_text(driver) == "v1", server.explain(f"page: {driver.page_source[:300]}")
    seen: set = set()

    def shows_v2() -> bool:
        text = page_text(driver)
        seen.add(text)
        return text == "v2"

    write(folder / "greeting.py", "TEXT = 'v2'\n")
    wait_page(server, driver, shows_v2, "shows v2")
    assert seen <= {"v1", "v2", None}, server.explain(f"the page showed {seen}")
    assert driver.execute_script("return performance.getEntriesByType('navigation')[0].type") == (
        "reload"
    )


@pytest.mark.integration
def test_open_page_refreshes_after_a_graceful_reload(tmp_path, servers, chromium):
    make_html_app(tmp_path)
    server = start_uwsgi_browser(servers, tmp_path, "wsgi-file = app.py\n")
    follow_saves(server, chromium(), tmp_path)


@pytest.mark.integration
def test_open_page_refreshes_after_a_chain_reload(tmp_path, servers, chromium):
    make_html_app(tmp_path)
    server = start_uwsgi_browser(servers, tmp_path, "wsgi-file = app.py\n" + CHAIN)
    driver = chromium()
    follow_saves(server, driver, tmp_path)
    server.wait_for_log(r"modified .*greeting\.py -> chain reload")
    # refreshed once the chain had finished: no worker serves v1 any more
    bodies = {server.get()[1] for _ in range(10)}
    assert all("v2" in body for body in bodies), server.explain(f"served {bodies}")


@pytest.mark.integration
def test_held_save_shows_an_overlay_and_the_fix_clears_it(tmp_path, servers, chromium):
    make_html_app(tmp_path)
    server = start_uwsgi_browser(servers, tmp_path, "wsgi-file = app.py\n")
    driver = chromium()
    driver.get(server.url + "/")
    assert page_text(driver) == "v1"
    write(tmp_path / "greeting.py", "TEXT = 'v2\n")
    wait_page(server, driver, lambda: "greeting.py:1" in (overlay_text(driver) or ""), "overlay")
    overlay = overlay_text(driver)
    assert str(tmp_path / "greeting.py") + ":1" in overlay, overlay
    assert "SyntaxError" in overlay, overlay
    assert page_text(driver) == "v1", "the old page stays under the overlay"
    driver.save_screenshot(str(tmp_path / "overlay.png"))
    if os.environ.get("UPDATE_SCREENSHOT"):  # the README's picture
        SCREENSHOT.parent.mkdir(exist_ok=True)
        shutil.copy(tmp_path / "overlay.png", SCREENSHOT)
    server.holds(lambda: page_text(driver) == "v1", 1.5, "the page stays on v1 while held")
    write(tmp_path / "greeting.py", "TEXT = 'v3'\n")
    wait_page(server, driver, lambda: page_text(driver) == "v3", "shows v3")
    wait_page(server, driver, lambda: overlay_text(driver) is None, "overlay gone")


@pytest.mark.integration
def test_bad_ini_edit_shows_in_the_overlay(tmp_path, servers, chromium):
    make_html_app(tmp_path)
    server = start_uwsgi_browser(servers, tmp_path, "wsgi-file = app.py\n")
    driver = chromium()
    driver.get(server.url + "/")
    ini = tmp_path / "uwsgi.ini"
    good = ini.read_text()
    ini.write_text(good + "uwsgi-reload-period = fast\n")
    line_no = len(good.splitlines()) + 1
    wait_page(server, driver, lambda: "uwsgi.ini" in (overlay_text(driver) or ""), "overlay")
    overlay = overlay_text(driver)
    assert f"{ini}:{line_no}" in overlay and "uwsgi-reload-period" in overlay, overlay
    ini.write_text(good)
    wait_page(server, driver, lambda: overlay_text(driver) is None, "overlay gone after the fix")


# uWSGI's log with the time (µs) the master read each line: when a reload began, when
# the master asked each old worker to stop and when it was gone. (log-encoder needs the
# log master, which it turns on.)
TIMED_LOG = "log-encoder = format ${micros} ${msgnl}\n"
RELOAD_BEGINS = {
    "graceful": r"\.\.\.gracefully killing workers\.\.\.",
    "chain": r"chain reload starting",
}
ASKED_TO_STOP = r"Gracefully killing worker (\d+) "
GONE = r"worker (\d+) (?:buried after|killed successfully)"
TABS = 20


@dataclass
class TimedReload:
    new_code: float  # from the save to the first response with the new text
    span: float  # from the reload's start to the last old worker gone
    held: float  # the longest an old worker took to go once asked to stop


def timed_log(server: Server) -> list[tuple[float, str]]:
    return [
        (int(found.group(1)) / 1e6, found.group(2))
        for found in re.finditer(r"^(\d{16}) (.*)$", server.log(), re.MULTILINE)
    ]


def old_workers_gone(server: Server, mode: str, reload_number: int) -> tuple[float, float]:
    """(span, held) of the server's ``reload_number``-th reload, read from its log once
    both old workers are gone (see TimedReload)."""
    found: list[float] = []

    def measured() -> bool:
        lines = timed_log(server)
        begins = [i for i, (_, text) in enumerate(lines) if re.search(RELOAD_BEGINS[mode], text)]
        if len(begins) < reload_number:
            return False
        begin = begins[reload_number - 1]
        end = begins[reload_number] if len(begins) > reload_number else len(lines)
        asked: dict[str, float] = {}
        gone: dict[str, float] = {}
        for at, text in lines[begin:end]:
            if match := re.search(ASKED_TO_STOP, text):
                asked[match.group(1)] = at
            elif (match := re.search(GONE, text)) and match.group(1) in asked:
                gone[match.group(1)] = at
        if len(gone) < 2:
            return False
        found[:] = [
            max(gone.values()) - lines[begin][0],
            max(gone[worker] - asked[worker] for worker in gone),
        ]
        return True

    server.wait_until(measured, 20, f"reload {reload_number} to begin and its 2 old workers to go")
    return found[0], found[1]


def timed_reload(server: Server, mode: str, reload_number: int) -> TimedReload:
    """Save ``v<reload_number>`` and time the reload, once the new code had its first
    check."""
    generations = server.count(GENERATION)
    saved = time.monotonic()
    write(server.cwd / "greeting.py", f"TEXT = 'v{reload_number}'\n")
    server.wait_for_body(f"v{reload_number}", timeout=20)
    new_code = time.monotonic() - saved
    server.wait_for_log(GENERATION, count=generations + 1, timeout=20)
    return TimedReload(new_code, *old_workers_gone(server, mode, reload_number))


def every_tab_shows(server: Server, driver, handles: list[str], text: str) -> None:
    def shown() -> bool:
        for handle in handles:
            driver.switch_to.window(handle)
            if page_text(driver) != text:
                return False
        return True

    wait_page(server, driver, shown, f"each of the {len(handles)} tabs shows {text}")


def median_of(reloads: list[TimedReload], field: str) -> float:
    return statistics.median(getattr(reload, field) for reload in reloads)


def summary(reloads: list[TimedReload]) -> str:
    return (
        f"save -> new code {median_of(reloads, 'new_code'):.2f}s, reload start -> "
        f"old workers gone {median_of(reloads, 'span'):.3f}s, longest an old worker took "
        f"to go {median_of(reloads, 'held'):.3f}s"
    )


@pytest.mark.integration
@pytest.mark.skipif(
    not os.environ.get("RELOAD_TEST_TABS"),
    reason="20 tabs keep both cores busy for half a minute, which would slow the timed "
    "tests beside it in `make test`: `make test-browser` runs it (RELOAD_TEST_TABS=1)",
)
@pytest.mark.parametrize("mode", ["graceful", "chain"])
def test_twenty_open_tabs_hold_no_worker(tmp_path, servers, chromium, mode, capsys):
    """No worker is held by the open pages. Two servers, reloaded alternately under the
    same Chromium on the same cores: 20 tabs poll one, none looks at the other. An old
    worker of the first must take no longer to go, once the master asked it to stop,
    than one of the second: a request held by a tab would keep it. (For a graceful
    reload that is the time from the reload's start to the last old worker buried; a
    chain reload also waits for each new worker to load the app, which only CPU slows.)
    The reloads before Chromium started show what its CPU costs everything."""
    started = {}
    for name in ("tabs", "quiet"):
        make_html_app(tmp_path / name, "v0")
        body = "wsgi-file = app.py\n" + TIMED_LOG + (CHAIN if mode == "chain" else "")
        started[name] = start_uwsgi_browser(servers, tmp_path / name, body)
        started[name].wait_for_body("v0")
    watched, quiet = started["tabs"], started["quiet"]
    before: list[TimedReload] = []
    for number in (1, 2):
        for server in (watched, quiet):
            before.append(timed_reload(server, mode, number))
    driver = chromium()
    tabs = []
    for index in range(TABS):
        if index:
            driver.switch_to.new_window("tab")
        driver.get(watched.url + "/")
        tabs.append(driver.current_window_handle)
    every_tab_shows(watched, driver, tabs, "v2")
    during: dict[Server, list[TimedReload]] = {watched: [], quiet: []}
    for number in (3, 4, 5, 6):
        order = (quiet, watched) if number % 2 else (watched, quiet)
        for server in order:
            during[server].append(timed_reload(server, mode, number))
            if server is watched:  # each tab followed, by itself; their refresh is over
                every_tab_shows(watched, driver, tabs, f"v{number}")
    held = [round(reload.held, 3) for reload in during[watched]]
    held_quiet = [round(reload.held, 3) for reload in during[quiet]]
    figures = (
        f"\n[browser] {mode}, medians:\n"
        f"  no browser yet:               {summary(before)}\n"
        f"  {TABS} tabs open on this server:  {summary(during[watched])}\n"
        f"  the other server at that time: {summary(during[quiet])}\n"
        f"  longest an old worker took to go, each reload: {held} with tabs, "
        f"{held_quiet} without"
    )
    with capsys.disabled():
        print(figures)
    assert median_of(during[watched], "held") <= median_of(during[quiet], "held") + 0.3, (
        watched.explain(f"open tabs kept old workers from stopping: {figures}")
    )
    if mode == "graceful":
        assert median_of(during[watched], "span") <= median_of(during[quiet], "span") + 0.3, (
            watched.explain(f"open tabs delayed the reload: {figures}")
        )


def raw_get(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.integration
def test_off_by_default_responses_are_byte_identical(tmp_path, servers):
    make_html_app(tmp_path)
    variants = {
        "no uwsgi_reload": "",
        "key absent": "import = uwsgi_reload\n",
        "key false": "import = uwsgi_reload\nuwsgi-reload-browser = false\n",
        "key true": "import = uwsgi_reload\nuwsgi-reload-browser = true\n",
    }
    responses = {}
    for name, body in variants.items():
        port = free_port()
        ini = tmp_path / f"uwsgi-{port}.ini"
        ini.write_text(plain_uwsgi_ini(port, "wsgi-file = app.py\n" + body))
        server = Server([UWSGI, "--ini", str(ini)], tmp_path, port)
        servers.append(server)
        server.wait_for_body("v1")
        responses[name] = raw_get(port)
        server.stop()
    assert b"v1" in responses["no uwsgi_reload"]
    assert responses["key absent"] == responses["no uwsgi_reload"]
    assert responses["key false"] == responses["no uwsgi_reload"]
    assert b"__uwsgi_reload__/client.js" in responses["key true"]


@pytest.mark.integration
def test_csp_nonce_page_follows_a_save(tmp_path, servers, chromium):
    csp = "HEADERS = [('Content-Security-Policy', \"script-src 'nonce-Zm9vYmFy'\")]\n"
    make_html_app(tmp_path, extra=csp)
    server = start_uwsgi_browser(servers, tmp_path, "wsgi-file = app.py\n")
    assert 'nonce="Zm9vYmFy"' in server.get()[1], server.explain("no nonce on the script")
    driver = chromium()
    driver.get(server.url + "/")
    assert page_text(driver) == "v1"
    write(tmp_path / "greeting.py", "TEXT = 'v2'\n" + csp)
    wait_page(server, driver, lambda: page_text(driver) == "v2", "shows v2 under the CSP")


@pytest.mark.integration
def test_gunicorn_page_follows_a_save_and_shows_a_held_one(tmp_path, chromium):
    pytest.importorskip("gunicorn")
    from test_gunicorn import READY as GUNICORN_READY
    from test_gunicorn import start_gunicorn

    make_html_app(tmp_path)
    server = start_gunicorn(tmp_path, env={"UWSGI_RELOAD_BROWSER": "1"}, app="app:application")
    try:
        server.wait_for_log(GUNICORN_READY)
        server.wait_for_body("v1")
        driver = chromium()
        driver.get(server.url + "/")
        assert page_text(driver) == "v1"
        write(tmp_path / "greeting.py", "TEXT = 'v2'\n")
        wait_page(server, driver, lambda: page_text(driver) == "v2", "shows v2")
        write(tmp_path / "greeting.py", "TEXT = 'v3\n")
        wait_page(server, driver, lambda: "greeting.py:1" in (overlay_text(driver) or ""), "held")
        assert page_text(driver) == "v2"
        write(tmp_path / "greeting.py", "TEXT = 'v4'\n")
        wait_page(server, driver, lambda: page_text(driver) == "v4", "shows v4")
        wait_page(server, driver, lambda: overlay_text(driver) is None, "overlay gone")
    finally:
        server.stop()


DJANGO_TEMPLATE = (
    "<!doctype html><html><body><p id='text'>template-v1</p>"
    "<p id='view'>{{ view }}</p></body></html>"
)


@pytest.mark.integration
def test_django_template_applied_in_place_refreshes_the_page(tmp_path, servers, chromium):
    pytest.importorskip("django")
    from test_django import BODY, TEMPLATE, URLS, VIEWS

    subprocess.run([str(BIN / "django-admin"), "startproject", "mysite"], cwd=tmp_path, check=True)
    project = tmp_path / "mysite"
    write(project / "pages" / "__init__.py", "")
    write(project / "pages" / "views.py", VIEWS.replace("VIEW", "view-v1"))
    write(project / "mysite" / "urls.py", URLS)
    settings = project / "mysite" / "settings.py"
    write(settings, settings.read_text() + '\nINSTALLED_APPS += ["pages"]\n')
    write(project / TEMPLATE, DJANGO_TEMPLATE)
    port = free_port()
    ini = project / "uwsgi.ini"
    ini.write_text(
        plain_uwsgi_ini(
            port,
            "import = uwsgi_reload\nuwsgi-reload-delay = 0.1\ndie-on-term = true\n"
            "uwsgi-reload-browser = true\n" + BODY,
        )
    )
    server = Server([UWSGI, "--ini", str(ini)], project, port)
    servers.append(server)
    line = server.wait_for_log(READY + ".*").group(0)
    assert "extensions: django" in line, server.explain("Django was not detected")
    server.wait_for_body("template-v1")
    driver = chromium()
    driver.get(server.url + "/")
    assert page_text(driver) == "template-v1", driver.page_source[:500]
    write(project / TEMPLATE, DJANGO_TEMPLATE.replace("template-v1", "template-v2"))
    wait_page(server, driver, lambda: page_text(driver) == "template-v2", "template-v2")
    server.wait_for_log(r"applied by django in every worker, no reload")
    assert server.count(r"graceful reload") == 0, server.explain("the template edit reloaded")
    views = project / "pages" / "views.py"
    views.write_text(views.read_text().replace("view-v1", "view-v2"))
    wait_page(server, driver, lambda: page_text(driver, "view") == "view-v2", "view-v2")


FLASK_HOME = (
    "<!doctype html><html><body><p id='text'>home-v1</p><p id='view'>{{ view }}</p></body></html>"
)


@pytest.mark.integration
def test_flask_page_follows_template_and_view_saves_and_shows_a_held_one(
    tmp_path, servers, chromium
):
    """Flask (``module = app:app``, ``render_template``) under uWSGI: a template save is
    applied without a reload and the page refreshes; a view save reloads and the page
    refreshes; a broken view save shows the overlay over the old page; the fix clears it."""
    pytest.importorskip("flask")
    from test_flask import APP, HOME, SHOP

    app = tmp_path / "app.py"
    write(app, APP.replace("VIEW", "view-v1"))
    write(tmp_path / "shop" / "__init__.py", SHOP)
    write(tmp_path / HOME, FLASK_HOME)
    server = start_uwsgi_browser(servers, tmp_path, "module = app:app\n")
    line = server.wait_for_log(READY + ".*").group(0)
    assert "extensions: flask" in line, server.explain("Flask was not detected")
    driver = chromium()
    driver.get(server.url + "/")
    assert (page_text(driver), page_text(driver, "view")) == ("home-v1", "view-v1"), (
        driver.page_source[:500]
    )

    write(tmp_path / HOME, FLASK_HOME.replace("home-v1", "home-v2"))
    wait_page(server, driver, lambda: page_text(driver) == "home-v2", "template home-v2")
    server.wait_for_log(r"modified \S*home\.html -> applied by flask in every worker, no reload")
    assert server.count(r"graceful reload") == 0, server.explain("the template edit reloaded")

    write(app, APP.replace("VIEW", "view-v2"))
    wait_page(server, driver, lambda: page_text(driver, "view") == "view-v2", "view-v2")
    server.wait_for_log(r"modified \S*app\.py -> graceful reload")

    broken = APP.replace("VIEW", "view-v3").replace("def home():", "def home(:")
    broken_line = broken.splitlines().index("def home(:") + 1
    write(app, broken)
    wait_page(server, driver, lambda: "app.py" in (overlay_text(driver) or ""), "overlay")
    overlay = overlay_text(driver)
    assert f"{app}:{broken_line}" in overlay and "SyntaxError" in overlay, overlay
    assert page_text(driver, "view") == "view-v2", "the old page stays under the overlay"
    server.holds(lambda: page_text(driver, "view") == "view-v2", 1.5, "the page stays on v2")

    write(app, APP.replace("VIEW", "view-v4"))
    wait_page(server, driver, lambda: page_text(driver, "view") == "view-v4", "view-v4")
    wait_page(server, driver, lambda: overlay_text(driver) is None, "overlay gone")
