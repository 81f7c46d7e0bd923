"""The local store's files: names, metadata, and the careful ways they are written."""

from __future__ import annotations

import json
import os
import secrets
from contextlib import contextmanager

from ...errors import StreamBackendError, UsageError, from_os_error
from ...urls import check_name

FORMAT_VERSION = 1
STREAM_JSON = "stream.json"
LOCK_FILE = "writer.lock"


def seg_name(segment: int) -> str:
    return f"segment-{segment:06d}"


@contextmanager
def os_errors(what: str):
    """Turn OS errors of a mutating operation into one-line tool errors."""
    try:
        yield
    except StreamBackendError:
        raise
    except OSError as e:
        raise from_os_error(e, what) from None


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json_atomic(path: str, data: dict) -> None:
    tmp = f"{path}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(os.path.dirname(path))


def stat_key(path: str):
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)



def valid_name(name: str) -> bool:
    try:
        check_name("name", name)
        return True
    except UsageError:
        return False
