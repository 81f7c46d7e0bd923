"""The same mount over Pravega (pravega://SCOPE): the StreamStore protocol is all FUSE uses."""

from __future__ import annotations

import hashlib
import os
import random
import uuid

import pytest

from support.mounting import mounted

pytestmark = [pytest.mark.pravega, pytest.mark.fuse, pytest.mark.timeout(300)]


def test_pravega_scope_mount_reads_the_file_views(
    mountdir, pravega_store, pravega_server, tmp_path
):
    scope = "fuse" + uuid.uuid4().hex[:8]
    rnd = random.Random(11)
    single = [rnd.randbytes(rnd.randint(1, 5000)) for _ in range(50)]
    pravega_store.create_stream(scope, "single", segments=1)
    pravega_store.create_stream(scope, "multi", segments=2)
    views = [bytearray(), bytearray()]
    with pravega_store.writer(scope, "single") as w:
        for p in single:
            w.append(p)
    with pravega_store.writer(scope, "multi") as w:
        for i in range(20):
            p = rnd.randbytes(rnd.randint(1, 3000))
            w.append(p, segment=i % 2)
            views[i % 2] += p

    mp = mountdir()
    with mounted(f"pravega://{scope}", mp, "--controller", pravega_server.controller):
        assert sorted(os.listdir(mp)) == ["multi", "single"]
        data = b"".join(single)
        st = os.stat(mp / "single")
        assert st.st_size == len(data)
        assert (mp / "single").read_bytes() == data
        with open(mp / "single", "rb") as f:
            half = len(data) // 2
            f.seek(half)
            assert f.read(1000) == data[half:][:1000]
        assert os.stat(mp / "single").st_mtime_ns == st.st_mtime_ns  # stable
        for seg in (0, 1):
            got = (mp / "multi" / str(seg)).read_bytes()
            assert hashlib.sha256(got).hexdigest() == hashlib.sha256(bytes(views[seg])).hexdigest()
