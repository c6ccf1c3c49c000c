"""A tiny WSGI app for `make run`: edit GREETING (or greeting.py) and reload the page."""

from demo.greeting import GREETING


def application(environ, start_response):
    body = f"{GREETING}\n".encode()
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
    return [body]
