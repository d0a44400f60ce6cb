#!/usr/bin/env python3
"""The offline Nix world's HTTP server: the files under ROOT, with everything under /private/
behind basic auth (USER:PASSWORD), each request logged to LOG as a JSON line (method, path,
status, bytes sent). Tests read the log to say what a build downloaded. Git repositories
(`*.git`) are served as git's smart HTTP protocol too (`git http-backend`), as git hosts serve
them: Nix 2.19 and later fetch a locked git input shallow, which dumb HTTP cannot serve.
Under /upload/ the server also takes uploads (PUT, with the same basic auth, as a binary cache a
fleet shares takes them: Nix's http binary cache store uploads with PUT), which anyone can read.

Usage: serve.py ROOT PORT LOG USER:PASSWORD   (run inside an engine's network namespace)
"""

import base64
import http.server
import json
import os
import subprocess
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

    def is_smart_git(self):
        path, _, query = self.path.partition("?")
        return ".git/" in path and (
            (self.command == "GET" and path.endswith("/info/refs") and query == "service=git-upload-pack")
            or (self.command == "POST" and path.endswith("/git-upload-pack"))
        )

    def smart_git(self):
        """One request of git's smart HTTP protocol, answered by `git http-backend` (CGI)."""
        path, _, query = self.path.partition("?")
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": ROOT,
            "GIT_HTTP_EXPORT_ALL": "1",
            "GIT_CONFIG_NOSYSTEM": "1",
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "REQUEST_METHOD": self.command,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
            "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
            "REMOTE_ADDR": self.client_address[0],
        }
        out = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True).stdout
        head, _, payload = out.partition(b"\r\n\r\n")
        status, headers = 200, []
        for line in head.decode("latin-1").split("\r\n"):
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.split()[0])
            elif name:
                headers.append((name, value.strip()))
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
        self.sent = len(payload)
        self.record(status)

    def do_GET(self):
        if self.allowed():
            if self.is_smart_git():
                return self.smart_git()
            super().do_GET()
            self.record(getattr(self, "status", 0))

    def do_POST(self):
        if self.allowed() and self.is_smart_git():
            return self.smart_git()
        self.send_error(405)
        self.record(405)

    def do_PUT(self):
        path = os.path.normpath(self.path.partition("?")[0]).lstrip("/")
        if not path.startswith("upload/") or ".." in path.split("/"):
            self.send_error(405)
            return self.record(405)
        if self.headers.get("Authorization") != AUTH:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="nixworld"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return self.record(401)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        target = os.path.join(ROOT, path)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target + ".part", "wb") as f:
            f.write(body)
        os.replace(target + ".part", target)
        self.send_response(201)
        self.send_header("Content-Length", "0")
        self.end_headers()
        self.record(201)

    def do_HEAD(self):
        if self.allowed():
            super().do_HEAD()
            self.record(getattr(self, "status", 0))


if __name__ == "__main__":
    os.makedirs(os.path.dirname(LOG), exist_ok=True)
    server = http.server.ThreadingHTTPServer(("0.0.0.0", PORT), Handler)
    server.serve_forever()
