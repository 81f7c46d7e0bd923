"""The client of a download plan: the file view fetched straight from S3 by the plan's
presigned URLs, parts in parallel, each written at its offset and checked by its CRC32C
(S3's own checksum, a tenth of SHA-256's CPU) or, in plans without one, its SHA-256.
A dropped connection continues with Range from the last byte received; a rerun keeps every
part already on disk whose checksum matches, so an interrupted download resumes."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import crc32c

from ..errors import CorruptionError, NotFoundError, PermissionDeniedError, UnavailableError, UsageError

CHUNK = 1 << 20
#: the smallest piece a part is split into when there are fewer parts than GETs at once
RANGE = 8 << 20
#: pieces fetched at once by default
PARALLEL = 8
#: a part's GET is continued with Range this many times after a dropped connection
ATTEMPTS = 5


def fetch_plan(source: str, token: str | None = None) -> dict:
    """The plan at ``source``: an http(s) URL of `serve` (``.../download``) or a JSON file."""
    if source.startswith(("http://", "https://")):
        req = urllib.request.Request(source, headers={"Authorization": f"Bearer {token}"} if token else {})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                plan = json.loads(r.read())
        except urllib.error.HTTPError as exc:
            try:
                detail = json.loads(exc.read()).get("detail")
            except ValueError:
                detail = exc.reason
            kind = {401: PermissionDeniedError, 403: PermissionDeniedError, 404: NotFoundError}.get(exc.code, UsageError)
            raise kind(f"the plan was refused ({exc.code}): {detail}") from None
        except (OSError, ValueError) as exc:
            raise UnavailableError(f"cannot fetch the plan: {exc}") from None
    else:
        try:
            with open(source, encoding="utf-8") as f:
                plan = json.load(f)
        except (OSError, ValueError) as exc:
            raise UsageError(f"cannot read the plan {source}: {exc}") from None
    try:
        offset = 0
        for p in plan["parts"]:
            if (p["offset"] != offset or p["size"] < 0 or len(p["sha256"]) != 64 or not p["url"]
                    or len(p.get("crc32c", "0" * 8)) != 8):
                raise ValueError
            offset += p["size"]
        if offset != plan["size"]:
            raise ValueError
    except (KeyError, TypeError, ValueError):
        raise UsageError("not a download plan: parts must cover the file in order, each with url, offset, "
                         "size and sha256 (crc32c optional)") from None
    return plan


class _Checksum:
    """A part's own checksum, fed in order: CRC32C when the plan has it, else SHA-256."""

    def __init__(self, part: dict):
        self.want = part.get("crc32c") or part["sha256"]
        self._sha = None if "crc32c" in part else hashlib.sha256()
        self._crc = 0

    def update(self, data) -> None:
        if self._sha is None:
            self._crc = crc32c.crc32c(data, self._crc)
        else:
            self._sha.update(data)

    def matches(self) -> bool:
        return (self._sha.hexdigest() if self._sha else f"{self._crc:08x}") == self.want


def _region_matches(fd: int, part: dict) -> bool:
    check, pos, end = _Checksum(part), part["offset"], part["offset"] + part["size"]
    while pos < end:
        chunk = os.pread(fd, min(CHUNK, end - pos), pos)
        if not chunk:
            return False
        check.update(chunk)
        pos += len(chunk)
    return check.matches()


def _fetch_range(fd: int, part: dict, start: int, end: int, progress, digest=None) -> None:
    """Bytes [start, end) of ``part`` written at their place (and fed to ``digest``, in
    order); a dropped connection continues with Range from the last byte received."""
    buf = memoryview(bytearray(min(CHUNK, end - start)))
    got = start
    for attempt in range(ATTEMPTS):
        ranged = (got, end) != (0, part["size"])
        headers = {"Range": f"bytes={got}-{end - 1}"} if ranged else {}
        try:
            with urllib.request.urlopen(urllib.request.Request(part["url"], headers=headers), timeout=60) as r:
                if ranged and r.status != 206:
                    raise UnavailableError("the server ignored Range: cannot fetch a part in pieces")
                while got < end:
                    n = r.readinto(buf[: min(len(buf), end - got)])
                    if not n:
                        raise http.client.IncompleteRead(b"")
                    os.pwrite(fd, buf[:n], part["offset"] + got)
                    if digest is not None:
                        digest.update(buf[:n])
                    got += n
                    if progress is not None:
                        progress.add_done(0, n)
            return
        except urllib.error.HTTPError as exc:
            if exc.code == 403:
                raise PermissionDeniedError("S3 refused a URL of the plan (403): it expired or was revoked; "
                                            "fetch a new plan and run the same command again") from None
            if exc.code < 500 or attempt == ATTEMPTS - 1:
                raise UnavailableError(f"S3 answered {exc.code} for a part at offset {part['offset']}") from None
        except (OSError, http.client.HTTPException) as exc:
            if attempt == ATTEMPTS - 1:
                raise UnavailableError(f"the part at offset {part['offset']} failed {ATTEMPTS} times: {exc}") from None


class _Part:
    """One part, fetched whole (hashed as it arrives) or as several ranges at once (hashed
    from the file by whoever writes the last range)."""

    def __init__(self, part: dict, pieces: int, durable: bool):
        self.part, self.left, self.durable, self.lock = part, pieces, durable, threading.Lock()
        self.digest = _Checksum(part) if pieces == 1 else None

    def piece_done(self, fd: int) -> None:
        with self.lock:
            self.left -= 1
            last = self.left == 0
        if not last:
            return
        if not (self.digest.matches() if self.digest else _region_matches(fd, self.part)):
            raise CorruptionError(f"the part at offset {self.part['offset']} does not match its checksum: "
                                  "run the same command again to fetch it anew")
        if self.durable:
            os.fdatasync(fd)  # the disk writes while other parts download, not all at the end


def _pieces(todo: list[dict], parallel: int, durable: bool) -> list[tuple[_Part, int, int]]:
    """Every part in as few ranges (of at least RANGE bytes) as keep ``parallel`` GETs busy:
    many parts go whole, a few large ones in pieces."""
    per_part = max(1, -(-parallel // max(1, len(todo))))
    out = []
    for p in todo:
        n = max(1, min(per_part, p["size"] // RANGE))
        step = -(-p["size"] // n) if p["size"] else 0
        whole = _Part(p, n, durable)
        out += [(whole, i * step, min((i + 1) * step, p["size"])) for i in range(n)]
    return out


def download(plan: dict, output: str, parallel: int = PARALLEL, progress=None, durable: bool = False) -> dict:
    """Fetch what ``output`` lacks of the plan's file view; the summary says what was kept.
    ``parallel`` GETs at once, large parts in ranged pieces when there are fewer parts
    than GETs, so one large object downloads as fast as many small ones. Like cp and curl
    it leaves the file to the page cache unless ``durable``: a rerun checks every kept
    part's checksum, so bytes a crash lost are fetched again, never trusted."""
    if parallel < 1:
        raise UsageError("--parallel must be at least 1")
    fd = os.open(output, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        have = os.fstat(fd).st_size
        kept = [p for p in plan["parts"] if p["offset"] + p["size"] <= have and _region_matches(fd, p)]
        os.ftruncate(fd, plan["size"])
        todo = [p for p in plan["parts"] if p not in kept]
        if progress is not None:
            progress.add_total(0, plan["size"])
            progress.add_done(0, sum(p["size"] for p in kept), resumed=True)
        pieces = _pieces(todo, parallel, durable)

        def fetch(whole: _Part, start: int, end: int) -> None:
            if end > start:
                _fetch_range(fd, whole.part, start, end, progress, whole.digest)
            whole.piece_done(fd)

        with ThreadPoolExecutor(parallel, thread_name_prefix="download") as pool:
            futures = [pool.submit(fetch, *piece) for piece in pieces]
            try:
                for f in futures:
                    f.result()
            except BaseException:
                for f in futures:
                    f.cancel()
                raise
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    return {"event": "done", "op": "download", "output": output, "bytes": plan["size"],
            "parts": len(plan["parts"]), "fetched": len(todo), "kept": len(kept)}
