"""Parse stream URLs (``stream://SCOPE/STREAM[/SEGMENT]``, ``pravega://SCOPE/STREAM``), check
archive URLs, and redact credentials from anything shown.

Kept apart from any store so the CLI, fsspec and FUSE agree on one grammar.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from .errors import UsageError

STORE_PROTOCOLS = ("stream", "pravega")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")


def check_name(kind: str, name: str) -> str:
    """Raise UsageError unless ``name`` is a valid scope or stream name."""
    if not _NAME.match(name or ""):
        raise UsageError(
            f"invalid {kind} name {name!r}: use letters, digits, '.', '_' or '-' "
            "(at most 255, not starting with '.', '_' or '-')"
        )
    return name


@dataclass(frozen=True)
class StreamURL:
    protocol: str  # "stream" or "pravega"
    scope: str | None = None
    stream: str | None = None
    segment: int | None = None

    def __str__(self) -> str:
        parts = [p for p in (self.scope, self.stream) if p]
        if self.segment is not None:
            parts.append(str(self.segment))
        return f"{self.protocol}://" + "/".join(parts)


_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^/?#\s@]*@")


_SECRET_ENV = re.compile(r"SECRET|PASSWORD|TOKEN|ACCESS_KEY|CREDENTIAL", re.IGNORECASE)


def redact(text: str) -> str:
    """``text`` with the ``user:password@`` part of every URL in it removed, and the value
    of every secret-looking environment variable (AWS keys, Pravega passwords and tokens)
    masked: the one rule for anything printed, logged or written into a termination
    message."""
    text = _USERINFO.sub(r"\1", text)
    for name, value in os.environ.items():
        if len(value) >= 4 and _SECRET_ENV.search(name) and value in text:
            text = text.replace(value, "***")
    return text


def has_userinfo(url: str) -> bool:
    return bool(_USERINFO.match(url or ""))


def parse_stream_url(url: str, need: str = "stream") -> StreamURL:
    """Parse a store URL. ``need`` is "store", "scope" or "stream": the least it must name."""
    if has_userinfo(url):
        raise UsageError(f"{redact(url)}: credentials do not belong in a stream URL (they would be shown and "
                         "logged); use the store's own settings (docs/pravega.md)")
    url = url or ""
    m = re.match(r"^([a-z]+)://(.*)$", url or "")
    if not m or m.group(1) not in STORE_PROTOCOLS:
        raise UsageError(f"not a stream URL: {redact(url)!r} (expected stream://SCOPE/STREAM or pravega://SCOPE/STREAM)")
    proto, rest = m.group(1), m.group(2).strip("/")
    parts = [p for p in rest.split("/") if p] if rest else []
    if len(parts) > 3:
        raise UsageError(f"too many path parts in {url!r}: expected {proto}://SCOPE/STREAM")
    scope = check_name("scope", parts[0]) if parts else None
    stream = check_name("stream", parts[1]) if len(parts) > 1 else None
    segment = None
    if len(parts) == 3:
        if not parts[2].isdigit():
            raise UsageError(f"segment must be a number in {url!r}")
        segment = int(parts[2])
    order = {"store": 0, "scope": 1, "stream": 2}
    have = 2 if stream else 1 if scope else 0
    if have < order[need]:
        raise UsageError(f"{url!r} names no {need}: expected {proto}://SCOPE" + ("/STREAM" if need == "stream" else ""))
    return StreamURL(proto, scope, stream, segment)


def check_archive_url(url: str, shown: str) -> None:
    """Refuse archive URLs that would put an archive somewhere else than the user meant:
    credentials in the URL (they would show in listings, logs and directory names), empty,
    ``.`` or ``..`` path parts (``s3://b//p`` is another key than ``s3://b/p``; ``..``
    escapes the named directory), and ``file://`` naming no directory. Plain local
    paths are taken as the shell would."""
    if not url:
        raise UsageError("empty archive URL")
    if "://" not in url:
        return  # a plain local path: the shell's rules ('..' included) apply, as for cp
    try:
        parts = urlsplit(url)
    except ValueError:
        raise UsageError(f"bad archive URL {shown}") from None
    if "@" in parts.netloc:
        raise UsageError(
            f"archive URL {shown} carries credentials: pass them in AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY "
            "(or a profile, a Secret in Kubernetes), never in a URL"
        )
    scheme = parts.scheme.lower()
    if scheme == "file":
        if parts.netloc:  # fsspec would take file://HOST/DIR for a relative HOST/DIR
            raise UsageError(f"archive URL {shown}: file:// takes an absolute path, file:///DIR")
        if not parts.path.strip("/"):
            raise UsageError(f"archive URL {shown} names no directory: use file:///DIR")
    elif scheme in ("s3", "s3a") and not parts.netloc:
        raise UsageError(f"archive URL {shown} names no bucket: use s3://BUCKET/PREFIX")
    path = parts.path
    bits = path.split("/")
    inner = bits[1:-1] if path.startswith("/") else bits[:-1]
    if any(b in ("", ".", "..") for b in inner) or bits[-1] in (".", ".."):
        raise UsageError(f"archive URL {shown} has an empty, '.' or '..' path part: write the prefix plainly")
