"""Prometheus metrics of a transfer, read back with the official client's own text parser:
scraped from --metrics-port while an export runs, and pushed when it ends to a receiver
that speaks the Pushgateway's push protocol (the Pushgateway itself is not served by the
module proxy here, so it cannot be built)."""

from __future__ import annotations

import base64
import math
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from prometheus_client.parser import text_string_to_metric_families

from support import free_ports
from support.transfer import Proc, append_events, cli_env, done_line, fill_stream, run_cli

MiB = 1 << 20


def _samples(text: str) -> dict[str, float]:
    """metric sample name -> value (each metric here has one label set)."""
    return {s.name: s.value for fam in text_string_to_metric_families(text) for s in fam.samples}


@pytest.mark.s3
def test_metrics_are_scraped_while_an_export_runs(local_store, store_root, s3_bucket):
    local_store.create_stream("demo", "big", segments=2)
    total = append_events(local_store, "demo", "big", 48, MiB, seed=3)
    port = free_ports(1)[0]
    archive = f"{s3_bucket.url}/metered"
    proc = Proc(["export", "stream://demo/big", archive, "--part-size", "5MiB", "--bwlimit", "12MiB",
                 "--metrics-port", str(port), "--metrics-addr", "127.0.0.1"], cli_env(store_root, s3_bucket.server))
    scrapes = []
    while proc.p.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
                scrapes.append(_samples(resp.read().decode()))
        except OSError:
            pass  # not listening yet, or just gone
        time.sleep(0.2)
    rc, out, err = proc.finish()
    assert rc == 0, err
    running = [s for s in scrapes if s.get("stream_backend_transfer_bytes_expected")]
    assert len(running) >= 5, scrapes
    done = [s["stream_backend_transfer_bytes"] for s in running]
    # parts count at an estimate of their payload until their object is done: a dip of a
    # few record headers when the estimate is corrected, never of a part
    assert all(b > a - 64 * 1024 for a, b in zip(done, done[1:])), done
    assert len(set(done)) >= 3 and 0 <= done[0] < done[-1] <= total
    assert {s["stream_backend_transfer_bytes_expected"] for s in running} == {total}
    assert any(s["stream_backend_transfer_rate_bytes_per_second"] > 0 for s in running)
    assert any(math.isfinite(s["stream_backend_transfer_eta_seconds"]) for s in running)
    assert all(math.isnan(s["stream_backend_transfer_exit_code"]) for s in running)  # still running
    assert "stream_backend_last_success_timestamp_seconds" not in running[0]


class PushReceiver:
    """What a Pushgateway is sent: (method, path, body) of each push."""

    def __init__(self):
        self.pushes: list[tuple[str, str, str]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                owner.pushes.append((self.command, self.path, body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_POST = do_PUT

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def pushgateway():
    receiver = PushReceiver()
    yield receiver
    receiver.close()


def test_a_run_pushes_its_metrics_when_it_ends(local_store, store_root, tmp_path, pushgateway):
    fill_stream(local_store, "demo", "src", segments=2, events=40, seed=1, max_size=5000)
    env = cli_env(store_root)
    archive = tmp_path / "a"
    done = done_line(run_cli(["export", "stream://demo/src", str(archive), "--pushgateway", pushgateway.url],
                             env, check=0).stdout)
    (method, path, body), = pushgateway.pushes
    job, _, group = path.partition("/archive@base64/")
    assert method == "PUT" and job == "/metrics/job/stream-backend-export"
    assert base64.urlsafe_b64decode(group).decode() == f"file://{archive}"
    m = _samples(body)
    assert m["stream_backend_transfer_bytes"] == m["stream_backend_transfer_bytes_expected"] == done["bytes"]
    assert m["stream_backend_transfer_events"] == done["events"] == 40
    assert m["stream_backend_transfer_exit_code"] == 0 and m["stream_backend_transfer_errors_total"] == 0
    assert m["stream_backend_transfer_objects_total"] == done["objects"]
    assert abs(m["stream_backend_last_success_timestamp_seconds"] - time.time()) < 60

    # a failed run adds to the group (POST) without a success time, which stays the last one's
    fill_stream(local_store, "demo", "other", segments=1, events=5, seed=2, max_size=100)
    run_cli(["export", "stream://demo/other", str(archive), "--pushgateway", pushgateway.url], env, check=73)
    method, _path, body = pushgateway.pushes[-1]
    m = _samples(body)
    assert method == "POST" and m["stream_backend_transfer_exit_code"] == 73
    assert m["stream_backend_transfer_errors_total"] == 1 and "stream_backend_last_success_timestamp_seconds" not in m


def test_an_unreachable_pushgateway_does_not_fail_a_done_export(local_store, store_root, tmp_path):
    fill_stream(local_store, "demo", "src", segments=1, events=5, seed=1, max_size=100)
    port = free_ports(1)[0]  # nothing listens there
    run = run_cli(["export", "stream://demo/src", str(tmp_path / "a"), "--pushgateway", f"http://127.0.0.1:{port}"],
                  cli_env(store_root), check=0)
    assert done_line(run.stdout)["complete"]
    assert "warning: cannot push metrics to the Pushgateway" in run.stderr and "Traceback" not in run.stderr


@pytest.mark.parametrize("url, words", [("pushgateway:9091", "takes http(s)://HOST[:PORT]"),
                                        ("http://user:secret@127.0.0.1:9091", "carries credentials")])
def test_a_bad_pushgateway_url_is_refused_before_the_run(local_store, store_root, tmp_path, url, words):
    fill_stream(local_store, "demo", "src", segments=1, events=5, seed=1, max_size=100)
    run = run_cli(["export", "stream://demo/src", str(tmp_path / "a"), "--pushgateway", url], cli_env(store_root),
                  check=64)
    assert words in run.stderr and "secret" not in run.stderr and not (tmp_path / "a").exists()


def test_the_grafana_dashboard_asks_only_for_metrics_we_export():
    import json
    import re
    from pathlib import Path

    from stream_backend.transfer.metrics import TransferMetrics
    from stream_backend.transfer.progress import Progress

    dash = json.loads((Path(__file__).resolve().parents[2] / "deploy" / "grafana-dashboard.json").read_text())
    m = TransferMetrics("export", "s3://b/a", "stream://s/t")
    m(Progress("export", "none").snapshot())
    m.finished({"complete": True, "objects": 1})
    exported = {s.name for fam in m.registry.collect() for s in fam.samples}
    asked = {name for p in dash["panels"] for t in p["targets"]
             for name in re.findall(r"\bstream_backend_[a-z_]+", t["expr"])}
    assert asked and asked <= exported, asked - exported
    assert {"stream_backend_last_success_timestamp_seconds", "stream_backend_transfer_errors_total"} <= asked
