"""The copy-paste examples of docs/cli.md, the README's everyday block and docs/transfer.md's
command blocks run as written: each block is taken from the page and run by bash with
`set -euo pipefail`, against a fresh local store, the suite's S3 server and its Pravega
standalone (the only edits: the store root, the controller address and endpoint the
servers got). A page whose example stops working fails here.

Not run here: the admin guide's FUSE/duplicity blocks (tests/fuse, tests/duplicity run the
same commands; its read-write block runs in tests/fuse/test_docs_blocks.py) and
kubernetes.md's kubectl lines (they need a cluster)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from stream_backend.stores.pravega import PravegaStore

from .conftest import CLI

ROOT = Path(__file__).resolve().parents[2]


def blocks(page: str) -> list[str]:
    text = (ROOT / page).read_text()
    return re.findall(r"^```(?:bash|sh)\n(.*?)^```", text, re.M | re.S)


def block_with(page: str, needle: str) -> str:
    found = [b for b in blocks(page) if needle in b]
    assert len(found) == 1, f"{page}: {len(found)} blocks contain {needle!r}"
    return found[0]


def run(script: str, env: dict, cwd: Path) -> subprocess.CompletedProcess:
    bindir = str(Path(CLI[0]).parent)
    env = {**env, "PATH": f"{bindir}:{os.environ['PATH']}"}
    p = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=cwd, env=env,
                       capture_output=True, text=True, errors="replace", timeout=300)
    assert p.returncode == 0, f"exit {p.returncode}\n--- script\n{script}\n--- stderr\n{p.stderr[-3000:]}"
    assert "Traceback" not in p.stderr
    return p


@pytest.fixture
def work(tmp_path):
    d = tmp_path / "work"
    d.mkdir()
    (d / "app.log").write_bytes(b"".join(b"%08d some log line\n" % i for i in range(110_000)))  # 2.4 MiB
    return d


def test_cli_reference_examples(tmp_path, work, pravega_server):
    ctl = pravega_server.controller
    env = {**os.environ, "STREAM_BACKEND_ROOT": str(tmp_path / "store"), "PRAVEGA_CONTROLLER_URI": ctl}
    page = "docs/cli.md"
    order = ["stream-backend create stream://demo/logs\n", "stream-backend write stream://demo/logs",
             "stream-backend info stream://demo/logs", "stream-backend ls ",
             "stream-backend cat stream://demo/logs", "stream-backend events stream://a/x",
             "stream-backend seal stream://demo/logs", "stream-backend rm stream://demo/logs"]
    # what the examples assume exists: a Pravega scope demo, and stream a/x in both stores
    setup = (f"stream-backend create pravega://demo; "
             f"for u in stream://a/x pravega://a/x; do stream-backend write --create --event-size 1000 $u app.log; done")
    script = "\n".join([setup, *(block_with(page, n) for n in order)])
    script = script.replace("tcp://127.0.0.1:9090", ctl)
    try:
        p = run(script, env, work)
    finally:
        s = PravegaStore(controller=ctl)
        for scope in ("demo", "a"):
            for stream in (s.list_streams(scope) if scope in s.list_scopes() else []):
                s.delete_stream(scope, stream)
            if scope in s.list_scopes():
                s.delete_scope(scope)
        s.close()
    assert "created stream://demo/blobs (1 segment, max event size 32.0 MiB)" in p.stderr
    assert (work / "app.log").stat().st_size > 2 << 20  # `cat ... > app.log` wrote it back whole


def test_readme_everyday_block(tmp_path, work, s3_bucket, s3_lock_bucket):
    block = block_with("README.md", "stream-backend export stream://app/events s3://backups/app-events")
    script = (block.replace(". .venv/bin/activate", ":")
                   .replace("export STREAM_BACKEND_ROOT=/mnt/pv/streams", f"export STREAM_BACKEND_ROOT={tmp_path}/pv")
                   .replace("s3://backups/", f"s3://{s3_bucket.name}/")
                   .replace("s3://locked-backups/", f"s3://{s3_lock_bucket.name}/"))
    (work / "events.bin").write_bytes(os.urandom(3 << 20))
    env = {**os.environ, **s3_bucket.server.env}
    p = run(script, env, work)
    assert "import:         complete" in p.stdout


def test_transfer_page_blocks(tmp_path, work, s3_bucket, s3_lock_bucket):
    script = re.sub(r"s3://backups\b", f"s3://{s3_bucket.name}", "\n".join(blocks("docs/transfer.md")))
    script = re.sub(r"s3://locked-backups\b", f"s3://{s3_lock_bucket.name}", script)
    setup = "stream-backend write --create --event-size 4KiB stream://demo/logs app.log\n"
    env = {**os.environ, **s3_bucket.server.env, "STREAM_BACKEND_ROOT": str(tmp_path / "store")}
    run(setup + script, env, work)
