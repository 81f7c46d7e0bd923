"""The client of a download plan: the file view fetched straight from S3 by the plan's
presigned URLs, parts in parallel, each written at its offset and checked by its SHA-256.
A dropped connection continues with Range from the last byte received; a rerun keeps every
part already on disk whose SHA-256 matches, so an interrupted download resumes."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from ..errors import CorruptionError, NotFoundError, PermissionDeniedError, UnavailableError, UsageError

CHUNK = 1 << 20
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
            if p["offset"] != offset or p["size"] < 0 or len(p["sha256"]) != 64 or not p["url"]:
                raise ValueError
            offset += p["size"]
        if offset != plan["size"]:
            raise ValueError
    except (KeyError, TypeError, ValueError):
        raise UsageError("not a download plan: parts must cover the file in order, each with url, offset, "
                         "size and sha256") from None
    return plan


def _region_matches(fd: int, part: dict) -> bool:
    h, pos, end = hashlib.sha256(), part["offset"], part["offset"] + part["size"]
    while pos < end:
        chunk = os.pread(fd, min(CHUNK, end - pos), pos)
        if not chunk:
            return False
        h.update(chunk)
        pos += len(chunk)
    return h.hexdigest() == part["sha256"]


def _fetch(fd: int, part: dict, progress) -> None:
    got, h = 0, hashlib.sha256()
    for attempt in range(ATTEMPTS):
        headers = {"Range": f"bytes={got}-{part['size'] - 1}"} if got else {}
        try:
            with urllib.request.urlopen(urllib.request.Request(part["url"], headers=headers), timeout=60) as r:
                if got and r.status != 206:
                    raise UnavailableError("the server ignored Range: cannot continue the part")
                while got < part["size"]:
                    chunk = r.read(min(CHUNK, part["size"] - got))
                    if not chunk:
                        raise http.client.IncompleteRead(b"")
                    os.pwrite(fd, chunk, part["offset"] + got)
                    h.update(chunk)
                    got += len(chunk)
                    if progress is not None:
                        progress.add_done(0, len(chunk))
            break
        except urllib.error.HTTPError as exc:
            if exc.code == 403:
                raise PermissionDeniedError("S3 refused a URL of the plan (403): it expired or was revoked; "
                                            "fetch a new plan and run the same command again") from None
            if exc.code < 500 or attempt == ATTEMPTS - 1:
                raise UnavailableError(f"S3 answered {exc.code} for a part at offset {part['offset']}") from None
        except (OSError, http.client.HTTPException) as exc:
            if attempt == ATTEMPTS - 1:
                raise UnavailableError(f"the part at offset {part['offset']} failed {ATTEMPTS} times: {exc}") from None
    if h.hexdigest() != part["sha256"]:
        raise CorruptionError(f"the part at offset {part['offset']} does not match its SHA-256: "
                              "run the same command again to fetch it anew")


def download(plan: dict, output: str, parallel: int = 4, progress=None) -> dict:
    """Fetch what ``output`` lacks of the plan's file view; the summary says what was kept."""
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
        with ThreadPoolExecutor(parallel, thread_name_prefix="download") as pool:
            for f in [pool.submit(_fetch, fd, p, progress) for p in todo]:
                f.result()
        os.fsync(fd)
    finally:
        os.close(fd)
    return {"event": "done", "op": "download", "output": output, "bytes": plan["size"],
            "parts": len(plan["parts"]), "fetched": len(todo), "kept": len(kept)}
