"""An archive in an S3 bucket: multipart uploads driven through the aiobotocore client
s3fs already holds, so that after a crash the parts already stored (ListParts) are reused
instead of sent again; conditional PUTs for leases."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import socket
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

import crc32c

from ...archive.layout import parse_key
from ...errors import NotFoundError, PermissionDeniedError, UnavailableError, UsageError
from ...s3vocab import ARCHIVE_CLASSES, LOCK_MODES, MAX_LOCK_DAYS, SSE_MODES, STORAGE_CLASSES
from ...urls import has_userinfo, redact
from .base import FsspecTarget, ObjectLock
from .errors import PreconditionFailed, client_error_code, is_precondition_failure, translate_error
from .throttle import Bandwidth
from .uploads import ObjectUpload, PartPool, done

#: S3 refuses multipart parts smaller than this (except the last one)
S3_MIN_PART_SIZE = 5 * 1024 * 1024


@dataclass(frozen=True)
class S3Options:
    """How to reach and write a bucket: one place for every S3 setting a command takes."""

    #: an S3-compatible server (http(s)://HOST[:PORT]); None: AWS, by the region
    endpoint_url: str | None = None
    #: None: botocore's own (AWS_REGION, the profile)
    region: str | None = None
    #: AES256 (SSE-S3) or aws:kms (SSE-KMS) on every object written; None: the bucket's default
    sse: str | None = None
    #: SSE-KMS: the KMS key (id, ARN or alias); None: the account's aws/s3 key
    sse_kms_key_id: str | None = None
    #: the storage class of data objects; the small documents a run reads back stay STANDARD
    storage_class: str | None = None
    #: SSE-C: the customer's 32-byte key, sent with every object request (never shown)
    sse_c_key: bytes | None = field(default=None, repr=False)
    #: Object Lock on every object a restore needs: GOVERNANCE or COMPLIANCE, for this many days
    object_lock_mode: str | None = None
    object_lock_retain_days: int | None = None
    #: an Object Lock legal hold on the same objects (until someone lifts it)
    legal_hold: bool | None = None
    #: bytes per second for all requests of the transfer together (--bwlimit); None: no limit
    bwlimit: int | None = None

    def check(self) -> None:
        self._check_write_options()
        ep = self.endpoint_url
        if not ep:
            return
        try:
            parts = urlsplit(ep)
            parts.port  # noqa: B018 - raises ValueError for a port out of range
        except ValueError:
            parts = None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise UsageError(f"bad endpoint URL {redact(ep)}: expected http(s)://HOST[:PORT]")
        if has_userinfo(ep):
            raise UsageError(
                f"endpoint {redact(ep)} carries credentials: pass them in "
                "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (or a profile), never in a URL"
            )

    def _check_write_options(self) -> None:
        if self.sse is not None and self.sse not in SSE_MODES:
            raise UsageError(f"--sse takes {' or '.join(SSE_MODES)}, not {self.sse!r}")
        if self.sse_kms_key_id and self.sse != "aws:kms":
            raise UsageError("--sse-kms-key-id needs --sse aws:kms")
        if self.sse_c_key is not None and self.sse:
            raise UsageError("--sse and --sse-c-key-file exclude each other: an object has one encryption")
        if self.storage_class in ARCHIVE_CLASSES:
            raise UsageError(
                f"--storage-class {self.storage_class}: its objects cannot be read without a restore, so "
                "import and verify would fail; write STANDARD (or STANDARD_IA) and move the data objects "
                "with a lifecycle rule (docs/transfer.md)")
        if self.storage_class is not None and self.storage_class not in STORAGE_CLASSES:
            raise UsageError(f"--storage-class takes one of {', '.join(STORAGE_CLASSES)}, not {self.storage_class!r}")
        mode, days = self.object_lock_mode, self.object_lock_retain_days
        if mode is not None and mode not in LOCK_MODES:
            raise UsageError(f"--object-lock-mode takes {' or '.join(LOCK_MODES)}, not {mode!r}")
        if (mode is None) != (days is None):
            raise UsageError("--object-lock-mode and --object-lock-retain-days go together: "
                             "how objects are locked, and for how long")
        if days is not None and not 1 <= days <= MAX_LOCK_DAYS:
            raise UsageError(f"--object-lock-retain-days takes 1 to {MAX_LOCK_DAYS}, not {days}")
        if self.bwlimit is not None and self.bwlimit < 1:
            raise UsageError(f"--bwlimit takes a rate such as 20MiB (bytes per second), not {self.bwlimit}")

    def object_lock(self) -> ObjectLock | None:
        """The lock wanted on an object written now; None: no lock asked for."""
        if self.object_lock_mode is None and not self.legal_hold:
            return None
        until = None
        if self.object_lock_retain_days is not None:
            until = datetime.now(timezone.utc) + timedelta(days=self.object_lock_retain_days)
        return ObjectLock(self.object_lock_mode, until, bool(self.legal_hold))

    def put_args(self, key: str) -> dict:
        """What every PUT and CreateMultipartUpload of ``key`` carries: the encryption on
        every object; the storage class on data and view objects; the Object Lock on all
        but the export's scratch (checkpoints, leases), which it rewrites and deletes."""
        kind = getattr(parse_key(key), "kind", None)
        args: dict = {}
        if self.sse:
            args["ServerSideEncryption"] = self.sse
        if self.sse_kms_key_id:
            args["SSEKMSKeyId"] = self.sse_kms_key_id
        if kind in ("object", "view-object") and self.storage_class:
            args["StorageClass"] = self.storage_class
        lock = self.object_lock() if kind not in ("checkpoint", "lease") else None
        if lock is not None:
            if lock.mode:
                args["ObjectLockMode"], args["ObjectLockRetainUntilDate"] = lock.mode, lock.until
            if lock.legal_hold:
                args["ObjectLockLegalHoldStatus"] = "ON"
        return args

    def fs_options(self, on_retry=None) -> dict:
        """s3fs's constructor options; ``on_retry``, if given, hears botocore's needs-retry events."""
        options: dict = {
            "use_listings_cache": False,
            "skip_instance_cache": True,
            # botocore retries transient faults (SlowDown, 5xx, resets) with backoff;
            # s3fs adds its own bounded retries around every call on top.
            "config_kwargs": {
                "retries": {"max_attempts": 10, "mode": "standard"},
                "connect_timeout": 10,
                "read_timeout": 60,
                # every PUT carries the CRC32C we compute once (crc32c_header); no
                # second checksum pass by botocore over the same bytes
                "request_checksum_calculation": "when_required",
            },
        }
        if self.endpoint_url:
            options["endpoint_url"] = self.endpoint_url
        if self.sse_c_key is not None:
            # s3fs adds these to each call whose operation takes them (GET, HEAD, PUT, parts)
            options["s3_additional_kwargs"] = {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": self.sse_c_key}
        if self.region:
            options["client_kwargs"] = {"region_name": self.region}
        if on_retry is not None:
            from aiobotocore.session import AioSession

            options["session"] = AioSession()
            options["session"].register("needs-retry.s3", on_retry)
        return options


def crc32c_header(data) -> str:
    """S3's x-amz-checksum-crc32c value: the big-endian CRC32C, base64. The server checks
    it against the bytes it received (a tenth of MD5's CPU for Content-MD5's guarantee)."""
    return base64.b64encode(crc32c.crc32c(data).to_bytes(4, "big")).decode()


class S3Target(FsspecTarget):
    min_part_size = S3_MIN_PART_SIZE

    def __init__(self, url: str, display: str, options: S3Options):
        from fsspec.core import url_to_fs

        options.check()
        self.options = options
        try:
            fs, root = url_to_fs(url, **options.fs_options(self._count_retry))
        except Exception as exc:  # bad URL, bad options
            raise UsageError(f"cannot open archive URL {display}: {type(exc).__name__}") from None
        super().__init__(url, display, fs, root)
        self.fs.retries = 6  # s3fs's own retry loop around each call (instance attribute)
        if not self.root:
            raise UsageError(f"archive URL {self.display} names no bucket")
        self.bucket, _, prefix = self.root.partition("/")
        self._bucket_locks: bool | Exception | None = None
        # half a second saved over a short stall (an object's last part, the next one's first)
        # keeps the average at the limit and any 10 s within 5 % above it
        self.bandwidth = Bandwidth(options.bwlimit, burst=options.bwlimit / 2) if options.bwlimit else None
        self.key_prefix = prefix.strip("/")

    def presigned_url(self, key: str, expires: int) -> str:
        if self.options.sse_c_key is not None:
            raise UsageError(f"{self.display} is encrypted with a customer key (SSE-C): a URL alone cannot read it")
        with self.errors(key):
            return self.fs.url(self.path(key), expires=expires)

    def child(self, dirkey: str) -> S3Target:
        return S3Target(f"{self.url.rstrip('/')}/{dirkey}", self.where(dirkey), self.options)

    def object_lock(self) -> ObjectLock | None:
        return self.options.object_lock()

    def lock_of(self, key: str) -> ObjectLock | None:
        if not self.bucket_locks(strict=False):  # status on a server without the call still works
            return None
        head = self.call("head_object", key)
        mode, until = head.get("ObjectLockMode"), head.get("ObjectLockRetainUntilDate")
        hold = head.get("ObjectLockLegalHoldStatus") == "ON"
        return ObjectLock(mode, until, hold) if mode or hold else None

    def set_lock(self, key: str, lock: ObjectLock) -> None:
        try:
            if lock.mode and lock.until:
                self.call("put_object_retention", key, Retention={"Mode": lock.mode, "RetainUntilDate": lock.until})
            if lock.legal_hold:
                self.call("put_object_legal_hold", key, LegalHold={"Status": "ON"})
        except PermissionDeniedError:
            # a concurrent exporter may have set a later date, which S3 will not shorten
            have = self.lock_of(key)
            if have is None or have.renewed_by(lock) is not None:
                raise

    def _count_retry(self, response=None, caught_exception=None, **_kw) -> None:
        """botocore's needs-retry event, once per attempt: count the failed ones (a 5xx,
        a throttle, a reset). Returns None: the decision stays botocore's."""
        status = response[0].status_code if response is not None else None
        if caught_exception is not None or (status is not None and (status >= 500 or status == 429)):
            self.retries += 1

    def pace(self, nbytes: int) -> None:
        """Wait for ``nbytes`` of the --bwlimit (every request's body, sent or received)."""
        if self.bandwidth is not None:
            self.bandwidth.take(nbytes)

    def s3_key(self, key: str) -> str:
        return f"{self.key_prefix}/{key}" if self.key_prefix else key

    def call(self, method: str, key: str, **kw):
        """One S3 API call on ``key``, with our errors."""
        with self.errors(key):
            return self.fs.call_s3(method, Bucket=self.bucket, Key=self.s3_key(key), **kw)

    # -- checks --------------------------------------------------------------
    def check_access(self, create: bool = False) -> None:
        self._probe_endpoint()
        with self.errors():
            self.fs.call_s3("list_objects_v2", Bucket=self.bucket, Prefix=self.s3_key(""), MaxKeys=1)
        if create and self.options.object_lock() is not None and not self.bucket_locks():
            # S3 would refuse each PUT, after the run's checkpoints were written
            raise UsageError(
                f"bucket {self.bucket} has no Object Lock, so {self.display} cannot be locked: create the "
                "bucket with Object Lock enabled (aws s3api create-bucket --object-lock-enabled-for-bucket), "
                "or export without --object-lock-mode/--legal-hold")

    def bucket_locks(self, strict: bool = True) -> bool:
        """Has the bucket Object Lock enabled? Asked once; when the server or the caller's
        role cannot tell, ``strict`` raises that, else the answer is no."""
        if self._bucket_locks is None:
            try:
                conf = self.fs.call_s3("get_object_lock_configuration", Bucket=self.bucket)
                self._bucket_locks = (conf.get("ObjectLockConfiguration") or {}).get("ObjectLockEnabled") == "Enabled"
            except Exception as exc:
                no_config = client_error_code(exc) == "ObjectLockConfigurationNotFoundError"
                self._bucket_locks = False if no_config else translate_error(exc, self.where())
        if isinstance(self._bucket_locks, Exception):
            if strict:
                raise self._bucket_locks
            return False
        return self._bucket_locks

    def _probe_endpoint(self, attempts: int = 3, timeout: float = 3.0) -> None:
        """A custom endpoint that refuses connections fails in seconds (exit 69), not
        after the minutes botocore's retries would spend on it."""
        ep = self.options.endpoint_url
        if not ep:
            return
        parts = urlsplit(ep)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        for i in range(attempts):
            try:
                socket.create_connection((parts.hostname, port), timeout=timeout).close()
                return
            except OSError:
                if i + 1 < attempts:
                    time.sleep(0.5 * (i + 1))
        raise UnavailableError(f"cannot reach the storage endpoint {redact(ep)} for {self.display}")

    # -- objects -------------------------------------------------------------
    def read(self, key: str) -> bytes | None:
        data = super().read(key)
        self.pace(len(data or b""))
        return data

    def read_range(self, key: str, start: int, end: int) -> bytes:
        self.pace(end - start)
        return super().read_range(key, start, end)

    def write(self, key: str, data: bytes) -> None:
        self.pace(len(data))
        # a whole PUT: repeating it is harmless
        self._retried(key, lambda: self.call("put_object", key, Body=data, ChecksumCRC32C=crc32c_header(data),
                                             **self.options.put_args(key)))

    def read_versioned(self, key: str) -> tuple[bytes | None, str | None]:
        """The tag is the S3 ETag, for If-Match."""
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
            data, etag = self._retried(key, lambda: sync(self.fs.loop, get))
        except NotFoundError:
            return None, None
        self.pace(len(data))
        return data, etag

    def atomic_if(self, absent: bool) -> bool:
        """Some S3-compatible servers ignore the conditional headers: always read back."""
        return False

    def write_if(self, key: str, data: bytes, *, absent: bool = False, etag: str | None = None) -> str | None:
        """A conditional PUT (If-None-Match / If-Match, honoured by AWS, SeaweedFS and moto)."""
        self.pace(len(data))
        kw: dict = {}
        if absent:
            kw["IfNoneMatch"] = "*"
        elif etag:
            kw["IfMatch"] = etag
        try:
            resp = self.fs.call_s3("put_object", Bucket=self.bucket, Key=self.s3_key(key), Body=data, **kw,
                                   ChecksumCRC32C=crc32c_header(data), **self.options.put_args(key))
        except Exception as exc:
            if is_precondition_failure(exc):
                raise PreconditionFailed(key) from None
            raise translate_error(exc, self.where(key)) from None
        return resp.get("ETag")

    def delete(self, key: str) -> None:
        self.call("delete_object", key)

    def upload(self, key: str, part_size: int, pool: PartPool) -> ObjectUpload:
        return S3Upload(self, key, part_size, pool)

    def abort_stray_uploads(self, dirkey: str, keep: set[str] = frozenset()) -> int:
        n = 0
        for up in self.list_uploads(self.s3_key(dirkey)):
            if up["Key"] not in keep:
                with self.errors(dirkey):
                    self.fs.call_s3("abort_multipart_upload", Bucket=self.bucket, Key=up["Key"], UploadId=up["UploadId"])
                n += 1
        return n

    def list_uploads(self, prefix: str) -> list[dict]:
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


class S3Upload(ObjectUpload):
    """One PUT for an object of one part; otherwise a multipart upload that reuses parts.

    The first part is held back until a second one exists, so small objects cost a
    single request. Every part and object carries its CRC32C, which the server checks.
    A multipart upload already open for the same key (left by a killed exporter) is
    adopted: each part whose stored size and checksum (the CRC32C ListParts reports, or
    else the MD5 ETag, computed only then) match the bytes we would send is kept, the rest
    are (re)sent. Object bytes derive from events only, so the reused parts are exactly
    the ones an uninterrupted run would have sent.
    """

    def __init__(self, target: S3Target, key: str, part_size: int, pool: PartPool):
        self.t, self.key, self.pool = target, key, pool
        self.s3key = target.s3_key(key)
        self.part_size = part_size
        self.first: bytes | None = None
        self.upload_id: str | None = None
        self.existing: dict[int, dict] = {}
        #: parts carry CRC32C, as the upload was created (one adopted from another tool may not)
        self.crc = True
        self.futures: list[Future] = []
        self.etags: dict[int, tuple[str, str]] = {}  # part number -> (ETag, CRC32C)
        self.next_part = 1
        self.reused_parts = 0
        self.sent_bytes = 0
        self._lock = threading.Lock()

    def _call(self, method: str, **kw):
        return self.t.call(method, self.key, **kw)

    def _start_multipart(self) -> None:
        uploads = [u for u in self.t.list_uploads(self.s3key) if u["Key"] == self.s3key]
        uploads.sort(key=lambda u: (str(u.get("Initiated")), u["UploadId"]))
        if uploads:
            self.upload_id = uploads[0]["UploadId"]
            for extra in uploads[1:]:
                self._call("abort_multipart_upload", UploadId=extra["UploadId"])
            marker = 0
            while True:
                resp = self._call("list_parts", UploadId=self.upload_id, PartNumberMarker=marker)
                # some servers (SeaweedFS) list no algorithm for an upload created with ours
                self.crc = resp.get("ChecksumAlgorithm") in (None, "CRC32C")
                for p in resp.get("Parts") or []:
                    self.existing[int(p["PartNumber"])] = p
                if not resp.get("IsTruncated"):
                    break
                marker = int(resp.get("NextPartNumberMarker") or 0)
        else:
            self.upload_id = self._call("create_multipart_upload", ChecksumAlgorithm="CRC32C",
                                        **self.t.options.put_args(self.key))["UploadId"]

    def _stored(self, number: int, data: bytes, crc: str) -> str | None:
        """The ETag of part ``number`` if the adopted upload already holds these bytes."""
        have = self.existing.get(number)
        if not have or int(have["Size"]) != len(data):
            return None
        if have.get("ChecksumCRC32C"):
            return have["ETag"] if have["ChecksumCRC32C"] == crc else None
        md5 = hashlib.md5(data).hexdigest()  # servers that list no checksums: the ETag is the MD5
        return have["ETag"] if str(have["ETag"]).strip('"') == md5 else None

    def _send_part(self, number: int, data: bytes) -> None:
        crc = crc32c_header(data)
        etag = self._stored(number, data, crc)
        if etag is not None:
            with self._lock:
                self.reused_parts += 1
                self.etags[number] = (etag, crc)
            return
        self.t.pace(len(data))
        check = ({"ChecksumCRC32C": crc} if self.crc
                 else {"ContentMD5": base64.b64encode(hashlib.md5(data).digest()).decode()})
        resp = self._call("upload_part", UploadId=self.upload_id, PartNumber=number, Body=data, **check)
        with self._lock:
            self.sent_bytes += len(data)
            self.etags[number] = (resp["ETag"], crc)

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
        self.t.pace(len(data))
        self._call("put_object", Body=data, ChecksumCRC32C=crc32c_header(data), **self.t.options.put_args(self.key))
        with self._lock:
            self.sent_bytes += len(data)

    def finish(self) -> Future:
        if self.upload_id is None:
            data, self.first = self.first or b"", None
            return self.pool.submit(self._put_single, data)
        for f in self.futures:
            f.result()  # raises the first failure
        parts = [{"PartNumber": n, "ETag": etag, **({"ChecksumCRC32C": crc} if self.crc else {})}
                 for n, (etag, crc) in sorted(self.etags.items())]
        self._call("complete_multipart_upload", UploadId=self.upload_id, MultipartUpload={"Parts": parts})
        return done()

    def abandon(self) -> None:
        for f in self.futures:  # the parts stored stay for the next attempt
            with contextlib.suppress(Exception):
                f.result()
