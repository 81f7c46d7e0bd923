"""A `stream-backend serve` process for the HTTP API's tests, with a token file of two
tokens: ADMIN (read, export, import) and READER (read)."""

from __future__ import annotations

import json
import signal
import subprocess
import urllib.error
import urllib.request

from support import CLI, free_ports, wait_until

ADMIN = "admin-token-for-the-tests-0123"
READER = "reader-token-for-the-tests-012"


class Server:
    """One `stream-backend serve` process, stopped with SIGTERM and started again at will."""

    def __init__(self, tmp_path, env, locations):
        self.tmp_path, self.env, self.locations = tmp_path, env, locations
        (tmp_path / "tokens").write_text(f"{ADMIN} read,export,import\n{READER} read\n")
        (self.port,) = free_ports(1)
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc = None
        self.start()

    def start(self):
        self.log = open(self.tmp_path / "serve.log", "ab")
        args = [CLI, "serve", "--listen", f"127.0.0.1:{self.port}", "--token-file", str(self.tmp_path / "tokens"),
                "--state-dir", str(self.tmp_path / "requests"), "--workers", "1"]
        for loc in self.locations:
            args += ["--location", loc]
        self.proc = subprocess.Popen(args, env=self.env, stdout=self.log, stderr=subprocess.STDOUT)

        def up():
            assert self.proc.poll() is None, self.logs()
            try:
                return urllib.request.urlopen(self.base + "/healthz", timeout=2).status == 200
            except OSError:
                return False

        wait_until("the server to answer", up, timeout=60)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=90)
        self.log.close()

    def logs(self) -> str:
        return (self.tmp_path / "serve.log").read_text(errors="replace")

    def call(self, method, path, body=None, token=ADMIN, raw=None, headers=None):
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(self.base + path, data=data, method=method, headers={
            **({"Authorization": f"Bearer {token}"} if token else {}), "Content-Type": "application/json",
            **(headers or {})})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as exc:
            text = exc.read()
            return exc.code, json.loads(text) if text.startswith(b"{") else text

    def follow(self, path) -> list[dict]:
        """Every document the event stream sent, read with curl until the server ends it."""
        out = subprocess.run(["curl", "-sSN", "--max-time", "300", "-H", f"Authorization: Bearer {ADMIN}",
                              self.base + path + "/events"], capture_output=True, text=True, timeout=320)
        assert out.returncode == 0, out.stderr
        docs = [json.loads(line[len("data: "):]) for line in out.stdout.splitlines() if line.startswith("data: ")]
        assert docs, out.stdout
        return docs

    def phase(self, path):
        return self.call("GET", path)[1]["status"].get("phase")
