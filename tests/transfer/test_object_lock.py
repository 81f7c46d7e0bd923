"""export --object-lock-mode / --object-lock-retain-days / --legal-hold on SeaweedFS, which
enforces Object Lock: a locked version cannot be deleted (COMPLIANCE, GOVERNANCE without a
bypass, a legal hold), a retention cannot be shortened, and a PUT with a lock into a bucket
without Object Lock is refused. Every object a restore needs is locked, the export's
scratch (checkpoints, leases) is not, and each export renews the locks of the runs it
restores from."""

from __future__ import annotations

import datetime as dt

import pytest

from support.transfer import cli_env, done_line, fill_stream, kill_once, listing, run_cli

pytestmark = pytest.mark.s3

DAY = dt.timedelta(days=1)


def _versions(bucket, prefix) -> dict[str, list[dict]]:
    """Every key under ``prefix`` (relative) -> its versions, newest first."""
    out: dict[str, list[dict]] = {}
    for page in bucket.client().get_paginator("list_object_versions").paginate(Bucket=bucket.name, Prefix=prefix + "/"):
        for v in page.get("Versions", []):
            out.setdefault(v["Key"][len(prefix) + 1:], []).append(v)
    return out


def _locks(bucket, prefix) -> dict[str, tuple]:
    """Every current key -> (mode, retain-until, legal hold) of its current version."""
    c = bucket.client()
    out = {}
    for page in c.get_paginator("list_objects_v2").paginate(Bucket=bucket.name, Prefix=prefix + "/"):
        for o in page.get("Contents", []):
            h = c.head_object(Bucket=bucket.name, Key=o["Key"])
            out[o["Key"][len(prefix) + 1:]] = (h.get("ObjectLockMode"), h.get("ObjectLockRetainUntilDate"),
                                               h.get("ObjectLockLegalHoldStatus"))
    return out


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def test_compliance_locks_every_object_a_restore_needs_through_a_kill(local_store, store_root, s3_lock_bucket,
                                                                      fault_proxy):
    from botocore.exceptions import ClientError

    fill_stream(local_store, "demo", "src", segments=2, events=120, seed=3, max_size=300_000)
    archive = f"{s3_lock_bucket.url}/locked"
    args = ["export", "stream://demo/src", archive, "--object-lock-mode", "COMPLIANCE",
            "--object-lock-retain-days", "1", "--object-size", "12MiB", "--part-size", "5MiB", "--parallel", "1",
            "--file-view"]
    slow = fault_proxy(s3_lock_bucket.server, latency=1.0, latency_s=0.3, only_methods=("PUT",))
    c = s3_lock_bucket.client()
    kill_once(args, cli_env(store_root, slow.server),
              lambda: bool(c.list_multipart_uploads(Bucket=s3_lock_bucket.name).get("Uploads")),
              "a multipart upload was open")
    env = cli_env(store_root, s3_lock_bucket.server)
    start = _now()
    assert done_line(run_cli(args, env, check=0).stdout)["complete"]

    locks = _locks(s3_lock_bucket, "locked")
    kinds = {k.split("/", 1)[0] for k in locks}
    assert kinds == {"archive.json", "data", "runs", "views"}, kinds  # no checkpoint or lease left
    for key, (mode, until, _hold) in locks.items():
        assert mode == "COMPLIANCE" and start + 0.99 * DAY < until < _now() + 1.01 * DAY, (key, mode, until)
    # the scratch was written and deleted: versions without a lock, under delete markers
    scratch = {k: v for k, v in _versions(s3_lock_bucket, "locked").items() if k.startswith(("checkpoints/", "leases/"))}
    assert scratch and all(
        c.head_object(Bucket=s3_lock_bucket.name, Key=f"locked/{k}", VersionId=v["VersionId"]).get("ObjectLockMode") is None
        for k, vs in scratch.items() for v in vs)

    run_cli(["import", archive, "stream://demo/copy"], env, check=0)
    assert listing(local_store, "demo", "copy") == listing(local_store, "demo", "src")
    status = run_cli(["status", archive], env, check=0).stdout
    assert "locked COMPLIANCE until" in status, status

    # what ransomware with the exporter's credentials would try
    versions = _versions(s3_lock_bucket, "locked")
    for key in ("runs/00000001/manifest.json", next(k for k in locks if k.startswith("data/"))):
        first = versions[key][-1]["VersionId"]
        with pytest.raises(ClientError, match="AccessDenied"):
            c.delete_object(Bucket=s3_lock_bucket.name, Key=f"locked/{key}", VersionId=first)
        with pytest.raises(ClientError, match="AccessDenied"):
            c.put_object_retention(Bucket=s3_lock_bucket.name, Key=f"locked/{key}", VersionId=first,
                                   Retention={"Mode": "GOVERNANCE", "RetainUntilDate": _now() + dt.timedelta(hours=1)})
        c.put_object(Bucket=s3_lock_bucket.name, Key=f"locked/{key}", Body=b"encrypted by ransomware")
        assert c.get_object(Bucket=s3_lock_bucket.name, Key=f"locked/{key}", VersionId=first)["Body"].read() != \
            b"encrypted by ransomware"


def test_each_export_renews_the_locks_of_the_runs_it_restores_from(local_store, store_root, s3_lock_bucket):
    """Run 2 needs run 1's objects: locked for 1 day, they would come free while run 2 is
    locked for 10. So run 2 renews them (COMPLIANCE stays COMPLIANCE), and an export with
    nothing new still renews what runs short, once per half period."""
    env = cli_env(store_root, s3_lock_bucket.server)
    archive = f"{s3_lock_bucket.url}/chain"

    def export(*flags):
        return done_line(run_cli(["export", "stream://demo/src", archive, "--object-size", "64KiB", *flags],
                                 env, check=0).stdout)

    fill_stream(local_store, "demo", "src", segments=2, events=60, seed=4, max_size=20_000)
    export("--object-lock-mode", "COMPLIANCE", "--object-lock-retain-days", "1")
    run1 = _locks(s3_lock_bucket, "chain")
    assert len(run1) > 6 and {m for m, _, _ in run1.values()} == {"COMPLIANCE"}

    fill_stream(local_store, "demo", "src", segments=2, events=20, seed=5, max_size=20_000)
    done = export("--object-lock-mode", "GOVERNANCE", "--object-lock-retain-days", "10")
    assert done["run"] == 2 and done["locks_renewed"] == len(run1)
    both = _locks(s3_lock_bucket, "chain")
    for key, (mode, until, _hold) in both.items():
        want = "COMPLIANCE" if key in run1 else "GOVERNANCE"
        assert mode == want and until > _now() + 9.9 * DAY, (key, mode, until)

    assert export("--object-lock-mode", "GOVERNANCE", "--object-lock-retain-days", "10")["locks_renewed"] == 0
    assert export("--object-lock-mode", "GOVERNANCE", "--object-lock-retain-days", "30")["locks_renewed"] == len(both)
    held = export("--legal-hold")
    assert held["note"] == "archive is up to date" and held["locks_renewed"] == len(both)
    assert {hold for _, _, hold in _locks(s3_lock_bucket, "chain").values()} == {"ON"}
    run_cli(["verify", archive, "--against", "stream://demo/src"], env, check=0)


def test_an_export_into_a_bucket_with_default_retention_resumes(local_store, store_root, s3_lock_bucket, fault_proxy):
    """A bucket whose default retention locks every new object, checkpoints and leases
    included: the export rewrites those as new versions and deletes them with delete
    markers, which a lock allows, so it resumes and chains runs as anywhere else."""
    c = s3_lock_bucket.client()
    c.put_object_lock_configuration(Bucket=s3_lock_bucket.name, ObjectLockConfiguration={
        "ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 1}}})
    fill_stream(local_store, "demo", "src", segments=2, events=120, seed=3, max_size=300_000)
    archive = f"{s3_lock_bucket.url}/default"
    args = ["export", "stream://demo/src", archive, "--object-size", "12MiB", "--part-size", "5MiB", "--parallel", "1"]
    slow = fault_proxy(s3_lock_bucket.server, latency=1.0, latency_s=0.3, only_methods=("PUT",))
    kill_once(args, cli_env(store_root, slow.server),
              lambda: bool(c.list_multipart_uploads(Bucket=s3_lock_bucket.name).get("Uploads")),
              "a multipart upload was open")
    env = cli_env(store_root, s3_lock_bucket.server)
    assert done_line(run_cli(args, env, check=0).stdout)["complete"]
    fill_stream(local_store, "demo", "src", segments=2, events=10, seed=7, max_size=1000)
    assert done_line(run_cli(args, env, check=0).stdout)["run"] == 2
    assert {m for m, _, _ in _locks(s3_lock_bucket, "default").values()} == {"COMPLIANCE"}
    run_cli(["import", archive, "stream://demo/copy"], env, check=0)
    assert listing(local_store, "demo", "copy") == listing(local_store, "demo", "src")


def test_a_lock_on_a_bucket_without_object_lock_is_refused_before_any_write(local_store, store_root, s3_bucket):
    fill_stream(local_store, "demo", "src", segments=1, events=5, seed=1, max_size=100)
    env = cli_env(store_root, s3_bucket.server)
    for flags in (["--object-lock-mode", "GOVERNANCE", "--object-lock-retain-days", "7"], ["--legal-hold"]):
        run = run_cli(["export", "stream://demo/src", f"{s3_bucket.url}/x", *flags], env, check=64)
        assert f"bucket {s3_bucket.name} has no Object Lock" in run.stderr, run.stderr
        assert len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert not s3_bucket.client().list_objects_v2(Bucket=s3_bucket.name).get("Contents")


@pytest.mark.parametrize("flags, code, words", [
    (["--object-lock-mode", "COMPLIANCE"], 64, "go together"),
    (["--object-lock-retain-days", "7"], 64, "go together"),
    (["--object-lock-mode", "COMPLIANCE", "--object-lock-retain-days", "0"], 2, "1<=x<=36500"),
    (["--object-lock-mode", "compliance", "--object-lock-retain-days", "7"], 2, "Invalid value for '--object-lock-mode'"),
])
def test_bad_lock_flags_are_one_line_usage_errors(local_store, store_root, s3_lock_bucket, flags, code, words):
    fill_stream(local_store, "demo", "src", segments=1, events=5, seed=1, max_size=100)
    env = cli_env(store_root, s3_lock_bucket.server)
    run = run_cli(["export", "stream://demo/src", f"{s3_lock_bucket.url}/bad", *flags], env, check=code)
    assert words in run.stderr and "Traceback" not in run.stderr, run.stderr
    assert not s3_lock_bucket.client().list_objects_v2(Bucket=s3_lock_bucket.name).get("Contents")


def test_locks_are_for_s3_archives_only(local_store, store_root, tmp_path):
    fill_stream(local_store, "demo", "src", segments=1, events=5, seed=1, max_size=100)
    run = run_cli(["export", "stream://demo/src", str(tmp_path / "a"), "--legal-hold"], cli_env(store_root), check=64)
    assert "--legal-hold is an S3 setting" in run.stderr and not (tmp_path / "a").exists()
