"""One exception hierarchy for the whole tool, each class carrying its exit code.

The CLI turns any ``StreamBackendError`` into one line on stderr and ``exit_code``;
anything else is a bug and still never prints a traceback unless ``--debug``.
Exit codes follow sysexits(3) so shells and Kubernetes can tell them apart;
docs/cli.md lists them.
"""

from __future__ import annotations

import errno as _errno


class StreamBackendError(Exception):
    """Base class: a user-facing failure with a one-line message."""

    exit_code = 1
    errno = _errno.EIO


class UsageError(StreamBackendError):
    """Bad URL, bad option value, malformed input."""

    exit_code = 64  # EX_USAGE
    errno = _errno.EINVAL


class NotFoundError(StreamBackendError):
    """Unknown scope, stream, segment, archive or bucket."""

    exit_code = 66  # EX_NOINPUT
    errno = _errno.ENOENT


class AlreadyExistsError(StreamBackendError):
    """Creating something that is already there."""

    exit_code = 73  # EX_CANTCREAT
    errno = _errno.EEXIST


class NotEmptyError(StreamBackendError):
    """Deleting a non-empty scope, or importing into a stream that is not ours."""

    exit_code = 73
    errno = _errno.ENOTEMPTY


class SealedError(StreamBackendError):
    """Appending to a sealed stream."""

    exit_code = 73
    errno = _errno.EROFS


class EventTooLargeError(UsageError):
    """A single event larger than the store's max event size."""

    errno = _errno.EFBIG


class WriterBusyError(StreamBackendError):
    """Another writer holds the stream (or another transfer holds the archive)."""

    exit_code = 75  # EX_TEMPFAIL: retry later
    errno = _errno.EBUSY


class CorruptionError(StreamBackendError):
    """A record, object or manifest failed its checksum. Never served."""

    exit_code = 65  # EX_DATAERR
    errno = _errno.EIO


class FormatVersionError(StreamBackendError):
    """An archive (or store) written by a newer version of this tool."""

    exit_code = 65
    errno = _errno.EPROTO


class ArchiveBehindError(StreamBackendError):
    """verify --against: the stream holds events the archive does not."""

    exit_code = 3
    errno = _errno.EIO


class StreamBehindError(StreamBackendError):
    """verify --against: the archive holds events the stream does not."""

    exit_code = 4
    errno = _errno.EIO


class NoSpaceError(StreamBackendError):
    """The disk or quota under a store or an archive is full."""

    exit_code = 74  # EX_IOERR
    errno = _errno.ENOSPC


class PermissionDeniedError(StreamBackendError):
    """Store root not writable, wrong credentials, access denied."""

    exit_code = 77  # EX_NOPERM
    errno = _errno.EACCES


class UnavailableError(StreamBackendError):
    """A server (Pravega controller, S3 endpoint) cannot be reached in time."""

    exit_code = 69  # EX_UNAVAILABLE
    errno = _errno.EHOSTUNREACH


class Paused(StreamBackendError):
    """A transfer stopped by SIGTERM/SIGINT with its checkpoint saved: run again to resume."""

    exit_code = 75  # EX_TEMPFAIL
    errno = _errno.EINTR


class UnsupportedError(StreamBackendError):
    """An operation a stream cannot do (rename, overwrite in the middle, truncate)."""

    exit_code = 64
    errno = _errno.EOPNOTSUPP


def from_os_error(exc: OSError, what: str) -> StreamBackendError:
    """The one table from an OS error to ours: ``what`` names the operation and path
    ("write archive object /mnt/b/x"); the cause is said in words, the code tells a Job
    whether retrying can help (a full disk or a read-only mount will not heal by itself)."""
    code = exc.errno
    if code in (_errno.ENOSPC, _errno.EDQUOT):
        cause = "no space left on device" if code == _errno.ENOSPC else "disk quota exceeded"
        return NoSpaceError(f"cannot {what}: {cause}; free space (or raise the quota) and run again")
    if code == _errno.EROFS:
        return PermissionDeniedError(f"cannot {what}: read-only file system")
    if code in (_errno.EACCES, _errno.EPERM):
        return PermissionDeniedError(f"cannot {what}: permission denied")
    if code in (_errno.ENOENT, _errno.ENOTDIR):
        return NotFoundError(f"cannot {what}: {exc.strerror or 'not found'}")
    return StreamBackendError(f"cannot {what}: {exc.strerror or type(exc).__name__}")
