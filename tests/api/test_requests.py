"""Export and import requests over HTTP, as a client meets them: a real `serve` process on
loopback, SeaweedFS as the archive location, curl following the Server-Sent Events. The
bytes restored by a requested import are the bytes `stream-backend cat` prints."""

from __future__ import annotations

import json
import subprocess
import time

from support import CLI, wait_until
from support.api_server import ADMIN, READER
from support.transfer import append_events

def _cat(store_root, url) -> bytes:
    return subprocess.run([CLI, "cat", url, "--root", str(store_root)], capture_output=True, check=True,
                          timeout=120).stdout


def test_a_requested_export_reports_progress_and_a_requested_import_restores_the_bytes(server, local_store,
                                                                                        store_root):
    local_store.create_stream("demo", "logs")
    append_events(local_store, "demo", "logs", 4000, 2000, seed=3)
    srv = server()
    export = {"name": "logs-1", "spec": {"source": "stream://demo/logs", "archiveLocation": "backups",
                                          "archivePath": "demo/logs", "partSize": "5MiB", "parallel": 1}}
    status, doc = srv.call("POST", "/v1/exports", export)
    assert status == 201 and doc["kind"] == "StreamExport" and doc["status"]["phase"] in ("Pending", "Running")
    again, same = srv.call("POST", "/v1/exports", export)
    assert again == 200 and same["metadata"] == doc["metadata"]
    clash = {"name": "logs-1", "spec": {**export["spec"], "archivePath": "elsewhere"}}
    status, err = srv.call("POST", "/v1/exports", clash)
    assert status == 409 and "another spec" in err["detail"]

    docs = srv.follow("/v1/exports/logs-1")
    final = docs[-1]["status"]
    assert final["phase"] == "Succeeded", final
    assert (final["events"], final["complete"], final["run"]) == (4000, True, 1)
    assert final["archive"].endswith("/archives/demo/logs") and final["progress"]["percent"] == 100.0
    percents = [d["status"]["progress"]["percent"] for d in docs if "progress" in d["status"]]
    assert percents == sorted(percents) and len(percents) >= 2, percents
    status, st = srv.call("GET", "/v1/locations/backups/status?path=demo/logs")
    assert status == 200 and st["events"] == 4000 and [r["run"] for r in st["runs"]] == [1]

    importing = {"name": "logs-back", "spec": {"destination": "stream://restored/logs",
                                               "archiveLocation": "backups", "archivePath": "demo/logs"}}
    assert srv.call("POST", "/v1/imports", importing)[0] == 201
    assert srv.follow("/v1/imports/logs-back")[-1]["status"]["phase"] == "Succeeded"
    assert _cat(store_root, "stream://restored/logs") == _cat(store_root, "stream://demo/logs")
    listed = srv.call("GET", "/v1/exports")[1]
    assert [d["metadata"]["name"] for d in listed] == ["logs-1"]


def test_pause_resume_cancel_and_a_server_restart_lose_nothing_and_copy_nothing_twice(
        server, local_store, store_root, s3_bucket, fault_proxy):
    local_store.create_stream("demo", "big")
    append_events(local_store, "demo", "big", 1600, 40_000, seed=5)  # about 61 MiB: 13 parts of 5 MiB
    slow = fault_proxy(s3_bucket.server, latency=1.0, latency_s=0.4, only_methods=("PUT",))
    srv = server(endpoint=slow.endpoint_url)
    spec = {"source": "stream://demo/big", "archiveLocation": "backups", "archivePath": "big", "objectSize": "10MiB",
            "partSize": "5MiB",
            "parallel": 1}
    assert srv.call("POST", "/v1/exports", {"name": "big", "spec": spec})[0] == 201

    def done_percent():
        st = srv.call("GET", "/v1/exports/big")[1]["status"]
        return st.get("phase") == "Running" and (st.get("progress") or {}).get("percent", 0) >= 35

    wait_until("the export to be under way", done_percent, timeout=120)
    status, doc = srv.call("POST", "/v1/exports/big/pause")
    assert status == 200 and doc["spec"]["suspend"] is True
    wait_until("the export to pause", lambda: srv.phase("/v1/exports/big") == "Paused", timeout=90)
    paused = srv.call("GET", "/v1/exports/big")[1]["status"]
    assert 0 < paused["progress"]["percent"] < 100, paused

    srv.call("POST", "/v1/exports/big/resume")
    wait_until("the export to run again", lambda: srv.phase("/v1/exports/big") == "Running", timeout=60)
    srv.stop()  # SIGTERM to the server: its child stops at a checkpoint, kept as Pending
    kept = json.loads((srv.tmp_path / "requests" / "StreamExport.big.json").read_text())["status"]
    assert (kept["phase"], kept["reason"]) == ("Pending", "ServerStopped") and kept["progress"]["percent"] < 100
    srv.start()
    final = srv.follow("/v1/exports/big")[-1]["status"]
    assert final["phase"] == "Succeeded" and final["events"] == 1600 and final["complete"] is True, final

    importing = {"name": "big-back", "spec": {"destination": "stream://restored/big", "archiveLocation": "backups",
                                              "archivePath": "big"}}
    assert srv.call("POST", "/v1/imports", importing)[0] == 201
    assert srv.follow("/v1/imports/big-back")[-1]["status"]["phase"] == "Succeeded"
    assert _cat(store_root, "stream://restored/big") == _cat(store_root, "stream://demo/big")

    append_events(local_store, "demo", "big", 200, 40_000, seed=6)
    assert srv.call("POST", "/v1/exports", {"name": "big-2", "spec": spec})[0] == 201
    wait_until("run 2 to start", lambda: srv.phase("/v1/exports/big-2") == "Running", timeout=60)
    status, doc = srv.call("DELETE", "/v1/exports/big-2")
    assert status == 200 and srv.call("GET", "/v1/exports/big-2")[0] == 404
    assert srv.call("POST", "/v1/exports", {"name": "big-3", "spec": spec})[0] == 201  # run 2, from its checkpoint
    final = srv.follow("/v1/exports/big-3")[-1]["status"]
    assert (final["phase"], final["run"], final["events"]) == ("Succeeded", 2, 200), final


def test_requests_are_refused_without_the_right_token_or_with_bad_input(server, local_store):
    local_store.create_stream("demo", "logs")
    srv = server()
    good = {"name": "ok", "spec": {"source": "stream://demo/logs", "archiveLocation": "backups"}}
    assert srv.call("POST", "/v1/exports", good, token=None)[0] == 401
    status, err = srv.call("POST", "/v1/exports", good, token=READER)
    assert status == 403 and "export" in err["detail"]
    assert srv.call("GET", "/v1/locations", token=READER)[0] == 200
    bad = [
        ({"name": "Not_A_Name", "spec": good["spec"]}, "invalid name"),
        ({"name": "x", "spec": {**good["spec"], "archivePath": "../../etc"}}, "archivePath"),
        ({"name": "x", "spec": {**good["spec"], "archive": "file:///etc"}}, "unknown spec field 'archive'"),
        ({"name": "x", "spec": {**good["spec"], "parallel": 0}}, "at least 1"),
        ({"name": "x", "spec": {**good["spec"], "compression": "lz4"}}, "one of none, zstd"),
        ({"name": "x", "spec": {**good["spec"], "storageClass": "GLACIER"}}, "one of STANDARD, STANDARD_IA"),
        ({"name": "x", "spec": {**good["spec"], "objectLockMode": "compliance"}}, "one of GOVERNANCE, COMPLIANCE"),
        ({"name": "x", "spec": {**good["spec"], "objectLockRetainDays": 0}}, "at least 1"),
        ({"name": "x", "spec": {**good["spec"], "objectLockRetainDays": 40_000}}, "at most 36500"),
        ({"name": "x", "spec": {**good["spec"], "partSize": "lots"}}, "size"),
        ({"name": "x", "spec": {**good["spec"], "bwlimit": "fast"}}, "spec.bwlimit takes a rate"),
        ({"name": "x", "spec": {**good["spec"], "source": "pravega://a/b"}}, "stream://"),
        ({"name": "x", "spec": {"source": "stream://demo/logs"}}, "archiveLocation is required"),
    ]
    for body, words in bad:
        status, err = srv.call("POST", "/v1/exports", body)
        assert status == 400 and words in err["detail"], (body, status, err)
    status, err = srv.call("POST", "/v1/exports", {"name": "x", "spec": {**good["spec"], "archiveLocation": "nope"}})
    assert status == 404 and "backups" in err["detail"]
    status, _ = srv.call("POST", "/v1/exports", raw=b'{"name": "x", "spec": {"pad": "' + b"a" * 70_000 + b'"}}')
    assert status == 413
    assert srv.call("POST", "/v1/exports/none/pause")[0] == 404
    assert srv.call("GET", "/v1/nothing/x")[0] == 404
    assert srv.call("GET", "/v1/streams/..%2F..%2Fetc/passwd")[0] == 404  # no route: a name has no slash
    assert srv.call("GET", "/v1/streams/.hidden/passwd")[0] == 400
    assert srv.call("GET", "/v1/locations/backups/status?path=..%2F..")[0] == 400
    secret = srv.env["AWS_SECRET_ACCESS_KEY"]
    assert srv.call("POST", "/v1/exports", good)[0] == 201
    final = srv.follow("/v1/exports/ok")[-1]
    assert final["status"]["phase"] == "Succeeded"
    everything = json.dumps([srv.call("GET", p)[1] for p in ("/v1/exports", "/v1/locations", "/v1/openapi.json")])
    assert secret not in everything
    assert secret not in srv.logs()


def test_a_download_plan_fetches_the_file_view_straight_from_s3_and_resumes(server, local_store, store_root,
                                                                             s3_bucket, tmp_path):
    local_store.create_stream("demo", "logs")
    append_events(local_store, "demo", "logs", 6000, 2000, seed=8)  # 12 MB: three view objects of 5 MiB
    srv = server()
    spec = {"source": "stream://demo/logs", "archiveLocation": "backups", "archivePath": "viewed",
            "objectSize": "5MiB", "partSize": "5MiB", "fileView": True, "sse": "AES256", "storageClass": "STANDARD_IA"}
    assert srv.call("POST", "/v1/exports", {"name": "v1", "spec": spec})[0] == 201
    assert srv.follow("/v1/exports/v1")[-1]["status"]["phase"] == "Succeeded"
    status, plan = srv.call("GET", "/v1/exports/v1/download")
    view = s3_bucket.client().head_object(Bucket=s3_bucket.name, Key="archives/viewed/views/000000/00000001-000000.bin")
    assert (view.get("ServerSideEncryption"), view.get("StorageClass")) == ("AES256", "STANDARD_IA")
    assert status == 200 and [p["size"] for p in plan["parts"]] == [5 << 20, 5 << 20, 12_000_000 - (10 << 20)]
    s3_port = s3_bucket.server.endpoint_url.rsplit(":", 1)[1]
    assert all(p["url"].startswith(f"http://127.0.0.1:{s3_port}/") for p in plan["parts"])  # no relay through us
    want = _cat(store_root, "stream://demo/logs")

    out = tmp_path / "logs.bin"
    env = {**srv.env, "STREAM_BACKEND_TOKEN": ADMIN}
    url = srv.base + "/v1/exports/v1/download"
    run = subprocess.run([CLI, "download", url, "-o", str(out), "--progress", "none"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert out.read_bytes() == want and json.loads(run.stdout)["fetched"] == 3

    damaged = bytearray(want[: len(want) // 2])  # an interrupted download, one byte of it wrong
    damaged[100] ^= 0xFF
    out.write_bytes(bytes(damaged))
    run = subprocess.run([CLI, "download", url, "-o", str(out), "--progress", "none"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert out.read_bytes() == want and (json.loads(run.stdout)["kept"], json.loads(run.stdout)["fetched"]) == (0, 3)
    out.write_bytes(want[: (5 << 20) + 7])
    run = subprocess.run([CLI, "download", url, "-o", str(out), "--progress", "none"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.read_bytes() == want and (json.loads(run.stdout)["kept"], json.loads(run.stdout)["fetched"]) == (1, 2)

    last = plan["parts"][-1]  # curl needs nothing of ours: the URL and a Range
    piece = subprocess.run(["curl", "-sSf", "-r", "10-19", last["url"]], capture_output=True, check=True, timeout=60)
    assert piece.stdout == want[last["offset"] + 10: last["offset"] + 20]

    append_events(local_store, "demo", "logs", 500, 3000, seed=9)  # run 2: the plan covers both runs
    assert srv.call("POST", "/v1/exports", {"name": "v2", "spec": spec})[0] == 201
    assert srv.follow("/v1/exports/v2")[-1]["status"]["run"] == 2
    run = subprocess.run([CLI, "download", srv.base + "/v1/exports/v2/download", "-o", str(out),
                          "--progress", "none"], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and out.read_bytes() == _cat(store_root, "stream://demo/logs"), run.stderr
    assert json.loads(run.stdout)["kept"] == 3  # run 1's objects were already there

    status, short = srv.call("GET", "/v1/exports/v1/download?expires=1")
    wait_until("the URLs to expire", lambda: time.time() > short["expires"] + 1, timeout=10)
    expired = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", short["parts"][0]["url"]],
                             capture_output=True, text=True, timeout=60)
    assert expired.stdout == "403"
    run = subprocess.run([CLI, "download", str(_saved(tmp_path, short)), "-o", str(tmp_path / "x.bin"),
                          "--progress", "none"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 77 and "expired" in run.stderr and len(run.stderr.strip().splitlines()) == 1

    status, err = srv.call("GET", "/v1/exports/v1/download", token=None)
    assert status == 401
    no_view = {**spec, "fileView": False, "archivePath": "plain"}
    assert srv.call("POST", "/v1/exports", {"name": "plain", "spec": no_view})[0] == 201
    srv.follow("/v1/exports/plain")
    status, err = srv.call("GET", "/v1/exports/plain/download")
    assert status == 400 and "fileView" in err["detail"]


def _saved(tmp_path, plan):
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan))
    return path
