"""The S3 fixtures themselves: real signature checks, loopback only, S3 features the
transfer engine relies on, and a fault proxy that injects at its seeded rates."""

from __future__ import annotations

import threading

import botocore.exceptions
import pytest

from servers.s3 import S3Server


def test_seaweedfs_rejects_bad_credentials(seaweedfs, s3_bucket):
    for key, secret, code in [
        ("nobody", "nothing", "InvalidAccessKeyId"),
        (seaweedfs.access_key, "wrong-secret", "SignatureDoesNotMatch"),
    ]:
        bad = S3Server(seaweedfs.endpoint_url, key, secret, "seaweedfs")
        with pytest.raises(botocore.exceptions.ClientError) as info:
            bad.client(retries={"max_attempts": 1}).list_objects_v2(Bucket=s3_bucket.name)
        assert info.value.response["Error"]["Code"] == code
        with pytest.raises((PermissionError, OSError)):
            bad.fs().ls(s3_bucket.name)
    assert s3_bucket.fs().ls(s3_bucket.name) == []


def test_seaweedfs_listens_on_loopback_only(seaweedfs_process):
    addrs = seaweedfs_process.listening()
    assert addrs and all(ip.startswith("127.") for ip, _ in addrs)
    assert ("127.0.0.1", seaweedfs_process.ports["s3"]) in addrs
    assert {port for _, port in addrs} <= set(seaweedfs_process.ports.values())
    # and it advertises only loopback addresses (what clients and peers get redirected to)
    import json
    import urllib.request

    master = f"http://127.0.0.1:{seaweedfs_process.ports['master']}"
    topo = json.load(urllib.request.urlopen(f"{master}/dir/status", timeout=10))["Topology"]
    nodes = [n for dc in topo["DataCenters"] for r in dc["Racks"] for n in r["DataNodes"]]
    assert nodes and all(n["Url"].startswith("127.0.0.1:") and n["PublicUrl"].startswith("127.0.0.1:") for n in nodes)
    leader = json.load(urllib.request.urlopen(f"{master}/cluster/status", timeout=10))["Leader"]
    assert leader.startswith("127.0.0.1:")


def test_seaweedfs_multipart_listparts_and_conditional_writes(s3_bucket):
    """What the transfer engine builds on: multipart resume via ListParts, and
    If-None-Match: * (create-only) PUTs for leases and manifests — atomic under a race."""
    c = s3_bucket.client(retries={"max_attempts": 1})
    b = s3_bucket.name
    up = c.create_multipart_upload(Bucket=b, Key="obj")["UploadId"]
    e1 = c.upload_part(Bucket=b, Key="obj", UploadId=up, PartNumber=1, Body=b"a" * (5 << 20))["ETag"]
    listed = c.list_parts(Bucket=b, Key="obj", UploadId=up)["Parts"]
    assert [(p["PartNumber"], p["Size"], p["ETag"]) for p in listed] == [(1, 5 << 20, e1)]
    assert [u["UploadId"] for u in c.list_multipart_uploads(Bucket=b)["Uploads"]] == [up]
    e2 = c.upload_part(Bucket=b, Key="obj", UploadId=up, PartNumber=2, Body=b"b" * 10)["ETag"]
    c.complete_multipart_upload(Bucket=b, Key="obj", UploadId=up, IfNoneMatch="*",
                                MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]})
    assert c.get_object(Bucket=b, Key="obj", Range=f"bytes={(5 << 20) - 1}-{(5 << 20) + 1}")["Body"].read() == b"abb"
    # a second create-only complete over an existing key is refused
    up2 = c.create_multipart_upload(Bucket=b, Key="obj")["UploadId"]
    e = c.upload_part(Bucket=b, Key="obj", UploadId=up2, PartNumber=1, Body=b"x")["ETag"]
    with pytest.raises(botocore.exceptions.ClientError) as info:
        c.complete_multipart_upload(Bucket=b, Key="obj", UploadId=up2, IfNoneMatch="*",
                                    MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e}]})
    assert info.value.response["Error"]["Code"] == "PreconditionFailed"
    c.abort_multipart_upload(Bucket=b, Key="obj", UploadId=up2)
    # If-Match compare-and-swap
    etag = c.put_object(Bucket=b, Key="lease", Body=b"1")["ETag"]
    with pytest.raises(botocore.exceptions.ClientError):
        c.put_object(Bucket=b, Key="lease", Body=b"2", IfMatch='"0000"')
    c.put_object(Bucket=b, Key="lease", Body=b"2", IfMatch=etag)
    # create-only PUT: exactly one of many racing writers wins
    wins, lock = [], threading.Lock()
    barrier = threading.Barrier(8)

    def race(i):
        barrier.wait()
        try:
            c.put_object(Bucket=b, Key="race", Body=str(i).encode(), IfNoneMatch="*")
            with lock:
                wins.append(i)
        except botocore.exceptions.ClientError as exc:
            assert exc.response["Error"]["Code"] == "PreconditionFailed"

    threads = [threading.Thread(target=race, args=(i,)) for i in range(8)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert len(wins) == 1
    assert c.get_object(Bucket=b, Key="race")["Body"].read() == str(wins[0]).encode()


def test_s3fs_round_trip_on_seaweedfs_and_moto(s3_bucket, moto_bucket):
    for bucket in (s3_bucket, moto_bucket):
        fs = bucket.fs()
        with fs.open(f"{bucket.name}/dir/big", "wb", block_size=5 << 20) as f:  # multipart through s3fs
            for i in range(3):
                f.write(bytes([i]) * (4 << 20))
        assert fs.info(f"{bucket.name}/dir/big")["size"] == 12 << 20
        assert fs.cat_file(f"{bucket.name}/dir/big", start=(4 << 20) - 2, end=(4 << 20) + 2) == b"\0\0\1\1"
        assert fs.ls(f"{bucket.name}/dir", detail=False) == [f"{bucket.name}/dir/big"]


def test_fault_proxy_injects_at_seeded_rates_and_retries_get_through(seaweedfs, s3_bucket, fault_proxy):
    rates = dict(slowdown=0.15, internal_error=0.1, reset=0.1, latency=0.1)
    # the seeded decisions follow the rates (checked without the network: many draws)
    probe = fault_proxy(seaweedfs, seed=3, **rates)
    draws = [probe.decide("PUT", True) for _ in range(4000)]
    for fault in ("slowdown", "internal_error", "reset"):
        assert abs(sum(f == fault for f, _ in draws) / 4000 - rates[fault]) < 0.02, fault
    assert abs(sum(slow for _, slow in draws) / 4000 - rates["latency"]) < 0.02
    # same seed, same request order => same faults
    again = fault_proxy(seaweedfs, seed=3, **rates)
    assert [again.decide("PUT", True) for _ in range(4000)] == draws
    # real traffic: every kind of fault happens and botocore's retries get through
    proxy = fault_proxy(seaweedfs, seed=15, latency_s=0.01, max_consecutive=2,
                        **rates)
    c = proxy.server.client(retries={"max_attempts": 12, "mode": "standard"})
    n = 12
    for i in range(n):
        c.put_object(Bucket=s3_bucket.name, Key=f"k{i}", Body=bytes([i]) * 3000)
    for i in range(n):
        assert c.get_object(Bucket=s3_bucket.name, Key=f"k{i}")["Body"].read() == bytes([i]) * 3000
    s = proxy.stats
    assert s["requests"] > 2 * n and all(s[f] >= 1 for f in ("slowdown", "internal_error", "reset", "latency")), s
    assert any(f == "reset" and m == "PUT" for m, _, f in proxy.log)  # cut mid-upload, retried


def test_fault_proxy_errors_are_proper_s3_errors(seaweedfs, s3_bucket, fault_proxy):
    for kw, status, code in [({"slowdown": 1.0}, 503, "SlowDown"), ({"internal_error": 1.0}, 500, "InternalError")]:
        proxy = fault_proxy(seaweedfs, **kw)
        c = proxy.server.client(retries={"max_attempts": 1})
        with pytest.raises(botocore.exceptions.ClientError) as info:
            c.get_object(Bucket=s3_bucket.name, Key="x")
        assert info.value.response["Error"]["Code"] == code
        assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
    proxy = fault_proxy(seaweedfs, reset=1.0)
    c = proxy.server.client(retries={"max_attempts": 1})
    with pytest.raises((botocore.exceptions.ConnectionError, botocore.exceptions.EndpointConnectionError,
                        botocore.exceptions.ConnectionClosedError)):
        c.put_object(Bucket=s3_bucket.name, Key="x", Body=b"z" * 100_000)
    # nothing half-written became visible
    with pytest.raises(botocore.exceptions.ClientError):
        s3_bucket.client().head_object(Bucket=s3_bucket.name, Key="x")
