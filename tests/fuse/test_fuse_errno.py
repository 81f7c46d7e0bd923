"""Every error inside the filesystem reaches the caller as a meaningful errno. fsspec's
FUSE layer turned errno-less OSErrors into ERANGE ("Numerical result out of range"),
which sends an admin in the wrong direction; ours gives EIO for those, the store's own
errno for its errors, and the OSError's errno where it has one."""

from __future__ import annotations

import errno

import pytest

from stream_backend import errors as E
from stream_backend.fs.fuse import FuseOSError, fuse_errors


class Ops:
    def __init__(self, exc):
        self.exc = exc

    @fuse_errors
    def read(self, path):
        raise self.exc


@pytest.mark.parametrize(
    "exc, want",
    [
        (OSError("errno-less"), errno.EIO),  # fsspec's layer would say ERANGE
        (RuntimeError("a bug"), errno.EIO),
        (ValueError("bad value"), errno.EIO),
        (OSError(errno.ENOSPC, "disk full"), errno.ENOSPC),
        (FileNotFoundError("gone"), errno.ENOENT),
        (PermissionError("no"), errno.EACCES),
        (NotImplementedError(), errno.EOPNOTSUPP),
        (E.NotFoundError("no stream"), errno.ENOENT),
        (E.WriterBusyError("another writer"), errno.EBUSY),
        (E.SealedError("sealed"), errno.EROFS),
        (E.CorruptionError("bad crc"), errno.EIO),
        (E.UnavailableError("controller down"), errno.EHOSTUNREACH),
        (E.PermissionDeniedError("denied"), errno.EACCES),
    ],
)
def test_exceptions_become_the_right_errno(exc, want):
    with pytest.raises(FuseOSError) as info:
        Ops(exc).read("/x")
    assert info.value.errno == want and info.value.errno != errno.ERANGE
