"""`stream-backend download`'s client against a real S3 server: one large object comes in
ranged pieces, dropped connections continue, and a part that does not match its checksum
(CRC32C, or SHA-256 in plans written before CRC32C) is never kept."""

from __future__ import annotations

import subprocess

import pytest

from stream_backend.api.download import RANGE, download
from stream_backend.errors import CorruptionError
from stream_backend.transfer.targets import open_target
from stream_backend.transfer.targets.s3 import S3Options
from stream_backend.transfer.views import download_plan
from support import CLI
from support.transfer import append_events, cli_env, run_cli

pytestmark = pytest.mark.s3


@pytest.fixture
def one_large_object(local_store, store_root, s3_bucket):
    """A 20 MB stream exported with its file view as a single 32 MiB-max view object."""
    local_store.create_stream("demo", "big")
    append_events(local_store, "demo", "big", 400, 50_000, seed=4)
    archive = f"{s3_bucket.url}/big"
    run_cli(["export", "stream://demo/big", archive, "--file-view", "--object-size", "32MiB"],
            cli_env(store_root, s3_bucket.server), check=0)
    want = subprocess.run([CLI, "cat", "stream://demo/big", "--root", str(store_root)], capture_output=True,
                          check=True, timeout=120).stdout
    return archive, want


def _plan(monkeypatch, server, archive):
    for k, v in server.env.items():
        monkeypatch.setenv(k, v)
    return download_plan(open_target(archive, S3Options(endpoint_url=server.endpoint_url)))


def test_one_large_object_comes_in_ranged_pieces_through_dropped_connections(one_large_object, s3_bucket,
                                                                            fault_proxy, monkeypatch, tmp_path):
    archive, want = one_large_object
    clean = fault_proxy(s3_bucket.server)
    plan = _plan(monkeypatch, clean.server, archive)
    assert len(plan["parts"]) == 1 and plan["size"] == len(want) and "crc32c" in plan["parts"][0]
    out = tmp_path / "big.bin"
    download(plan, str(out), parallel=4)
    gets = [path for method, path, _ in clean.log if method == "GET" and "/views/000000/" in path]
    assert out.read_bytes() == want and len(gets) == len(want) // RANGE  # 20 MB: two 8 MiB-or-more ranges

    flaky = fault_proxy(s3_bucket.server, seed=5, truncate=0.5, only_methods=("GET",), max_consecutive=3)
    out.unlink()
    download(_plan(monkeypatch, flaky.server, archive), str(out), parallel=4)
    assert flaky.stats["truncate"] >= 1 and out.read_bytes() == want, flaky.stats


@pytest.mark.parametrize("field", ["crc32c", "sha256"])
def test_a_part_whose_bytes_do_not_match_its_checksum_is_refused_and_fetched_again(one_large_object, s3_bucket,
                                                                                   monkeypatch, tmp_path, field):
    archive, want = one_large_object
    plan = _plan(monkeypatch, s3_bucket.server, archive)
    if field == "sha256":  # a plan from a view manifest written before CRC32C: SHA-256 decides
        for p in plan["parts"]:
            del p["crc32c"]
    s3 = s3_bucket.server.client()
    key = f"big/{plan['parts'][0]['url'].split('/big/', 1)[1].split('?')[0]}"
    damaged = bytearray(want)
    damaged[12_345_678] ^= 0x01  # one bit flipped at rest, in the second ranged piece
    s3.put_object(Bucket=s3_bucket.name, Key=key, Body=bytes(damaged))
    out = tmp_path / "big.bin"
    with pytest.raises(CorruptionError, match="does not match its checksum"):
        download(plan, str(out), parallel=3)
    s3.put_object(Bucket=s3_bucket.name, Key=key, Body=want)
    summary = download(plan, str(out), parallel=3)
    assert (summary["kept"], summary["fetched"]) == (0, 1) and out.read_bytes() == want
    assert download(plan, str(out))["kept"] == 1  # a rerun keeps what matches
