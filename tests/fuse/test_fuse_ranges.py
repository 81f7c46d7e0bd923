"""Property: any byte range read through the mount is that range of the file view."""

from __future__ import annotations

import os
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from support.mounting import mounted, private_mount_dirs

pytestmark = [pytest.mark.fuse, pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def view(tmp_path_factory):
    from stream_backend.stores.local import LocalStore

    base = tmp_path_factory.mktemp("ranges")
    store = LocalStore(root=str(base / "store"))
    rnd = random.Random(21)
    store.create_stream("r", "s")
    data = bytearray()
    with store.writer("r", "s") as w:
        for i in range(400):  # sizes from empty to larger than a FUSE request
            n = rnd.choice([0, 1, 7, 100, 4096, 70_000, 300_000]) if i % 5 else rnd.randint(0, 50)
            p = rnd.randbytes(n)
            w.append(p)
            data += p
    store.close()
    with (
        private_mount_dirs() as mountdir,
        mounted("stream://r", mp := mountdir(), root=base / "store"),
    ):
        fd = os.open(mp / "s", os.O_RDONLY)
        try:
            yield fd, bytes(data)
        finally:
            os.close(fd)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    start=st.floats(min_value=0, max_value=1.05),
    length=st.integers(min_value=0, max_value=3_000_000),
)
def test_pread_any_range(view, start, length):
    fd, data = view
    offset = int(start * len(data))
    assert os.pread(fd, length, offset) == data[offset:][:length]
