#!/usr/bin/env python3
"""The offline Nix world's HTTP server: the files under ROOT, with everything under /private/
behind basic auth (USER:PASSWORD), each request logged to LOG as a JSON line (method, path,
status, bytes sent). Tests read the log to say what a build downloaded.

Usage: serve.py ROOT PORT LOG USER:PASSWORD   (run inside an engine's network namespace)
"""

import base64
import http.server
import json
import os
import sys
import threading

ROOT, PORT, LOG, CREDENTIALS = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
AUTH = "Basic " + base64.b64encode(CREDENTIALS.encode()).decode()
LOCK = threading.Lock()


class Handler(http.server.SimpleHTTPRequestHandler):
    def __init__(self, *args, **kwargs):
        self.sent = 0
        super().__init__(*args, directory=ROOT, **kwargs)

    def log_message(self, *args):
        pass

    def record(self, status):
        entry = {"method": self.command, "path": self.path, "status": status, "bytes": self.sent}
        with LOCK, open(LOG, "a") as log:
            log.write(json.dumps(entry) + "\n")

    def allowed(self):
        if not self.path.startswith("/private/") or self.headers.get("Authorization") == AUTH:
            return True
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Basic realm="nixworld"')
        self.send_header("Content-Length", "0")
        self.end_headers()
        self.record(401)
        return False

    def copyfile(self, source, outputfile):
        while chunk := source.read(1 << 16):
            outputfile.write(chunk)
            self.sent += len(chunk)

    def send_response(self, code, message=None):
        self.status = code
        super().send_response(code, message)

    def do_GET(self):
        if self.allowed():
            super().do_GET()
            self.record(getattr(self, "status", 0))

    def do_HEAD(self):
        if self.allowed():
            super().do_HEAD()
            self.record(getattr(self, "status", 0))


if __name__ == "__main__":
    os.makedirs(os.path.dirname(LOG), exist_ok=True)
    server = http.server.ThreadingHTTPServer(("0.0.0.0", PORT), Handler)
    server.serve_forever()
