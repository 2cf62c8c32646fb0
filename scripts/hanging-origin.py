#!/usr/bin/env python3
# A tiny origin for scripts/measure-fallback: answers 200 (max-age=1) until
# GET /_hang, after which it accepts requests and never answers them.
import http.server, sys, time, threading
mode = {"hang": False}
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        if self.path == "/_hang":
            mode["hang"] = True
        if mode["hang"] and self.path != "/_hang":
            time.sleep(3600)
        body = b"hello\n"
        self.send_response(200)
        self.send_header("Cache-Control", "max-age=1")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
