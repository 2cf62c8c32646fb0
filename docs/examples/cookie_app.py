#!/usr/bin/env python3
"""A small site that uses cookies the way many apps do, to try the edge in
front of (README, "In front of your site").

    python3 docs/examples/cookie_app.py 8000     # listens on 127.0.0.1:8000

  /                 home page: greets the `session` user, in the `theme`
                    colours; Cache-Control: max-age=60, whoever asks (the
                    app does not say `private`, as many do not)
  /login?user=NAME  sets the `session` cookie and redirects to /
  /account          the `session` user's page: Cache-Control: private, no-store
  /app.css          a stylesheet: Cache-Control: max-age=3600

Each answer says which request of the app's it was (`request N`), so a
cached copy shows itself by an unchanged number.
"""

import http.cookies
import itertools
import sys
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

requests = itertools.count(1)


class App(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: every answer has a Content-Length

    def do_GET(self):
        n = next(requests)
        url = urllib.parse.urlsplit(self.path)
        jar = http.cookies.SimpleCookie(self.headers.get("Cookie", ""))
        cookie = lambda name: jar[name].value if name in jar else None
        user, theme = cookie("session"), cookie("theme") or "light"
        if url.path == "/":
            who = f"Hello, {user}" if user else "Hello, guest"
            self.answer(200, f"{who} ({theme} theme; request {n})\n", "max-age=60")
        elif url.path == "/login":
            name = urllib.parse.parse_qs(url.query).get("user", ["alice"])[0]
            self.answer(303, "logged in\n", "no-store",
                        [("Location", "/"), ("Set-Cookie", f"session={name}; Path=/; HttpOnly")])
        elif url.path == "/account":
            body = f"account of {user} (request {n})\n" if user else "not logged in\n"
            self.answer(200 if user else 403, body, "private, no-store")
        elif url.path == "/app.css":
            self.answer(200, f"/* request {n} */ body {{ color: black }}\n", "max-age=3600",
                        [("Content-Type", "text/css")])
        else:
            self.answer(404, "not found\n", "max-age=10")

    def answer(self, status, body, cache_control, extra=()):
        data = body.encode()
        self.send_response(status)
        headers = dict(extra)
        self.send_header("Content-Type", headers.pop("Content-Type", "text/plain; charset=utf-8"))
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", cache_control)
        for name, value in extra:
            if name != "Content-Type":
                self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8000
    print(f"cookie app on http://127.0.0.1:{port}/", flush=True)
    ThreadingHTTPServer(("127.0.0.1", port), App).serve_forever()
