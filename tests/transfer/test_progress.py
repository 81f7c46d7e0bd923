"""Progress reporting: JSON lines with honest totals; the rate ignores work found done."""

from __future__ import annotations

import io
import json

from stream_backend.transfer.progress import Progress, print_done
from stream_backend.transfer.signals import resume_command


def test_json_lines_fields_and_honest_rate(monkeypatch):
    monkeypatch.setenv("STREAM_BACKEND_PROGRESS_INTERVAL", "0.01")
    buf = io.StringIO()
    p = Progress("export", "auto", stream=buf)  # StringIO is not a TTY -> json
    assert p.mode == "json"
    p.add_total(100, 1000)
    p.add_done(50, 500, resumed=True)  # found done by an earlier attempt
    with p:
        p.set_segment(2)
        p.add_done(25, 250)
    lines = [json.loads(line) for line in buf.getvalue().splitlines()]
    last = lines[-1]
    assert last["event"] == "progress" and last["op"] == "export" and last["segment"] == 2
    assert (last["done_events"], last["total_events"], last["done_bytes"], last["total_bytes"]) == (75, 100, 750, 1000)
    assert last["percent"] == 75.0
    # the rate counts the 250 bytes moved here, not the 500 resumed ones: eta = 250 left / rate
    assert last["rate_bytes_per_s"] > 0
    assert abs(last["eta_s"] - 250 / last["rate_bytes_per_s"]) < 0.2 + 0.05 * last["eta_s"]


def test_done_line_on_stdout():
    buf = io.StringIO()
    print_done({"op": "import", "events": 3}, stream=buf)
    assert json.loads(buf.getvalue()) == {"event": "done", "op": "import", "events": 3}


def test_resume_command_is_the_same_command_without_secrets():
    cmd = resume_command(["/x/bin/stream-backend", "export", "stream://a/b", "s3://bkt/p",
                          "--endpoint-url", "http://user:pw@host:9000"])
    assert cmd.startswith("stream-backend export stream://a/b s3://bkt/p --endpoint-url ")
    assert "pw" not in cmd and "host:9000" in cmd


def test_bar_shows_percent_events_rate_and_time_left_from_the_engine(monkeypatch):
    """The terminal bar: percent, done/total events, bytes, rate and eta, where the rate
    and eta come from the engine (work found done by an earlier attempt is not speed)."""
    import re
    import time

    monkeypatch.setenv("STREAM_BACKEND_PROGRESS_INTERVAL", "0.01")
    buf = io.StringIO()
    p = Progress("export", "bar", stream=buf)
    p.add_total(100, 10 * 1024 * 1024)
    p.add_done(50, 5 * 1024 * 1024, resumed=True)
    with p:
        p.set_segment(3)
        time.sleep(0.05)
        p.add_done(25, 2 * 1024 * 1024)
        time.sleep(0.05)
        snap = p.snapshot()
    out = buf.getvalue()
    assert "segment 3 75/100 events" in out and "70.0%" in out
    m = re.findall(r"eta (\d+):(\d\d):(\d\d)", out)
    assert m, out
    h, mi, s = map(int, m[-1])
    assert abs(h * 3600 + mi * 60 + s - snap["eta_s"]) <= 1.5  # 3 MiB left at the engine's rate
    # a total the engine cannot count ahead (Pravega) shows the count only, never "/0"
    buf2 = io.StringIO()
    q = Progress("export", "bar", stream=buf2)
    q.add_total(0, 1000)
    with q:
        q.add_done(7, 500)
    assert "7 events" in buf2.getvalue() and "7/0" not in buf2.getvalue()
