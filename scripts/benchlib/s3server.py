"""A SeaweedFS S3 server (``weed mini``) on loopback only, started and stopped by PID.

Every listener gets an explicit free port on 127.0.0.1 (``weed mini`` would otherwise
take fixed defaults and, for the bind address, 0.0.0.0); WebDAV, Iceberg and Lance are
off, telemetry is off. Credentials go in the server's environment (``weed mini`` makes
them its admin identity) and in each client's environment, never on a command line.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import time
import urllib.request

import psutil

from .util import free_ports, is_loopback, listening_addresses


class SeaweedS3:
    def __init__(self, weed: str, data_dir: str):
        self.weed = os.path.abspath(weed)
        self.data_dir = data_dir
        self.proc: subprocess.Popen | None = None
        self.access_key = "bench" + secrets.token_hex(4)
        self.secret_key = secrets.token_hex(16)
        self.port = None
        self.listeners: list[str] = []
        self.log_path = os.path.join(data_dir, "weed.log")

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def client_env(self, base: dict | None = None) -> dict:
        """Environment for any S3 client (s3fs, boto3, s5cmd, rclone, aws, duplicity)."""
        env = dict(base if base is not None else os.environ)
        env.update(
            AWS_ACCESS_KEY_ID=self.access_key,
            AWS_SECRET_ACCESS_KEY=self.secret_key,
            AWS_ENDPOINT_URL=self.endpoint,
            AWS_ENDPOINT_URL_S3=self.endpoint,
            S3_ENDPOINT_URL=self.endpoint,
            AWS_REGION="us-east-1",
            AWS_DEFAULT_REGION="us-east-1",
            AWS_CONFIG_FILE=os.devnull,
            AWS_SHARED_CREDENTIALS_FILE=os.devnull,
            AWS_EC2_METADATA_DISABLED="true",
            # rclone: one remote named "bench", configured through the environment only
            RCLONE_CONFIG=os.devnull,
            RCLONE_CONFIG_BENCH_TYPE="s3",
            RCLONE_CONFIG_BENCH_PROVIDER="SeaweedFS",
            RCLONE_CONFIG_BENCH_ENV_AUTH="false",
            RCLONE_CONFIG_BENCH_ACCESS_KEY_ID=self.access_key,
            RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY=self.secret_key,
            RCLONE_CONFIG_BENCH_ENDPOINT=self.endpoint,
            RCLONE_CONFIG_BENCH_REGION="us-east-1",
        )
        return env

    def version(self) -> str:
        try:
            out = subprocess.run(
                [self.weed, "version"], capture_output=True, text=True, timeout=30
            ).stdout
            return out.strip().splitlines()[0]
        except Exception as exc:  # noqa: BLE001
            return f"unknown ({exc})"

    def start(self, timeout: float = 60.0) -> None:
        os.makedirs(os.path.join(self.data_dir, "data"), exist_ok=True)
        master, master_g, volume, volume_g, filer, filer_g, s3, s3_g, admin, admin_g = free_ports(
            10
        )
        self.port = s3
        argv = [
            self.weed,
            "mini",
            f"-dir={os.path.join(self.data_dir, 'data')}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-master.port={master}",
            f"-master.port.grpc={master_g}",
            f"-volume.port={volume}",
            f"-volume.port.grpc={volume_g}",
            f"-filer.port={filer}",
            f"-filer.port.grpc={filer_g}",
            f"-s3.port={s3}",
            f"-s3.port.grpc={s3_g}",
            f"-admin.port={admin}",
            f"-admin.port.grpc={admin_g}",
            "-admin.ui=false",
            "-webdav=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-master.telemetry=false",
            f"-filer.localSocket={os.path.join(self.data_dir, 'filer.sock')}",
            f"-s3.localSocket={os.path.join(self.data_dir, 's3.sock')}",
        ]
        env = dict(
            os.environ, AWS_ACCESS_KEY_ID=self.access_key, AWS_SECRET_ACCESS_KEY=self.secret_key
        )
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            argv,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=self.data_dir,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"weed exited {self.proc.returncode}: {self._log_tail()}")
            try:
                with urllib.request.urlopen(self.endpoint + "/status", timeout=2) as resp:
                    if resp.status < 500:
                        break
            except urllib.error.HTTPError as exc:  # 403 without auth still means "up"
                if exc.code < 500:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        else:
            self.stop()
            raise RuntimeError(
                f"SeaweedFS S3 did not come up in {timeout:.0f}s: {self._log_tail()}"
            )
        self.listeners = self.check_loopback_only()

    def check_loopback_only(self) -> list[str]:
        """Every listening socket of the server is on loopback (ss -ltnp/-lunp), else stop."""
        pids = {self.pid}
        try:
            pids |= {c.pid for c in psutil.Process(self.pid).children(recursive=True)}
        except psutil.Error:
            pass
        addrs = listening_addresses(pids)
        bad = [a for a in addrs if not is_loopback(a)]
        if bad:
            self.stop()
            raise RuntimeError(f"SeaweedFS bound non-loopback addresses {bad}; stopped it")
        if not addrs:
            raise RuntimeError("found no listening socket of the SeaweedFS process (ss)")
        return sorted(addrs)

    def _log_tail(self) -> str:
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-1500:].decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self, timeout: float = 30.0) -> None:
        if not self.proc or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()


class Buckets:
    """Create, size and delete buckets with boto3 (from the project venv).

    Each measured run writes into a bucket of its own that is deleted afterwards:
    SeaweedFS keeps a bucket in its own collection, so deleting the bucket frees the
    volumes at once and the server's disk does not fill over a long run.
    """

    def __init__(self, server: SeaweedS3):
        import boto3
        from botocore.config import Config

        self.s3 = boto3.client(
            "s3",
            endpoint_url=server.endpoint,
            region_name="us-east-1",
            aws_access_key_id=server.access_key,
            aws_secret_access_key=server.secret_key,
            config=Config(
                retries={"max_attempts": 5, "mode": "standard"}, s3={"addressing_style": "path"}
            ),
        )
        self._n = 0

    def new(self, hint: str) -> str:
        self._n += 1
        name = f"b{self._n:03d}-{hint}"[:63].lower().replace("_", "-")
        self.s3.create_bucket(Bucket=name)
        # The first write to a new bucket makes SeaweedFS grow its volumes (~0.2 s): do it
        # now, untimed, so no measured run pays it.
        self.s3.put_object(Bucket=name, Key=".warm", Body=b"x")
        self.s3.delete_object(Bucket=name, Key=".warm")
        return name

    def objects(self, bucket: str, prefix: str = "") -> dict[str, int]:
        sizes = {}
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                sizes[obj["Key"]] = obj["Size"]
        return sizes

    def size(self, bucket: str, prefix: str = "") -> int:
        return sum(self.objects(bucket, prefix).values())

    def delete(self, bucket: str) -> None:
        keys = list(self.objects(bucket))
        for i in range(0, len(keys), 1000):
            self.s3.delete_objects(
                Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys[i : i + 1000]]}
            )
        try:
            self.s3.delete_bucket(Bucket=bucket)
        except Exception:  # noqa: BLE001 - best effort; the whole server dir goes at the end
            pass
