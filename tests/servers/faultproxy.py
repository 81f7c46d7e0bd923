"""A seeded fault-injecting HTTP proxy for S3 endpoints (threads, loopback only).

Real S3 misbehaves: 503 SlowDown, 500 InternalError, connections reset in the middle of an
upload, slow responses. The transfer engine must get through all of them; this proxy makes
them happen at given rates between a real client (s3fs/boto3) and a real server.

Decisions come from ``random.Random(seed)`` in request order, so a sequential client sees
the same faults on every run. The client's ``Host`` header is forwarded unchanged, so SigV4
signatures made for the proxy's address still verify at the server.
"""

from __future__ import annotations

import http.client
import random
import socket
import struct
import threading
import time
import uuid
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import NamedTuple
from urllib.parse import urlsplit

FAULTS = ("slowdown", "internal_error", "reset", "truncate", "latency")

_XML = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    "<Error><Code>{code}</Code><Message>{message}</Message>"
    "<Resource>{resource}</Resource><RequestId>{rid}</RequestId><HostId>{rid}</HostId></Error>"
)
_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade"}


class Carried(NamedTuple):
    """One request through the proxy (times from time.monotonic())."""

    received: float  # its body had come in from the client
    answered: float  # its response had gone out to the client
    method: str
    sent: int  # request body bytes
    got: int  # response body bytes
    took: float  # seconds the server took to answer


class FaultProxy:
    """Forwards HTTP to ``target`` (an ``http://host:port`` URL) and injects faults.

    Rates are probabilities per request, drawn in this order: ``slowdown`` (503 SlowDown),
    ``internal_error`` (500 InternalError), ``reset`` (connection reset: for a request with
    a body, after half of the body went to the server), ``truncate`` (a response whose body
    stops after half of its announced length: what a dropped download looks like to the
    client), then independently ``latency``
    (sleep ``latency_s`` before forwarding). ``only_methods`` limits faults to some methods.
    ``max_consecutive`` lets a request through after that many faults in a row on the same
    method and path (bounds the client's exponential backoff, so tests stay fast).
    ``stats`` counts requests and injected faults; ``log`` lists (method, path, fault);
    ``carried`` lists a :class:`Carried` for each request passed through: what went over
    the wire when, and where the server was slow.
    """

    def __init__(self, target: str, seed: int = 0, slowdown: float = 0.0, internal_error: float = 0.0,
                 reset: float = 0.0, truncate: float = 0.0, latency: float = 0.0, latency_s: float = 0.05,
                 only_methods: tuple[str, ...] | None = None, max_consecutive: int | None = None):
        u = urlsplit(target)
        if u.scheme != "http" or not u.hostname:
            raise ValueError(f"fault proxy needs an http:// target, got {target!r}")
        self.upstream = (u.hostname, u.port or 80)
        self.rates = {"slowdown": slowdown, "internal_error": internal_error, "reset": reset, "truncate": truncate,
                      "latency": latency}
        self.latency_s = latency_s
        self.only_methods = tuple(m.upper() for m in only_methods) if only_methods else None
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.stats: Counter = Counter()
        self.log: list[tuple[str, str, str | None]] = []
        self.carried: list[Carried] = []
        self.enabled = True
        self.max_consecutive = max_consecutive
        self._streak: Counter = Counter()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle

    def start(self) -> "FaultProxy":
        proxy = self

        class Handler(_Handler):
            owner = proxy

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="fault-proxy", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> "FaultProxy":
        return self.start() if self._httpd is None else self

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- decisions

    def decide(self, method: str, has_body: bool, path: str = "") -> tuple[str | None, bool]:
        """(fault or None, add latency?) for the next request; seeded, in request order."""
        with self._lock:
            r = [self._rng.random() for _ in range(2)]
            self.stats["requests"] += 1
            if not self.enabled or (self.only_methods and method not in self.only_methods):
                return None, False
            fault, acc = None, 0.0
            for name in ("slowdown", "internal_error", "reset", "truncate"):
                acc += self.rates[name]
                if r[0] < acc:
                    fault = name
                    break
            slow = r[1] < self.rates["latency"]
            if self.max_consecutive is not None:
                if fault and self._streak[(method, path)] >= self.max_consecutive:
                    fault = None
                self._streak[(method, path)] = self._streak[(method, path)] + 1 if fault else 0
            if fault:
                self.stats[fault] += 1
            if slow:
                self.stats["latency"] += 1
            return fault, slow


class _Handler(BaseHTTPRequestHandler):
    owner: FaultProxy
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet: credentials never reach logs anyway
        pass

    def setup(self):
        super().setup()
        self.upstream: http.client.HTTPConnection | None = None

    def finish(self):
        if self.upstream is not None:
            self.upstream.close()
        try:
            super().finish()
        except OSError:
            pass

    # every method goes through one path
    def do_GET(self):
        self._proxy()

    do_PUT = do_POST = do_DELETE = do_HEAD = do_OPTIONS = do_PATCH = do_GET

    def _read_body(self) -> bytes:
        length = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            raw = bytearray()
            while True:
                line = self.rfile.readline()
                raw += line
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while True:  # trailers up to the empty line
                        t = self.rfile.readline()
                        raw += t
                        if t in (b"\r\n", b"\n", b""):
                            return bytes(raw)
                raw += self.rfile.read(size + 2)
        return self.rfile.read(int(length)) if length else b""

    def _send_error_xml(self, status: int, code: str, message: str) -> None:
        body = _XML.format(code=code, message=message, resource=self.path.split("?")[0],
                           rid=uuid.uuid4().hex[:16].upper()).encode()
        self.send_response_only(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        if status == 503:
            self.send_header("Retry-After", "0")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.wfile.flush()

    def _reset(self) -> None:
        """Abort the client connection with a TCP RST (SO_LINGER 0)."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass

    def _connect(self) -> http.client.HTTPConnection:
        if self.upstream is None:
            self.upstream = http.client.HTTPConnection(*self.owner.upstream, timeout=120)
        return self.upstream

    def _proxy(self) -> None:
        owner = self.owner
        chunked = self.headers.get("Transfer-Encoding", "").lower() == "chunked"
        has_body = chunked or int(self.headers.get("Content-Length") or 0) > 0
        fault, slow = owner.decide(self.command, has_body, self.path)
        with owner._lock:
            owner.log.append((self.command, self.path, fault))
        if fault == "reset" and has_body:
            # half of the upload body reaches the server, then both sides are cut
            length = int(self.headers.get("Content-Length") or 0)
            half = self.rfile.read(length // 2) if length else self.rfile.read1(65536)
            try:
                conn = http.client.HTTPConnection(*owner.upstream, timeout=30)
                conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                for k, v in self.headers.items():
                    conn.putheader(k, v)
                conn.endheaders()
                conn.send(half)
                conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.close()
            except OSError:
                pass
            self._reset()
            return
        body = self._read_body() if has_body else b""
        received = time.monotonic()
        if fault == "reset":
            self._reset()
            return
        if fault == "slowdown":
            self._send_error_xml(503, "SlowDown", "Please reduce your request rate.")
            return
        if fault == "internal_error":
            self._send_error_xml(500, "InternalError", "We encountered an internal error. Please try again.")
            return
        if slow:
            time.sleep(owner.latency_s)
        asked = time.monotonic()
        for attempt in range(2):
            conn = self._connect()
            try:
                conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                for k, v in self.headers.items():
                    if k.lower() not in ("connection", "keep-alive", "proxy-connection"):
                        conn.putheader(k, v)
                conn.endheaders(body if body else None)
                resp = conn.getresponse()
                data = resp.read()
                answered = time.monotonic()
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # a stale keep-alive connection to the server: reconnect once
                conn.close()
                self.upstream = None
                if attempt:
                    self._send_error_xml(502, "BadGateway", "upstream closed the connection")
                    return
        self.send_response_only(resp.status, resp.reason)
        for k, v in resp.getheaders():
            if k.lower() not in _HOP and not (k.lower() == "content-length" and self.command != "HEAD"):
                self.send_header(k, v)
        if self.command != "HEAD":
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if fault == "truncate" and self.command != "HEAD" and len(data) > 1:
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self._reset()
            return
        if self.command != "HEAD" and data:
            self.wfile.write(data)
        self.wfile.flush()
        with owner._lock:
            owner.carried.append(Carried(received, time.monotonic(), self.command, len(body),
                                         len(data) if self.command != "HEAD" else 0, answered - asked))
        if resp.will_close:
            conn.close()
            self.upstream = None
