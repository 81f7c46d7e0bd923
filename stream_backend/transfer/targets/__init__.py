"""Where archives live: a local directory, an S3 bucket, or any other fsspec URL.

Everything the transfer engine does to an archive goes through an ``ArchiveTarget``
(``base``): errors translated once (``errors``), small JSON objects written whole and
atomically, data objects through an ``ObjectUpload``. ``open_target`` picks the target
for a URL: ``S3Target`` (resumable multipart, conditional PUTs), ``LocalTarget``
(fsync and rename, O_EXCL leases, objects read in place) or ``FsspecTarget``.
"""

from __future__ import annotations

import os

from ... import settings
from ...errors import UsageError
from ...urls import check_archive_url, redact
from .base import ArchiveTarget, FsspecTarget
from .errors import PreconditionFailed, translate_error
from .local import LocalTarget
from .s3 import S3_MIN_PART_SIZE, S3Options, S3Target
from .uploads import ObjectUpload, PartPool

S3_SCHEMES = ("s3", "s3a")


def open_target(url: str, s3: S3Options | None = None) -> ArchiveTarget:
    """The target for an archive URL (a plain path is a local directory). ``s3`` applies
    to s3:// URLs only; without it the endpoint comes from the environment."""
    display = redact(url)
    check_archive_url(url, display)
    if "://" not in url:  # a plain path: shown as the directory it is
        url = display = "file://" + os.path.abspath(os.path.expanduser(url))
    scheme = url.split("://", 1)[0]
    if scheme in S3_SCHEMES:
        return S3Target(url, display, s3 or S3Options(endpoint_url=settings.s3_endpoint()))
    if s3 is not None and s3.endpoint_url:
        raise UsageError(f"--endpoint-url applies to s3:// archives only, not {display}")
    import fsspec
    from fsspec.core import url_to_fs
    from fsspec.implementations.local import LocalFileSystem

    try:
        fsspec.get_filesystem_class(scheme)
    except (ValueError, ImportError) as exc:
        raise UsageError(f"unsupported archive URL {display}: {exc}") from None
    try:
        fs, root = url_to_fs(url)
    except Exception as exc:  # bad URL, bad options
        raise UsageError(f"cannot open archive URL {display}: {type(exc).__name__}") from None
    kind = LocalTarget if isinstance(fs, LocalFileSystem) else FsspecTarget
    return kind(url, display, fs, root)


__all__ = [
    "ArchiveTarget", "FsspecTarget", "LocalTarget", "ObjectUpload", "PartPool", "PreconditionFailed",
    "S3Options", "S3Target", "S3_MIN_PART_SIZE", "S3_SCHEMES", "open_target", "translate_error",
]
