"""The benchmark harness end to end at its smallest size (--smoke): a real SeaweedFS,
real peers, the real CLI. Checks what a reader of the results relies on: every case
reports numbers or says why not, ratios and targets are there, servers stayed on
loopback, and the docs (table + plot) are generated from the JSON alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "scripts" / "bench"
SMOKE_CASES = ["export", "import", "small-events", "incremental", "read", "memory", "download"]


def _bench(*args, timeout=240):
    env = dict(os.environ)
    env.pop("STREAM_BACKEND_ROOT", None)  # the harness makes its own store
    return subprocess.run(
        [sys.executable, str(BENCH), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=ROOT,
    )


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bench")
    out = tmp / "results.json"
    res = _bench(
        "--smoke",
        "--no-install-peers",
        "--cases",
        ",".join(SMOKE_CASES),
        "--out",
        str(out),
        "--docs",
        str(tmp / "docs"),
        "--work-dir",
        str(tmp / "work"),
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return tmp, json.loads(out.read_text()), res.stdout


@pytest.mark.s3
@pytest.mark.fuse
@pytest.mark.timeout(300)
def test_results_json_has_every_case_with_numbers_or_a_reason(smoke):
    _, results, stdout = smoke
    assert results["schema"] == "stream-backend-bench/1" and results["mode"] == "smoke"
    m = results["machine"]
    assert m["nproc"] >= 1 and m["ram_bytes"] > 0 and m["cpu_model"] and m["date"].endswith("Z")
    assert [c["id"] for c in results["cases"]] == SMOKE_CASES
    for case in results["cases"]:
        assert case["status"] in ("ok", "not available"), case
        assert case["tools"], case["id"]
        for row in case["tools"]:
            assert row["status"] in ("ok", "not available", "failed"), row
            if row["status"] == "ok":
                assert row["runs"] and row["median"]["wall_s"] > 0
                assert row["median"]["client_cpu_s"] >= 0 and row["limit"]
            else:
                assert row["reason"], row
        for t in case["targets"]:
            assert {"name", "value", "met", "why"} <= set(t)
    # the project's own rows ran (the pieces have landed): a failure here is a real regression
    by_id = {c["id"]: c for c in results["cases"]}
    for cid, tool in [
        ("export", "stream-backend"),
        ("import", "stream-backend"),
        ("small-events", "stream-backend"),
        ("read", "fsspec stream://"),
    ]:
        row = next(r for r in by_id[cid]["tools"] if r["tool"] == tool)
        assert row["status"] == "ok", row
    exp = by_id["export"]
    assert exp["ratios"].get("s5cmd") and exp["best_peer"]
    assert (
        next(r for r in exp["tools"] if r["tool"] == "stream-backend")["verify"].get("ok") is True
    )
    # peak RSS was measured per tool (not the harness's own high-water mark)
    rss = [r["median"]["client_maxrss"] for r in exp["tools"] if r["status"] == "ok"]
    assert min(rss) < 50 * 2**20 < max(rss)
    inc = next(r for r in by_id["incremental"]["tools"] if r["tool"] == "stream-backend")
    assert inc["status"] == "ok" and inc["moved_bytes"] > 0
    # downloads came straight from S3: the bytes are the stream's, and serve sent only plans
    dl = {r["tool"]: r for r in by_id["download"]["tools"]}
    assert dl["stream-backend"]["status"] == "ok" and dl["stream-backend"]["identical"] is True
    many = dl["stream-backend x20"]
    assert many["status"] == "ok" and 0 < many["serve_sent_bytes"] < 20 * 64 * 1024, many
    # every server listener was on loopback and the summary printed ratios
    assert all(a.startswith("127.") for a in results["servers"]["s3"]["listeners"])
    assert "ratio stream-backend / s5cmd" in stdout


@pytest.mark.s3
@pytest.mark.fuse
@pytest.mark.timeout(300)
def test_docs_are_generated_from_the_json(smoke):
    tmp, results, _ = smoke
    md = (tmp / "docs" / "benchmarks.md").read_text()
    assert "## Headline" in md and "ratio" in md
    for case in results["cases"]:
        assert case["title"] in md
    png = (tmp / "docs" / "benchmarks.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    # --report regenerates the same page from the JSON without running anything
    res = _bench("--report", str(tmp / "results.json"), "--docs", str(tmp / "again"), timeout=120)
    assert res.returncode == 0, res.stderr
    assert (tmp / "again" / "benchmarks.md").read_text() == md


@pytest.mark.s3
@pytest.mark.fuse
@pytest.mark.timeout(300)
def test_a_rerun_case_replaces_only_itself_and_says_when(smoke):
    """--merge-into: one case measured again goes into the published results in place of
    its old numbers, dated, and the other cases stay as they were."""
    sys.path.insert(0, str(ROOT / "scripts"))
    from benchlib import report

    _, results, _ = smoke
    rerun = json.loads(json.dumps(results))
    rerun["machine"] = dict(rerun["machine"], date="2031-01-02T03:04:05Z", git="abc1234")
    rerun["command"] = "scripts/bench --smoke --cases download"
    rerun["cases"] = [dict(c, seconds=12345.0) for c in rerun["cases"] if c["id"] == "download"]
    merged = report.merge(results, rerun)
    assert [c["id"] for c in merged["cases"]] == SMOKE_CASES
    for old, new in zip(results["cases"], merged["cases"]):
        if new["id"] == "download":
            assert new["seconds"] == 12345.0 and new["measured"]["date"] == "2031-01-02T03:04:05Z"
        else:
            assert new == old
    md = report.markdown(merged, [])
    assert "Measured 2031-01-02T03:04:05Z at git abc1234 by `scripts/bench --smoke --cases download`" in md


def test_limit_classification_names_the_busy_side():
    sys.path.insert(0, str(ROOT / "scripts"))
    from benchlib.context import classify_limit
    from benchlib.util import parse_size

    assert classify_limit(10, 9.5, 0.2, 2).startswith("client CPU")
    assert classify_limit(10, 2, 9.5, 2).startswith("server CPU")
    assert classify_limit(10, 10, 9, 2).startswith("both cores busy")
    assert classify_limit(10, 1, 1, 2).startswith("waiting")
    assert (
        parse_size("64MiB") == 64 * 2**20 and parse_size("1G") == 2**30 and parse_size("100") == 100
    )


def test_time_budget_bounds_the_runs_of_a_slow_tool(tmp_path):
    """What keeps the full set inside 30 minutes: a long first run is timed (no warm-up),
    and once a tool has a timed run and used its budget no further run starts."""
    sys.path.insert(0, str(ROOT / "scripts"))
    from dataclasses import replace

    from benchlib.context import PROFILES, Context, repeat

    prof = replace(PROFILES["smoke"], runs=5, warmup=1, long_run_s=0.2, tool_budget_s=0.5)
    ctx = Context(repo=str(ROOT), work=str(tmp_path), profile=prof, peers=None, log=lambda m: None)
    fast = repeat(ctx, "fast", lambda i: (["true"], None, None), runs=3, warmup=1, server_pids=[])
    assert fast.warmups == 1 and len(fast) == 3
    slow = repeat(ctx, "slow", lambda i: (["sleep", "0.3"], None, None), runs=5, warmup=1, server_pids=[])
    assert slow.warmups == 0 and 1 <= len(slow) <= 2
    assert all(r.wall_s >= 0.3 for r in slow)


def test_plan_states_the_full_sizes_and_unknown_cases_are_refused():
    res = _bench("--plan", timeout=60)
    assert res.returncode == 0, res.stderr
    assert "mode full" in res.stdout and "10,000,000" in res.stdout and "disk needed" in res.stdout
    bad = _bench("--plan", "--cases", "export,nosuch", timeout=60)
    assert bad.returncode != 0 and "unknown case 'nosuch'" in bad.stderr


def test_compression_benchmark_runs_and_reports_both_modes(tmp_path):
    """scripts/bench_compression.py (the numbers behind `none` as the default) still runs:
    both payload kinds, both modes, the zstd CLI as reference, ratios in the JSON."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "scripts" / "bench_compression.py"
    out = tmp_path / "z.json"
    p = subprocess.run([sys.executable, str(script), "--mib", "2", "--runs", "1", "--json", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    res = {r["kind"]: r for r in json.loads(out.read_text())["results"]}
    assert set(res) == {"json-logs", "random"}
    assert res["json-logs"]["size_zstd_vs_none"] < 0.5  # logs compress
    assert 0.99 < res["random"]["size_zstd_vs_none"] < 1.01  # random bytes do not
    for r in res.values():
        assert r["none"]["export_mib_s"] > 0 and r["zstd"]["import_mib_s"] > 0
        assert ("zstd_cli" in r) == bool(__import__("shutil").which("zstd"))


def test_plot_panel_shows_our_ratio_to_the_main_peer_and_cuts_baselines():
    """What a reader sees at a glance: our bar labelled with its ratio to the main peer
    (the first peer), that peer as a dashed line, and a baseline far off scale cut at
    the panel's edge instead of squashing the comparison."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sys.path.insert(0, str(ROOT / "scripts"))
    from benchlib import report

    case = {"unit": "MiB/s", "title": "export", "number": 1}
    vals = [("stream-backend", 114.3, "ours"), ("s5cmd", 112.4, "peer"), ("cp (local disk)", 4155.7, "baseline")]
    fig, ax = plt.subplots()
    report._panel(ax, case, vals, {"ours": "b", "peer": "orange", "baseline": "grey"}, matplotlib)
    texts = [t.get_text() for t in ax.texts]
    assert any("114.3" in t and "1.02x s5cmd" in t for t in texts), texts
    assert any("4,155.7 (off scale)" in t for t in texts), texts
    assert ax.get_xlim()[1] < 1000  # the scale is the comparison's, not the baseline's
    assert any(line.get_linestyle() == "--" and line.get_xdata()[0] == 112.4 for line in ax.lines)
    plt.close(fig)
