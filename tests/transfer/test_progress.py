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


class _Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def test_eta_follows_a_rate_that_halves():
    """A transfer at 10 MiB/s that is throttled to 5 MiB/s at 10 % (a throttling proxy, a
    busy server): from 20 % done on, the time left is within 20 % of the truth at every
    part, where an average since the start was 30-40 % short."""
    clock = _Clock()
    p = Progress("export", "none", clock=clock)
    total, part = 1 << 30, 8 << 20
    p.add_total(0, total)
    done = 0
    checked = 0
    while done < total:
        rate = 10 << 20 if done < total // 10 else 5 << 20
        clock.t += part / rate
        p.add_done(0, part)
        done += part
        if done >= total // 5 and done < total:
            truth = (total - done) / (5 << 20)
            eta = p.snapshot()["eta_s"]
            assert abs(eta - truth) <= 0.2 * truth + 0.1, (done / total, eta, truth)
            checked += 1
    assert checked > 90


def test_a_stall_is_reported():
    clock = _Clock()
    p = Progress("export", "none", clock=clock)
    p.add_total(10, 1000)
    p.add_done(1, 100)
    clock.t += 5
    assert p.snapshot()["stalled_s"] is None
    clock.t += 25
    snap = p.snapshot()
    assert snap["stalled_s"] == 30.0 and snap["elapsed_s"] == 30.0
    p.add_done(1, 100)
    assert p.snapshot()["stalled_s"] is None


def test_bar_fits_80_columns_in_binary_units(monkeypatch):
    import re

    monkeypatch.setenv("COLUMNS", "80")
    clock = _Clock()
    buf = io.StringIO()
    p = Progress("import", "bar", stream=buf, clock=clock)
    p.add_total(12_345_678, 5 * 1024**4)  # 5 TiB, 12 million events
    p.start()
    p.set_segment(1234)
    clock.t += 10
    p.add_done(6_000_000, 2 * 1024**4)
    p.emit()
    clock.t += 40  # then nothing moves: the bar says so
    p.emit()
    p.stop()
    lines = [re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", line) for line in re.split(r"[\r\n]", buf.getvalue())]
    lines = [line for line in lines if line.strip()]
    assert lines and all(len(line) <= 80 for line in lines), [len(line) for line in lines]
    text = "\n".join(lines)
    assert "TiB" in text and "MB" not in text and " GB" not in text
    assert "no progress for 40 s, retrying" in text


def test_export_progress_moves_with_every_part(tmp_path):
    """One 16 MiB object sent in 1 MiB parts: progress moves 16 times, not once at the
    object's end (with 64 MiB objects the ETA moved in 64 MiB steps)."""
    from stream_backend.stores.local import LocalStore
    from stream_backend.transfer.export import ExportOptions, export_stream
    from stream_backend.transfer.targets import open_target

    store = LocalStore(root=str(tmp_path / "store"))
    store.create_stream("p", "s")
    with store.writer("p", "s") as w:
        for i in range(16):
            w.append(bytes([i]) * (1 << 20), None, segment=0)
    seen = []

    class Recording(Progress):
        def add_done(self, events, nbytes, resumed=False):
            super().add_done(events, nbytes, resumed)
            seen.append(self.done_bytes)

    opts = ExportOptions(object_size=32 << 20, part_size=1 << 20)
    prog = Recording("export", "none")
    export_stream(store, "p", "s", open_target(f"file://{tmp_path}/a"), opts, None, prog)
    store.close()
    steps = [b for b in seen if 0 < b < 16 << 20]
    assert len(set(steps)) >= 15, seen
    assert seen[-1] == 16 << 20 and all(a <= b + 1024 for a, b in zip(seen, seen[1:]))
