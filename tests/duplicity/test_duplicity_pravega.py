"""A Pravega stream as the duplicity target (pravega://SCOPE/STREAM)."""

from __future__ import annotations

import time
import uuid

import pytest
from dup_helpers import diff_r, dup_env, duplicity, make_tree

pytestmark = [pytest.mark.pravega, pytest.mark.timeout(300)]


def test_pravega_stream_target_full_incremental_restore(pravega_server, tmp_path):
    src = tmp_path / "src"
    make_tree(src, seed=8, files=8)
    url = f"pravega://dup{uuid.uuid4().hex[:8]}/pv1"
    env = dup_env(PRAVEGA_CONTROLLER_URI=pravega_server.controller)
    duplicity("full", src, url, archive_dir=tmp_path / "a", env=env)
    time.sleep(1.1)
    (src / "later.txt").write_text("added\n")
    duplicity("incr", src, url, archive_dir=tmp_path / "a", env=env)
    duplicity("verify", url, src, archive_dir=tmp_path / "v", env=env)
    duplicity("restore", url, tmp_path / "out", archive_dir=tmp_path / "r", env=env)
    assert diff_r(src, tmp_path / "out") == ""
