"""export --sse / --sse-kms-key-id / --storage-class, on servers that act on them: SeaweedFS
encrypts with SSE-S3 and refuses a storage class it does not know; moto's server records
SSE-KMS with its key. Every object carries the encryption, the data objects the class, and
the small documents the next run reads back stay STANDARD."""

from __future__ import annotations

import calendar
import json
import time

import pytest

from support.transfer import cli_env, done_line, fill_stream, kill_once, run_cli

pytestmark = pytest.mark.s3


def _is_data(key: str) -> bool:
    """A data object or a file-view object (views/SEGMENT/RUN-K.bin); the rest are documents."""
    return key.startswith("data/") or (key.startswith("views/") and key.endswith(".bin"))


def _heads(bucket, prefix) -> dict[str, dict]:
    c = bucket.client()
    out = {}
    for page in c.get_paginator("list_objects_v2").paginate(Bucket=bucket.name, Prefix=prefix + "/"):
        for o in page.get("Contents", []):
            out[o["Key"][len(prefix) + 1:]] = c.head_object(Bucket=bucket.name, Key=o["Key"])
    return out


def _open_uploads(bucket, prefix) -> int:
    return len(bucket.client().list_multipart_uploads(Bucket=bucket.name, Prefix=prefix).get("Uploads", []))


def test_sse_s3_and_a_storage_class_reach_every_object_and_survive_a_kill(local_store, store_root, s3_bucket,
                                                                           fault_proxy):
    fill_stream(local_store, "demo", "src", segments=2, events=120, seed=3, max_size=300_000)
    archive = f"{s3_bucket.url}/enc"
    args = ["export", "stream://demo/src", archive, "--sse", "AES256", "--storage-class", "STANDARD_IA",
            "--object-size", "12MiB", "--part-size", "5MiB", "--parallel", "1", "--file-view"]
    # killed while a multipart upload is open: the resumed run adopts it, created encrypted
    slow = fault_proxy(s3_bucket.server, latency=1.0, latency_s=0.3, only_methods=("PUT",))
    kill_once(args, cli_env(store_root, slow.server), lambda: _open_uploads(s3_bucket, "enc/") >= 1,
              "a multipart upload was open")
    env = cli_env(store_root, s3_bucket.server)
    assert done_line(run_cli(args, env, check=0).stdout)["complete"]

    heads = _heads(s3_bucket, "enc")
    data = {k for k in heads if _is_data(k)}
    assert any(k.startswith("data/") for k in data) and any(k.startswith("views/") for k in data)
    assert any(h["ContentLength"] > 5 << 20 for k, h in heads.items() if k in data)  # multipart ones too
    for key, h in heads.items():
        assert h.get("ServerSideEncryption") == "AES256", key
        assert h.get("StorageClass") == ("STANDARD_IA" if key in data else None), key  # None: STANDARD
    run_cli(["import", archive, "stream://demo/copy"], env, check=0)
    run_cli(["verify", archive, "--against", "stream://demo/src"], env, check=0)
    runs = json.loads(run_cli(["status", archive, "--json"], env, check=0).stdout)["runs"]
    written = calendar.timegm(time.strptime(runs[0]["written"], "%Y-%m-%dT%H:%M:%SZ"))
    assert len(runs) == 1 and abs(time.time() - written) < 600, runs  # S3's LastModified of the manifest


def test_sse_kms_names_its_key_on_every_object(local_store, store_root, moto_bucket):
    fill_stream(local_store, "demo", "src", segments=1, events=50, seed=4, max_size=5000)
    archive = f"{moto_bucket.url}/kms"
    env = cli_env(store_root, moto_bucket.server)
    run_cli(["export", "stream://demo/src", archive, "--sse", "aws:kms", "--sse-kms-key-id", "alias/backups",
             "--object-size", "64KiB"], env, check=0)
    heads = _heads(moto_bucket, "kms")
    assert len(heads) >= 4
    assert {(h.get("ServerSideEncryption"), h.get("SSEKMSKeyId")) for h in heads.values()} == {
        ("aws:kms", "alias/backups")}


@pytest.mark.parametrize("flags, words", [
    (["--storage-class", "GLACIER"], "cannot be read without a restore"),
    (["--storage-class", "DEEP_ARCHIVE"], "lifecycle rule"),
    (["--storage-class", "standard"], "--storage-class takes one of STANDARD"),
    (["--sse-kms-key-id", "alias/x"], "needs --sse aws:kms"),
    (["--sse", "AES256", "--sse-kms-key-id", "alias/x"], "needs --sse aws:kms"),
    (["--sse", "aes256"], "Invalid value for '--sse'"),
])
def test_bad_write_options_are_one_line_usage_errors(local_store, store_root, s3_bucket, flags, words):
    fill_stream(local_store, "demo", "src", segments=1, events=5, seed=1, max_size=100)
    env = cli_env(store_root, s3_bucket.server)
    run = run_cli(["export", "stream://demo/src", f"{s3_bucket.url}/bad", *flags], env, check=None)
    assert run.returncode in (2, 64) and words in run.stderr and "Traceback" not in run.stderr, run.stderr
    assert not s3_bucket.client().list_objects_v2(Bucket=s3_bucket.name).get("Contents")  # nothing written


def test_write_options_are_for_s3_archives_only(local_store, store_root, tmp_path):
    fill_stream(local_store, "demo", "src", segments=1, events=5, seed=1, max_size=100)
    run = run_cli(["export", "stream://demo/src", str(tmp_path / "a"), "--storage-class", "STANDARD_IA"],
                  cli_env(store_root), check=64)
    assert "--storage-class is an S3 setting" in run.stderr and not (tmp_path / "a").exists()


def test_every_object_carries_the_crc32c_the_server_checked(local_store, store_root, s3_bucket):
    """Parts and objects go with their CRC32C (not Content-MD5, ten times the CPU): the
    server refuses bytes that do not match it, and records it for every object, composite
    over the parts for a multipart one."""
    import base64

    import crc32c
    from botocore.exceptions import ClientError

    c = s3_bucket.client()
    with pytest.raises(ClientError, match="BadDigest"):  # this server checks what it is given
        c.put_object(Bucket=s3_bucket.name, Key="probe", Body=b"hello", ChecksumCRC32C="AAAAAA==")
    for events, size in ((60, 400_000), (5, 1000)):  # run 2: small objects, one PUT each
        fill_stream(local_store, "demo", "src", segments=1, events=events, seed=8 + events, max_size=size)
        run_cli(["export", "stream://demo/src", f"{s3_bucket.url}/ck", "--object-size", "12MiB", "--part-size",
                 "5MiB", "--file-view"], cli_env(store_root, s3_bucket.server), check=0)

    def b64(n: int) -> str:
        return base64.b64encode(n.to_bytes(4, "big")).decode()

    kinds = set()
    for key, h in _heads(s3_bucket, "ck").items():
        body = c.get_object(Bucket=s3_bucket.name, Key=f"ck/{key}")["Body"].read()
        got = c.head_object(Bucket=s3_bucket.name, Key=f"ck/{key}", ChecksumMode="ENABLED").get("ChecksumCRC32C")
        if got and "-" in got:  # multipart ("CRC-N"): each part's size as stored
            sizes = [c.head_object(Bucket=s3_bucket.name, Key=f"ck/{key}", PartNumber=n)["ContentLength"]
                     for n in range(1, int(got.rsplit("-", 1)[1]) + 1)]
            offsets = [sum(sizes[:i]) for i in range(len(sizes) + 1)]
            parts = [body[a:b] for a, b in zip(offsets, offsets[1:])]
            want = b64(crc32c.crc32c(b"".join(crc32c.crc32c(p).to_bytes(4, "big") for p in parts))) + f"-{len(parts)}"
            kinds.add("multipart")
        else:
            want = b64(crc32c.crc32c(body))
            kinds.add("data" if _is_data(key) else "document")
        assert got == want, key
    assert kinds == {"multipart", "data", "document"}


def test_sse_c_objects_are_unreadable_without_the_customer_key(local_store, store_root, s3_bucket, tmp_path):
    """SSE-C on SeaweedFS, which refuses a read without the key: every command on the
    archive takes the key from a file, and without it none of them gets at the data."""
    import base64
    import os

    fill_stream(local_store, "demo", "src", segments=2, events=80, seed=5, max_size=200_000)
    key = os.urandom(32)
    key_file = tmp_path / "sse-c.key"
    key_file.write_text(base64.b64encode(key).decode() + "\n")
    archive = f"{s3_bucket.url}/ssec"
    env = cli_env(store_root, s3_bucket.server)
    with_key = ["--sse-c-key-file", str(key_file)]
    outputs = []
    for _ in range(2):  # run 2 reads run 1's manifest, with the key
        outputs.append(run_cli(["export", "stream://demo/src", archive, "--object-size", "12MiB", "--part-size", "5MiB",
                                *with_key], env, check=0))
        fill_stream(local_store, "demo", "src", segments=2, events=10, seed=6, max_size=1000)
    c = s3_bucket.client()
    keys = [o["Key"] for o in c.list_objects_v2(Bucket=s3_bucket.name, Prefix="ssec/")["Contents"]]
    assert any("/data/" in k for k in keys)
    for k in keys:
        with pytest.raises(Exception):
            c.head_object(Bucket=s3_bucket.name, Key=k)
        h = c.head_object(Bucket=s3_bucket.name, Key=k, SSECustomerAlgorithm="AES256", SSECustomerKey=key)
        assert h["SSECustomerAlgorithm"] == "AES256", k
    for args in (["status", archive], ["verify", archive], ["import", archive, "stream://demo/nokey"]):
        run = run_cli(args, env, check=77)
        assert "--sse-c-key-file" in run.stderr and len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert "nokey" not in local_store.list_streams("demo")  # refused before anything was created
    outputs.append(run_cli(["status", archive, *with_key], env, check=0))
    outputs.append(run_cli(["import", archive, "stream://demo/copy", *with_key], env, check=0))
    outputs.append(run_cli(["verify", archive, "--against", "stream://demo/copy", *with_key], env, check=0))
    secret = base64.b64encode(key).decode()
    assert all(secret not in o.stdout + o.stderr for o in outputs)
    bad = tmp_path / "short.key"
    bad.write_bytes(os.urandom(16))
    run = run_cli(["status", archive, "--sse-c-key-file", str(bad)], env, check=64)
    assert "not an SSE-C key (32 bytes, raw or base64)" in run.stderr
    run = run_cli(["export", "stream://demo/src", archive, *with_key, "--sse", "AES256"], env, check=64)
    assert "exclude each other" in run.stderr
