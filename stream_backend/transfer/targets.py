"""Where archives live: any fsspec URL, with S3 multipart done by hand for resumability.

Everything the transfer engine does to an archive goes through ``Target`` so that
errors are translated once (missing bucket -> NotFoundError, bad credentials ->
PermissionDeniedError, unreachable endpoint -> UnavailableError) and never carry
credentials. Small JSON objects (manifests, checkpoints, leases) are written whole
and atomically; data objects go through ``ObjectUpload``: on S3 a multipart upload
driven through the aiobotocore client s3fs already holds, so that after a crash the
parts already stored (ListParts) are reused instead of sent again.
"""

from __future__ import annotations

import base64
import contextlib
import glob
import hashlib
import os
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from urllib.parse import urlsplit

from ..errors import (
    NoSpaceError,
    NotFoundError,
    PermissionDeniedError,
    StreamBackendError,
    UnavailableError,
    UsageError,
    from_os_error,
)
from ..urls import check_archive_url, has_userinfo, redact

#: S3 refuses multipart parts smaller than this (except the last one)
S3_MIN_PART_SIZE = 5 * 1024 * 1024

_DENIED_CODES = {
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "AllAccessDisabled",
    "AccountProblem",
    "InvalidSecurity",
    "403",
}
_MISSING_BUCKET_CODES = {"NoSuchBucket"}
_PRECONDITION_CODES = {"PreconditionFailed", "412", "ConditionalRequestConflict"}


class PreconditionFailed(Exception):
    """A conditional write lost: someone else wrote the object first."""


def _client_error_code(exc: BaseException) -> str | None:
    """The S3 error code behind an exception (s3fs chains the botocore ClientError)."""
    seen = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        resp = getattr(e, "response", None)
        if isinstance(resp, dict):
            code = (resp.get("Error") or {}).get("Code")
            if code:
                return str(code)
        e = e.__cause__ or e.__context__
    return None


def _is_unreachable(exc: BaseException) -> bool:
    names = set()
    e: BaseException | None = exc
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        names.update(c.__name__ for c in type(e).__mro__)
        e = e.__cause__ or e.__context__
    return bool(
        names
        & {
            "EndpointConnectionError",
            "ConnectTimeoutError",
            "ClientConnectorError",
            "ConnectionRefusedError",
            "ServerDisconnectedError",
        }
    )


def translate_error(exc: BaseException, where: str) -> StreamBackendError:
    """Map an fsspec/s3fs/botocore exception to our one-line error (no credentials)."""
    if isinstance(exc, StreamBackendError):
        return exc
    code = _client_error_code(exc)
    name = type(exc).__name__
    if name in ("NoCredentialsError", "PartialCredentialsError"):
        return PermissionDeniedError(f"no credentials for {where} (set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or a profile)")
    if code in _DENIED_CODES or isinstance(exc, PermissionError):
        return PermissionDeniedError(f"access denied to {where} ({code or 'permission denied'}): check credentials and permissions")
    if code in _MISSING_BUCKET_CODES:
        return NotFoundError(f"bucket of {where} does not exist")
    if _is_unreachable(exc):
        return UnavailableError(f"cannot reach the storage endpoint for {where}")
    if isinstance(exc, FileNotFoundError):
        return NotFoundError(f"not found: {where}")
    if isinstance(exc, OSError) and exc.errno is not None and code is None:
        err = from_os_error(exc, f"write or read {where}")
        if type(err) is not StreamBackendError:
            return err
    return UnavailableError(f"storage error on {where}: {code or name}")


class Target:
    """An archive prefix on some fsspec filesystem; keys are relative, "/"-separated."""

    def __init__(self, url: str, endpoint_url: str | None = None):
        import fsspec
        from fsspec.core import url_to_fs

        self.url = url
        self.retries = 0  # transient faults met so far (botocore's retries and ours): shown by progress
        self.display = redact(url)
        check_archive_url(url, self.display)
        if "://" not in url:  # a plain path: shown as the directory it is
            url = "file://" + os.path.abspath(os.path.expanduser(url))
            self.display = url
        scheme = url.split("://", 1)[0]
        options: dict = {}
        if scheme in ("s3", "s3a"):
            endpoint = endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
            options = {
                "use_listings_cache": False,
                "skip_instance_cache": True,
                # botocore retries transient faults (SlowDown, 5xx, resets) with backoff;
                # s3fs adds its own bounded retries around every call on top.
                "config_kwargs": {
                    "retries": {"max_attempts": 10, "mode": "standard"},
                    "connect_timeout": 10,
                    "read_timeout": 60,
                    # parts carry Content-MD5 (computed once, also used to match parts
                    # left by an interrupted upload); no second checksum pass over them
                    "request_checksum_calculation": "when_required",
                },
            }
            if endpoint:
                options["endpoint_url"] = endpoint
            from aiobotocore.session import AioSession

            session = AioSession()
            session.register("needs-retry.s3", self._count_retry)
            options["session"] = session
            if endpoint:
                try:
                    ep = urlsplit(endpoint)
                    ep.port  # noqa: B018 - raises ValueError for a port out of range
                except ValueError:
                    ep = None
                if ep is None or ep.scheme not in ("http", "https") or not ep.hostname:
                    raise UsageError(f"bad endpoint URL {redact(endpoint)}: expected http(s)://HOST[:PORT]")
            if endpoint and has_userinfo(endpoint):
                raise UsageError(
                    f"endpoint {redact(endpoint)} carries credentials: pass them in "
                    "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (or a profile), never in a URL"
                )
        elif endpoint_url:
            raise UsageError(f"--endpoint-url applies to s3:// archives only, not {self.display}")
        self.endpoint = options.get("endpoint_url")
        try:
            fsspec.get_filesystem_class(scheme)
        except (ValueError, ImportError) as exc:
            raise UsageError(f"unsupported archive URL {self.display}: {exc}") from None
        try:
            self.fs, root = url_to_fs(url, **options)
        except Exception as exc:  # bad URL, bad options
            raise UsageError(f"cannot open archive URL {self.display}: {type(exc).__name__}") from None
        self.is_s3 = scheme in ("s3", "s3a")
        self.is_local = type(self.fs).__name__ == "LocalFileSystem"
        self.root = root.rstrip("/")
        if self.is_s3:
            self.fs.retries = 6  # s3fs's own retry loop around each call (instance attribute)
            if not self.root:
                raise UsageError(f"archive URL {self.display} names no bucket")
            self.bucket, _, self.key_prefix = self.root.partition("/")
            self.key_prefix = self.key_prefix.strip("/")

    def _count_retry(self, response=None, caught_exception=None, **_kw) -> None:
        """botocore's needs-retry event, once per attempt: count the failed ones (a 5xx,
        a throttle, a reset). Returns None: the decision stays botocore's."""
        status = response[0].status_code if response is not None else None
        if caught_exception is not None or (status is not None and (status >= 500 or status == 429)):
            self.retries += 1

    # -- paths ---------------------------------------------------------------
    def path(self, key: str) -> str:
        return f"{self.root}/{key}" if key else self.root

    def s3_key(self, key: str) -> str:
        return f"{self.key_prefix}/{key}" if self.key_prefix else key

    def where(self, key: str = "") -> str:
        base = self.display.rstrip("/")
        return f"{base}/{key}" if key else base

    @contextlib.contextmanager
    def errors(self, key: str = ""):
        try:
            yield
        except StreamBackendError:
            raise
        except Exception as exc:
            raise translate_error(exc, self.where(key)) from None

    # -- checks --------------------------------------------------------------
    def check_access(self, create: bool = False) -> None:
        """Fail fast with the right code: missing bucket 66, bad credentials 77."""
        if self.is_s3:
            self._probe_endpoint()
            with self.errors():
                self.fs.call_s3("list_objects_v2", Bucket=self.bucket, Prefix=self.s3_key(""), MaxKeys=1)
        elif self.is_local:
            if create:
                try:
                    os.makedirs(self.root, exist_ok=True)
                except OSError as exc:
                    raise from_os_error(exc, f"create archive directory {self.display}") from None
            elif not os.path.isdir(self.root):
                raise NotFoundError(f"no archive at {self.display}")

    def check_free_space(self, nbytes: int) -> None:
        """A local archive directory must have room for ``nbytes`` of payload before a run
        starts (framing adds a little; S3 and other targets have no such limit to ask)."""
        if not self.is_local or nbytes <= 0:
            return
        import shutil

        from ..archive import human_size

        try:
            free = shutil.disk_usage(self.root).free
        except OSError:
            return
        if free < nbytes:
            raise NoSpaceError(
                f"archive directory {self.display} has {human_size(free)} free; this run needs about "
                f"{human_size(nbytes)}: free space or export elsewhere"
            )

    def _probe_endpoint(self, attempts: int = 3, timeout: float = 3.0) -> None:
        """A custom endpoint that refuses connections fails in seconds (exit 69), not
        after the minutes botocore's retries would spend on it."""
        if not self.endpoint:
            return
        import socket

        parts = urlsplit(self.endpoint)
        host = parts.hostname
        port = parts.port or (443 if parts.scheme == "https" else 80)
        if not host:
            raise UsageError(f"bad endpoint URL {redact(self.endpoint)}")
        for i in range(attempts):
            try:
                socket.create_connection((host, port), timeout=timeout).close()
                return
            except OSError:
                if i + 1 < attempts:
                    time.sleep(0.5 * (i + 1))
        raise UnavailableError(f"cannot reach the storage endpoint {redact(self.endpoint)} for {self.display}")

    # -- small objects ---------------------------------------------------------
    SMALL_ATTEMPTS = 6

    def _retried(self, key: str, fn):
        """``fn()`` with our errors, a transient one (a dropped body, a reset, a 5xx)
        retried with backoff (0.2 s doubling, about 6 s in all): a lease, checkpoint or
        manifest read must not end a transfer that a data part's retry would have saved."""
        delay = 0.2
        for attempt in range(self.SMALL_ATTEMPTS):
            try:
                with self.errors(key):
                    return fn()
            except UnavailableError:
                if attempt + 1 == self.SMALL_ATTEMPTS:
                    raise
                self.retries += 1
                time.sleep(delay)
                delay *= 2

    def read(self, key: str) -> bytes | None:
        """Whole object, or None when absent."""
        try:
            return self._retried(key, lambda: self.fs.cat_file(self.path(key)))
        except NotFoundError:
            return None

    def read_range(self, key: str, start: int, end: int) -> bytes:
        with self.errors(key):
            return self.fs.cat_file(self.path(key), start=start, end=end)

    def write(self, key: str, data: bytes) -> None:
        """Replace an object whole and atomically (readers see old or new bytes)."""
        with self.errors(key):
            if self.is_local:
                path = self.path(key)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                tmp = f"{path}.tmp-{os.getpid()}-{threading.get_ident()}"
                with open(tmp, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())  # a checkpoint or manifest must not come back empty
                os.replace(tmp, path)
            elif self.is_s3:  # a whole PUT: repeating it is harmless
                self._retried(key, lambda: self.fs.call_s3("put_object", Bucket=self.bucket,
                                                            Key=self.s3_key(key), Body=data))
            else:
                self.fs.pipe_file(self.path(key), data)

    # -- conditional writes (leases) ------------------------------------------------
    def read_versioned(self, key: str) -> tuple[bytes | None, str | None]:
        """(bytes, version tag) of an object, (None, None) when absent. The tag is the
        S3 ETag (for If-Match) or, elsewhere, None."""
        if not self.is_s3:
            return self.read(key), None
        from fsspec.asyn import sync

        async def get():
            resp = await self.fs._call_s3("get_object", Bucket=self.bucket, Key=self.s3_key(key))
            body = resp["Body"]
            try:
                data = await body.read()
            finally:
                body.close()
            return data, resp.get("ETag")

        try:
            return self._retried(key, lambda: sync(self.fs.loop, get))
        except NotFoundError:
            return None, None

    def atomic_if(self, absent: bool) -> bool:
        """Does ``write_if`` decide a race by itself (no read-back needed)? A local
        create (O_EXCL link) does; S3 does only where the server honours the conditional
        headers, which some S3-compatible servers ignore, so S3 says no."""
        return self.is_local and absent

    def write_if(self, key: str, data: bytes, *, absent: bool = False, etag: str | None = None) -> str | None:
        """Write only if the object is absent (``absent``) or still has ``etag``.

        Returns the new ETag (S3) or None; raises PreconditionFailed when another writer
        got there first. S3: conditional PUT (If-None-Match / If-Match, honoured by AWS,
        SeaweedFS and moto). A local directory: O_EXCL create; replacing is a plain
        atomic rename (the caller's read-back settles races there).
        """
        if self.is_s3:
            kw: dict = {}
            if absent:
                kw["IfNoneMatch"] = "*"
            elif etag:
                kw["IfMatch"] = etag
            try:
                resp = self.fs.call_s3("put_object", Bucket=self.bucket, Key=self.s3_key(key), Body=data, **kw)
            except Exception as exc:
                if _client_error_code(exc) in _PRECONDITION_CODES:
                    raise PreconditionFailed(key) from None
                raise translate_error(exc, self.where(key)) from None
            return resp.get("ETag")
        if self.is_local and absent:
            path = self.path(key)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            # a name of our own: two racers sharing one temp file could link each other's
            # bytes, or find it unlinked under them
            tmp = f"{path}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                os.link(tmp, path)  # fails if the lease exists: atomic create
            except FileExistsError:
                raise PreconditionFailed(key) from None
            finally:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
            return None
        self.write(key, data)
        return None

    def delete(self, key: str) -> None:
        with self.errors(key):
            if self.is_s3:
                self.fs.call_s3("delete_object", Bucket=self.bucket, Key=self.s3_key(key))
            else:
                try:
                    self.fs.rm_file(self.path(key))
                except FileNotFoundError:
                    pass
                if self.is_local and key.startswith("checkpoints/"):
                    _remove_stale_tmp(self.path(key))  # the lease holder finishing its segment

    def exists(self, key: str) -> bool:
        with self.errors(key):
            return bool(self.fs.exists(self.path(key)))

    def size(self, key: str) -> int | None:
        try:
            return self._retried(key, lambda: int(self.fs.size(self.path(key))))
        except NotFoundError:
            return None

    def list(self, dirkey: str) -> dict[str, int]:
        """Every object under ``dirkey`` (recursive): relative key -> size."""
        out: dict[str, int] = {}
        base = self.path(dirkey).rstrip("/")
        def find():
            try:
                return self.fs.find(base, detail=True)
            except FileNotFoundError:
                return {}

        found = self._retried(dirkey, find)
        for path, info in found.items():
            if info.get("type") == "directory":
                continue
            rel = path[len(self.root) + 1 :] if path.startswith(self.root + "/") else path
            if self.is_local and ".tmp-" in rel.rsplit("/", 1)[-1]:
                continue  # a torn atomic write of ours
            out[rel] = int(info.get("size") or 0)
        return out

    # -- data objects ------------------------------------------------------------
    def upload(self, key: str, part_size: int, pool: "PartPool") -> "ObjectUpload":
        if self.is_s3:
            return S3Upload(self, key, part_size, pool)
        if self.is_local:
            return LocalUpload(self, key)
        return FsspecUpload(self, key)

    def abort_stray_uploads(self, dirkey: str, keep: set[str] = frozenset()) -> int:
        """Abort multipart uploads under ``dirkey`` not for ``keep`` keys (after a segment completes)."""
        if not self.is_s3:
            return 0
        n = 0
        for up in self._list_uploads(self.s3_key(dirkey)):
            if up["Key"] not in keep:
                with self.errors(dirkey):
                    self.fs.call_s3("abort_multipart_upload", Bucket=self.bucket, Key=up["Key"], UploadId=up["UploadId"])
                n += 1
        return n

    def _list_uploads(self, prefix: str) -> list[dict]:
        uploads: list[dict] = []
        kw: dict = {"Bucket": self.bucket, "Prefix": prefix}
        with self.errors(prefix):
            while True:
                resp = self.fs.call_s3("list_multipart_uploads", **kw)
                uploads.extend(resp.get("Uploads") or [])
                if not resp.get("IsTruncated"):
                    break
                kw["KeyMarker"] = resp.get("NextKeyMarker")
                kw["UploadIdMarker"] = resp.get("NextUploadIdMarker")
        return uploads


class PartPool:
    """Uploads parts in parallel with at most ``parallel`` parts in memory at once.

    The producer blocks in ``submit`` while every slot is taken: that is what bounds a
    transfer's memory to part size x parts in flight, whatever the stream's length.
    """

    def __init__(self, parallel: int):
        self.parallel = max(1, parallel)
        self._slots = threading.BoundedSemaphore(self.parallel)
        self._pool = ThreadPoolExecutor(self.parallel, thread_name_prefix="part")

    def submit(self, fn, *args) -> Future:
        self._slots.acquire()
        try:
            fut = self._pool.submit(fn, *args)
        except BaseException:
            self._slots.release()
            raise
        fut.add_done_callback(lambda _f: self._slots.release())
        return fut

    def close(self, wait: bool = True) -> None:
        self._pool.shutdown(wait=wait, cancel_futures=not wait)


class ObjectUpload:
    """One data object written part by part; ``finish`` makes it visible whole."""

    #: parts found already stored from an interrupted attempt and not sent again
    reused_parts = 0
    sent_bytes = 0

    def write_part(self, data: bytes) -> None:
        raise NotImplementedError

    def finish(self) -> Future:
        """Returns a future done when the object is durable at its key."""
        raise NotImplementedError

    def abandon(self) -> None:
        """Stop (pause/crash path): wait for parts in flight; leave them for reuse."""


def _done(value=None) -> Future:
    f: Future = Future()
    f.set_result(value)
    return f


def _remove_stale_tmp(path: str, keep: str | None = None) -> None:
    """Drop temporary files a killed writer of ``path`` left behind.

    Only called by the holder of the segment's lease (data objects, its checkpoint),
    so no live writer owns them.
    """
    for tmp in glob.glob(glob.escape(path) + ".tmp-*"):
        if tmp != keep:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


class LocalUpload(ObjectUpload):
    """Local directory: write a temporary file, rename at the end (never a torn object)."""

    def __init__(self, target: Target, key: str):
        self.path = target.path(key)
        self.target = target
        self.key = key
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        _remove_stale_tmp(self.path)  # a SIGKILLed run's half object: we redo it whole
        self.tmp = f"{self.path}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.f = open(self.tmp, "wb")

    def write_part(self, data: bytes) -> None:
        with self.target.errors(self.key):
            self.f.write(data)
            self.sent_bytes += len(data)

    def finish(self) -> Future:
        with self.target.errors(self.key):
            self.f.flush()
            os.fsync(self.f.fileno())  # durable before the manifest can name it
            self.f.close()
            os.replace(self.tmp, self.path)
        return _done()

    def abandon(self) -> None:
        with contextlib.suppress(OSError):
            self.f.close()
            os.unlink(self.tmp)


class FsspecUpload(ObjectUpload):
    """Any other fsspec filesystem: its own buffered writer."""

    def __init__(self, target: Target, key: str):
        self.target, self.key = target, key
        self.f = target.fs.open(target.path(key), "wb")

    def write_part(self, data: bytes) -> None:
        with self.target.errors(self.key):
            self.f.write(data)
            self.sent_bytes += len(data)

    def finish(self) -> Future:
        with self.target.errors(self.key):
            self.f.close()
        return _done()

    def abandon(self) -> None:
        with contextlib.suppress(Exception):
            self.f.discard() if hasattr(self.f, "discard") else None


class S3Upload(ObjectUpload):
    """One PUT for an object of one part; otherwise a multipart upload that reuses parts.

    The first part is held back until a second one exists, so small objects cost a
    single request. A multipart upload already open for the same key (left by a killed
    exporter) is adopted: each part whose stored size and MD5 ETag match the bytes we
    would send is kept, the rest are (re)sent. Object bytes derive from events only,
    so the reused parts are exactly the ones an uninterrupted run would have sent.
    """

    def __init__(self, target: Target, key: str, part_size: int, pool: PartPool):
        self.t, self.key, self.pool = target, key, pool
        self.s3key = target.s3_key(key)
        self.part_size = part_size
        self.first: bytes | None = None
        self.upload_id: str | None = None
        self.existing: dict[int, tuple[str, int]] = {}
        self.futures: list[Future] = []
        self.etags: dict[int, str] = {}
        self.next_part = 1
        self.reused_parts = 0
        self.sent_bytes = 0
        self._lock = threading.Lock()

    def _call(self, method: str, **kw):
        with self.t.errors(self.key):
            return self.t.fs.call_s3(method, Bucket=self.t.bucket, Key=self.s3key, **kw)

    def _start_multipart(self) -> None:
        uploads = [u for u in self.t._list_uploads(self.s3key) if u["Key"] == self.s3key]
        uploads.sort(key=lambda u: (str(u.get("Initiated")), u["UploadId"]))
        if uploads:
            self.upload_id = uploads[0]["UploadId"]
            for extra in uploads[1:]:
                self._call("abort_multipart_upload", UploadId=extra["UploadId"])
            marker = 0
            while True:
                resp = self._call("list_parts", UploadId=self.upload_id, PartNumberMarker=marker)
                for p in resp.get("Parts") or []:
                    self.existing[int(p["PartNumber"])] = (str(p["ETag"]).strip('"'), int(p["Size"]))
                if not resp.get("IsTruncated"):
                    break
                marker = int(resp.get("NextPartNumberMarker") or 0)
        else:
            self.upload_id = self._call("create_multipart_upload")["UploadId"]

    def _send_part(self, number: int, data: bytes) -> None:
        digest = hashlib.md5(data).digest()
        md5 = digest.hex()
        have = self.existing.get(number)
        if have and have[1] == len(data) and have[0] == md5:
            with self._lock:
                self.reused_parts += 1
                self.etags[number] = f'"{md5}"'
            return
        resp = self._call("upload_part", UploadId=self.upload_id, PartNumber=number, Body=data,
                          ContentMD5=base64.b64encode(digest).decode())
        with self._lock:
            self.sent_bytes += len(data)
            self.etags[number] = resp["ETag"]

    def _submit(self, data: bytes) -> None:
        number = self.next_part
        self.next_part += 1
        self.futures.append(self.pool.submit(self._send_part, number, data))

    def write_part(self, data: bytes) -> None:
        if self.upload_id is None and self.first is None:
            self.first = data
            return
        if self.upload_id is None:
            self._start_multipart()
            first, self.first = self.first, None
            self._submit(first)
        self._submit(data)

    def _put_single(self, data: bytes) -> None:
        self._call("put_object", Body=data, ContentMD5=base64.b64encode(hashlib.md5(data).digest()).decode())
        with self._lock:
            self.sent_bytes += len(data)

    def finish(self) -> Future:
        if self.upload_id is None:
            data, self.first = self.first or b"", None
            return self.pool.submit(self._put_single, data)
        for f in self.futures:
            f.result()  # raises the first failure
        parts = [{"PartNumber": n, "ETag": self.etags[n]} for n in sorted(self.etags)]
        self._call("complete_multipart_upload", UploadId=self.upload_id, MultipartUpload={"Parts": parts})
        return _done()

    def abandon(self) -> None:
        for f in self.futures:
            with contextlib.suppress(Exception):
                f.result()
