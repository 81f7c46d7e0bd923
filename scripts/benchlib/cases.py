"""The benchmark cases. Each returns one dict for the results JSON (see report.py).

A case needs project pieces (local store, export/import CLI, fsspec, mount, Pravega);
when one is missing its rows say "not available: <reason>" and the rest still runs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time

from . import data
from .context import SCOPE, Context, NotAvailable, repeat, tool_result
from .util import MiB, dir_bytes, drop_file, free_ports, median, run_measured

PROBES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "probes.py")



def _export_to_dir(ctx, url: str, prefix: str):
    """A ``repeat`` maker: run i exports ``url`` into a fresh directory, whose size is
    recorded before it is dropped."""

    def make(i):
        dest = ctx.tmp(f"{prefix}-{i}")

        def after(run):
            run.extra["stored_bytes"] = dir_bytes(dest)
            drop_file(dest)

        return [ctx.sb, "export", url, "file://" + dest, "--progress", "none"], ctx.env(), after

    return make


def _safe(ctx: Context, tool: str, role: str, command: str, body) -> dict:
    """Run one tool's measurement; turn a missing piece or a failure into a row saying so."""
    try:
        return body()
    except NotAvailable as exc:
        ctx.log(f"    {tool:<28} not available: {exc}")
        return tool_result(tool, role, command, reason=str(exc))
    except Exception as exc:  # noqa: BLE001 - a failed tool must not sink the other rows
        ctx.log(f"    {tool:<28} FAILED: {type(exc).__name__}: {exc}")
        return tool_result(tool, role, command, runs=[], reason=f"{type(exc).__name__}: {exc}")


def _ok(rows, tool):
    for r in rows:
        if r["tool"] == tool and r.get("status") == "ok":
            return r
    return None


def _ratios(rows, metric="throughput_mib_s", ours="stream-backend", higher_is_better=True):
    """ours / peer for every measured peer, and the best peer."""
    mine = _ok(rows, ours)
    peers = [r for r in rows if r["role"] == "peer" and r.get("status") == "ok" and r.get(metric)]
    out = {"ratios": {}, "best_peer": None, "ratio_to_best_peer": None}
    if not peers:
        return out
    best = (
        max(peers, key=lambda r: r[metric])
        if higher_is_better
        else min(peers, key=lambda r: r[metric])
    )
    out["best_peer"] = best["tool"]
    if mine and mine.get(metric):
        for p in peers:
            out["ratios"][p["tool"]] = (
                (mine[metric] / p[metric]) if higher_is_better else (p[metric] / mine[metric])
            )
        out["ratio_to_best_peer"] = out["ratios"][best["tool"]]
    return out


def _drop(ctx, name):
    try:
        ctx.drop_stream(name)
    except Exception as exc:  # noqa: BLE001 - only disk space is at stake
        ctx.log(f"  could not delete stream {name}: {exc}")


def _target(name, value, ok, detail=""):
    return {
        "name": name,
        "value": value,
        "met": None if value is None else bool(ok),
        "detail": detail,
        "why": "",
    }


def _case(case_id, title, unit, rows, **kw):
    status = "ok" if any(r.get("status") == "ok" for r in rows) else "not available"
    d = {"id": case_id, "title": title, "unit": unit, "status": status, "tools": rows}
    if status != "ok":
        reasons = sorted({r.get("reason", "") for r in rows if r.get("reason")})
        d["reason"] = "; ".join(reasons)
    d.update(kw)
    return d


def _s3_copy_rows(
    ctx, label, src_file, nbytes, upload: bool, src_bucket=None, runs=None, warmup=None
):
    """s5cmd / rclone / aws moving one file to or from S3, each run in a fresh bucket or file."""
    p = ctx.profile
    runs = p.runs if runs is None else runs
    warmup = p.warmup if warmup is None else warmup
    srv = ctx.need_s3()
    env = ctx.env(s3=True)
    rows = []
    specs = {
        "s5cmd": lambda tool, a, b: [tool, "--endpoint-url", srv.endpoint, "cp", a, b],
        "rclone": lambda tool, a, b: [
            tool,
            "copyto",
            a.replace("s3://", "bench:"),
            b.replace("s3://", "bench:"),
        ],
        "aws": lambda tool, a, b: [
            tool,
            "s3",
            "cp",
            a,
            b,
            "--endpoint-url",
            srv.endpoint,
            "--only-show-errors",
        ],
    }
    shown = {
        "s5cmd": "s5cmd --endpoint-url $S3 cp {a} {b}",
        "rclone": "rclone copyto {a} {b}  (remote from RCLONE_CONFIG_BENCH_*)",
        "aws": "aws s3 cp {a} {b} --endpoint-url $S3 --only-show-errors",
    }
    for tool, make_argv in specs.items():
        a_show, b_show = (
            ("data.bin", "s3://BUCKET/data.bin") if upload else ("s3://SRC/data.bin", "data.bin")
        )
        command = shown[tool].format(a=a_show, b=b_show)

        def body(tool=tool, make_argv=make_argv, command=command):
            exe = ctx.peers.get(tool)
            if not exe:
                raise NotAvailable(ctx.peers.reason(tool))

            def make(i):
                if upload:
                    bucket = ctx.buckets.new(f"{tool}-{label}")
                    argv = make_argv(exe, src_file, f"s3://{bucket}/data.bin")

                    def after(run):
                        run.extra["stored_bytes"] = ctx.buckets.size(bucket)
                        ctx.buckets.delete(bucket)
                        if run.rc == 0 and run.extra["stored_bytes"] != nbytes:
                            raise RuntimeError(
                                f"{tool} stored {run.extra['stored_bytes']} bytes, expected"
                                f" {nbytes}"
                            )

                else:
                    dest = ctx.tmp(f"dl-{tool}-{i}.bin")
                    argv = make_argv(exe, f"s3://{src_bucket}/data.bin", dest)

                    def after(run):
                        got = os.path.getsize(dest) if os.path.exists(dest) else -1
                        drop_file(dest)
                        if run.rc == 0 and got != nbytes:
                            raise RuntimeError(f"{tool} downloaded {got} bytes, expected {nbytes}")

                return argv, env, after

            got = repeat(ctx, tool, make, runs, warmup)
            return tool_result(tool, "peer", command, got, nbytes=nbytes, warmup=warmup)

        rows.append(_safe(ctx, tool, "peer", command, body))
    return rows


def _duplicity_argv(ctx, action, src_dir, url, archive_dir, name):
    srv = ctx.need_s3()
    return [
        ctx.peers.get("duplicity"),
        action,
        "--no-encryption",
        "--s3-endpoint-url",
        srv.endpoint,
        "--archive-dir",
        archive_dir,
        "--name",
        name,
        src_dir,
        url,
    ]


# ============================================================================ case 1
def case_export(ctx: Context) -> dict:
    """Export of a 1 GiB stream (1 MiB events) to S3 vs copying the same bytes as one file."""
    p = ctx.profile
    title = f"export {p.big // MiB} MiB stream ({p.event_size // MiB} MiB events) to S3"
    f = ctx.plain_file("f1g", p.big, p.event_size)
    srv = ctx.need_s3()
    env = ctx.env(s3=True)
    rows = []
    command = (
        "stream-backend export stream://bench/s1g s3://BUCKET/archive --endpoint-url $S3 --progress"
        " none"
    )

    def ours():
        s = ctx.stream("s1g", p.big, p.event_size)
        ctx.need("export")
        verified = {}

        def make(i):
            bucket = ctx.buckets.new("sb-export")
            argv = [
                ctx.sb,
                "export",
                s["url"],
                f"s3://{bucket}/archive",
                "--endpoint-url",
                srv.endpoint,
                "--progress",
                "none",
            ]

            def after(run):
                run.extra["stored_bytes"] = ctx.buckets.size(bucket, "archive/")
                if run.rc == 0 and i == 0:  # once (untimed): the archive matches the stream
                    verified.update(
                        _verify(ctx, f"s3://{bucket}/archive", s["url"], env, srv.endpoint)
                    )
                    if verified.get("ok") or not verified.get("ran"):
                        ctx.memo["s1g-archive-bucket"] = bucket  # case 2 imports this archive
                        return
                ctx.buckets.delete(bucket)

            return argv, env, after

        runs = repeat(ctx, "stream-backend", make, p.runs, p.warmup)
        row = tool_result(
            "stream-backend",
            "ours",
            command,
            runs,
            nbytes=p.big,
            events=s["events"],
            warmup=p.warmup,
            extra={"verify": verified},
        )
        ctx.memo["export-s3-s1g"] = row  # case 6 reuses these runs for its smaller size
        return row

    rows.append(_safe(ctx, "stream-backend", "ours", command, ours))
    if "import" not in ctx.selected and ctx.memo.get("s1g-archive-bucket"):
        ctx.buckets.delete(ctx.memo.pop("s1g-archive-bucket"))
    rows += _s3_copy_rows(ctx, "export", f, p.big, upload=True)

    dcommand = (
        "duplicity full --no-encryption --s3-endpoint-url $S3 --archive-dir TMP --name bench DIR"
        " boto3+s3://BUCKET/dup"
    )

    def dup():
        if not ctx.peers.get("duplicity"):
            raise NotAvailable(ctx.peers.reason("duplicity"))

        def make(i):
            bucket = ctx.buckets.new("dup-full")
            adir = ctx.tmp(f"dup-archive-{i}")
            argv = _duplicity_argv(
                ctx, "full", os.path.dirname(f), f"boto3+s3://{bucket}/dup", adir, "bench"
            )

            def after(run):
                run.extra["stored_bytes"] = ctx.buckets.size(bucket)
                ctx.buckets.delete(bucket)
                drop_file(adir)

            return argv, env, after

        runs = repeat(ctx, "duplicity full", make, p.slow_runs, 0)
        return tool_result("duplicity full", "peer", dcommand, runs, nbytes=p.big, warmup=0)

    rows.append(_safe(ctx, "duplicity full", "peer", dcommand, dup))

    # baselines: the same engine to a local directory, and cp of the file (disk ceiling)
    fcommand = "stream-backend export stream://bench/s1g file://DIR --progress none"

    def ours_file():
        s = ctx.stream("s1g", p.big, p.event_size)
        ctx.need("export")
        make = _export_to_dir(ctx, s["url"], "export-file")
        runs = repeat(ctx, "stream-backend -> file://", make, p.slow_runs, p.warmup, server_pids=[])
        return tool_result(
            "stream-backend -> file://", "baseline", fcommand, runs, nbytes=p.big, warmup=p.warmup
        )

    rows.append(_safe(ctx, "stream-backend -> file://", "baseline", fcommand, ours_file))
    rows.append(
        _safe(
            ctx, "cp (local disk)", "baseline", "cp data.bin DIR/", lambda: _cp_row(ctx, f, p.big)
        )
    )

    r = _ratios(rows)
    targets = [
        _target(
            "export >= 0.9x s5cmd cp",
            r["ratios"].get("s5cmd"),
            (r["ratios"].get("s5cmd") or 0) >= 0.9,
        ),
        _target(
            "export >= 3x duplicity full",
            r["ratios"].get("duplicity full"),
            (r["ratios"].get("duplicity full") or 0) >= 3.0,
        ),
    ]
    return _case("export", title, "MiB/s", rows, metric="throughput_mib_s", targets=targets, **r)


def _cp_row(ctx, src, nbytes):
    p = ctx.profile

    def make(i):
        dest = ctx.tmp(f"cp-{i}.bin")
        return [ctx.peers.get("cp") or "cp", src, dest], None, lambda run: drop_file(dest)

    runs = repeat(ctx, "cp (local disk)", make, p.runs, p.warmup, server_pids=[])
    return tool_result(
        "cp (local disk)", "baseline", "cp data.bin DIR/", runs, nbytes=nbytes, warmup=p.warmup
    )


def _verify(ctx, archive, source, env, endpoint) -> dict:
    try:
        ctx.need("verify")
    except NotAvailable as exc:
        return {"ran": False, "reason": str(exc)}
    res = subprocess.run(
        [ctx.sb, "verify", archive, "--against", source, "--endpoint-url", endpoint],
        env=env,
        capture_output=True,
        text=True,
    )
    out = (res.stdout + res.stderr).strip().splitlines()
    return {
        "ran": True,
        "ok": res.returncode == 0,
        "rc": res.returncode,
        "last_line": out[-1][:300] if out else "",
    }


# ============================================================================ case 2
def case_import(ctx: Context) -> dict:
    """Import of the archive into a new stream vs downloading the same bytes as one file."""
    p = ctx.profile
    title = f"import {p.big // MiB} MiB archive from S3 into a new stream"
    f = ctx.plain_file("f1g", p.big, p.event_size)
    srv = ctx.need_s3()
    env = ctx.env(s3=True)
    src = ctx.buckets.new("import-src")
    ctx.buckets.s3.upload_file(f, src, "data.bin")
    rows = []
    command = (
        "stream-backend import s3://SRC/archive stream://bench/imp-N --endpoint-url $S3 --progress"
        " none"
    )

    def ours():
        s = ctx.stream("s1g", p.big, p.event_size)
        ctx.need("export")
        ctx.need("import")
        archive = f"s3://{src}/archive"
        if ctx.memo.get(
            "s1g-archive-bucket"
        ):  # case 1's first (verified) archive: no second export
            archive = f"s3://{ctx.memo['s1g-archive-bucket']}/archive"
        else:
            run_measured(
                [
                    ctx.sb,
                    "export",
                    s["url"],
                    archive,
                    "--endpoint-url",
                    srv.endpoint,
                    "--progress",
                    "none",
                ],
                env=env,
            )

        def make(i):
            name = f"imp-{i}"

            def after(run):
                store = ctx.open_store()
                try:
                    info = store.stream_info(SCOPE, name)
                    run.extra["imported_events"] = info.events
                    run.extra["imported_bytes"] = info.length
                    store.delete_stream(SCOPE, name)
                except Exception as exc:  # noqa: BLE001
                    run.extra["check_error"] = str(exc)
                finally:
                    store.close()
                if run.rc == 0 and run.extra.get("imported_bytes") != p.big:
                    raise RuntimeError(
                        f"imported {run.extra.get('imported_bytes')} bytes, expected {p.big}"
                    )

            return (
                [
                    ctx.sb,
                    "import",
                    archive,
                    f"stream://{SCOPE}/{name}",
                    "--endpoint-url",
                    srv.endpoint,
                    "--progress",
                    "none",
                ],
                env,
                after,
            )

        runs = repeat(ctx, "stream-backend", make, p.runs, p.warmup)
        return tool_result(
            "stream-backend",
            "ours",
            command,
            runs,
            nbytes=p.big,
            events=s["events"],
            warmup=p.warmup,
        )

    try:
        rows.append(_safe(ctx, "stream-backend", "ours", command, ours))
        rows += _s3_copy_rows(ctx, "import", f, p.big, upload=False, src_bucket=src)
    finally:
        ctx.buckets.delete(src)
        if ctx.memo.get("s1g-archive-bucket"):
            ctx.buckets.delete(ctx.memo.pop("s1g-archive-bucket"))
    r = _ratios(rows)
    return _case("import", title, "MiB/s", rows, metric="throughput_mib_s", targets=[], **r)


# ============================================================================ case 3
def case_small_events(ctx: Context) -> dict:
    """Many tiny events: what the per-event cost of export is (events/s to file://)."""
    p = ctx.profile
    n = p.small_events
    title = f"small events: {n:,} x {p.small_event_size} B exported to file://"
    ctx.need("store")
    s = ctx.stream("small", n * p.small_event_size, p.small_event_size)
    nbytes = n * p.small_event_size
    rows = []
    command = "stream-backend export stream://bench/small file://DIR --progress none"

    def ours():
        ctx.need("export")
        make = _export_to_dir(ctx, s["url"], "small-export")
        runs = repeat(ctx, "stream-backend", make, p.runs, p.warmup, server_pids=[])
        return tool_result(
            "stream-backend", "ours", command, runs, nbytes=nbytes, events=n, warmup=p.warmup
        )

    rows.append(_safe(ctx, "stream-backend", "ours", command, ours))
    lcommand = "LocalStore.read_events loop (count events, no output)"

    def loop():
        def make(i):
            return (
                [ctx.python, PROBES, "readloop", ctx.root, SCOPE, "small"],
                ctx.env(),
                _probe_after(n),
            )

        runs = repeat(ctx, "store reader loop", make, p.runs, p.warmup, server_pids=[])
        inner = median([r.extra["probe"]["seconds"] for r in runs])
        return tool_result(
            "store reader loop",
            "baseline",
            lcommand,
            runs,
            nbytes=nbytes,
            events=n,
            warmup=p.warmup,
            extra={"inner_events_per_s": n / inner if inner else None},
        )

    rows.append(_safe(ctx, "store reader loop", "baseline", lcommand, loop))
    _drop(ctx, "small")
    mine = _ok(rows, "stream-backend")
    eps = mine.get("events_per_s") if mine else None
    targets = [
        _target(
            ">= 300,000 events/s",
            eps,
            (eps or 0) >= 300_000,
            "whole command, process start included",
        )
    ]
    return _case(
        "small-events",
        title,
        "events/s",
        rows,
        metric="events_per_s",
        targets=targets,
        generation={"events": s["events"], "seconds": s["seconds"]},
        ratios={},
        best_peer=None,
        ratio_to_best_peer=None,
    )


def _probe_after(expect_events=None, expect_bytes=None):
    def after(run):
        if run.rc != 0:
            return
        line = run.extra.get("stdout", "").strip().splitlines()[-1]
        run.extra["probe"] = json.loads(line)
        got = run.extra["probe"]
        if expect_events is not None and got.get("events") != expect_events:
            raise RuntimeError(f"probe saw {got.get('events')} events, expected {expect_events}")
        if expect_bytes is not None and got.get("bytes") != expect_bytes:
            raise RuntimeError(f"probe read {got.get('bytes')} bytes, expected {expect_bytes}")

    return after


# ============================================================================ case 4
def case_incremental(ctx: Context) -> dict:
    """Append 1% and export again: bytes moved and time, vs duplicity incremental."""
    p = ctx.profile
    title = (
        f"incremental export after appending {p.append_fraction:.0%} to a {p.big // MiB} MiB stream"
    )
    f = ctx.plain_file("fincr", p.big, p.event_size)
    try:
        s = ctx.stream("incr", p.big, p.event_size)
        store_reason = None
    except NotAvailable as exc:
        s, store_reason = {
            "url": "stream://bench/incr",
            "events": data.count_events(p.big, p.event_size),
        }, str(exc)
    srv = ctx.need_s3()
    env = ctx.env(s3=True)
    bucket = ctx.buckets.new("incremental")
    append_events = max(1, round(p.big * p.append_fraction / p.event_size))
    appended = append_events * p.event_size
    next_event = s["events"]
    have_dup = bool(ctx.peers.get("duplicity"))
    adir = ctx.tmp("dup-incr-archive")
    ours_cmd = (
        "stream-backend export stream://bench/incr s3://BUCKET/archive --endpoint-url $S3"
        " --progress none"
    )
    dup_cmd = (
        "duplicity incremental --no-encryption --s3-endpoint-url $S3 --archive-dir TMP --name incr"
        " DIR boto3+s3://BUCKET/dup"
    )
    ours_argv = [
        ctx.sb,
        "export",
        s["url"],
        f"s3://{bucket}/archive",
        "--endpoint-url",
        srv.endpoint,
        "--progress",
        "none",
    ]
    rows = []
    full = {}
    try:
        ours_reason, ours_na = store_reason, bool(store_reason)
        try:
            if store_reason:
                raise NotAvailable(store_reason)
            ctx.need("export")
            r = run_measured(ours_argv, env=env, server_pids=ctx.server_pids())
            full["stream-backend"] = {
                "wall_s": r.wall_s,
                "stored_bytes": ctx.buckets.size(bucket, "archive/"),
            }
            ctx.log(f"    stream-backend full export   {r.wall_s:7.2f}s (reference)")
        except NotAvailable as exc:
            ours_reason, ours_na = str(exc), True
        except Exception as exc:  # noqa: BLE001
            ours_reason = f"full export failed: {exc}"
        dup_reason = None if have_dup else ctx.peers.reason("duplicity")
        dup_na = not have_dup
        if have_dup:
            try:
                r = run_measured(
                    _duplicity_argv(
                        ctx, "full", os.path.dirname(f), f"boto3+s3://{bucket}/dup", adir, "incr"
                    ),
                    env=env,
                    server_pids=ctx.server_pids(),
                )
                full["duplicity"] = {
                    "wall_s": r.wall_s,
                    "stored_bytes": ctx.buckets.size(bucket, "dup/"),
                }
                ctx.log(f"    duplicity full               {r.wall_s:7.2f}s (reference)")
            except Exception as exc:  # noqa: BLE001
                dup_reason = f"duplicity full failed: {exc}"
        ours_runs, dup_runs = [], []
        for i in range(p.runs):
            if not store_reason:
                data.write_stream(
                    ctx.root, SCOPE, "incr", appended, p.event_size, first=next_event, create=False
                )
            data.write_file(f, appended, p.event_size, first=next_event, append=True)
            next_event += append_events
            for tool, runs, reason, make in (
                ("stream-backend", ours_runs, ours_reason, lambda: (ours_argv, "archive/")),
                (
                    "duplicity incremental",
                    dup_runs,
                    dup_reason,
                    lambda: (
                        _duplicity_argv(
                            ctx,
                            "incremental",
                            os.path.dirname(f),
                            f"boto3+s3://{bucket}/dup",
                            adir,
                            "incr",
                        ),
                        "dup/",
                    ),
                ),
            ):
                if reason:
                    continue
                argv, prefix = make()
                before = ctx.buckets.size(bucket, prefix)
                run = run_measured(argv, env=env, server_pids=ctx.server_pids(), check=False)
                if run.rc != 0:
                    msg = f"exit {run.rc}: " + " | ".join(
                        run.extra.get("stderr_tail", "").strip().splitlines()[-3:]
                    )
                    if tool == "stream-backend":
                        ours_reason = msg
                    else:
                        dup_reason = msg
                    ctx.log(f"    {tool:<28} FAILED: {msg}")
                    continue
                run.extra["moved_bytes"] = ctx.buckets.size(bucket, prefix) - before
                run.extra["appended_bytes"] = appended
                ctx.log(
                    f"    {tool:<28} run {i + 1}/{p.runs}  {run.wall_s:7.2f}s  moved"
                    f" {run.extra['moved_bytes'] / MiB:.2f} MiB for {appended / MiB:.2f} MiB"
                    " appended"
                )
                runs.append(run)
        for tool, role, cmd, runs, reason, na in (
            ("stream-backend", "ours", ours_cmd, ours_runs, ours_reason, ours_na),
            ("duplicity incremental", "peer", dup_cmd, dup_runs, dup_reason, dup_na),
        ):
            if reason and not runs:
                rows.append(tool_result(tool, role, cmd, runs=None if na else [], reason=reason))
                continue
            moved = median([r.extra["moved_bytes"] for r in runs])
            key = "stream-backend" if tool == "stream-backend" else "duplicity"
            ref = full.get(key, {})
            rows.append(
                tool_result(
                    tool,
                    role,
                    cmd,
                    runs,
                    nbytes=appended,
                    warmup=0,
                    extra={
                        "moved_bytes": moved,
                        "moved_per_appended": moved / appended if appended else None,
                        "full": ref,
                        "time_vs_full": (
                            (median([r.wall_s for r in runs]) / ref["wall_s"])
                            if ref.get("wall_s")
                            else None
                        ),
                    },
                )
            )
    finally:
        ctx.buckets.delete(bucket)
        drop_file(adir)
        drop_file(os.path.dirname(f))
        ctx.files.pop("fincr", None)
        if not store_reason:
            _drop(ctx, "incr")
    mine, dup = _ok(rows, "stream-backend"), _ok(rows, "duplicity incremental")
    ratios = {}
    if mine and dup:
        ratios["duplicity incremental"] = dup["median"]["wall_s"] / mine["median"]["wall_s"]
    moved = mine.get("moved_per_appended") if mine else None
    targets = [
        _target(
            "incremental cost proportional to appended bytes (moved <= 1.1x appended + 1 MiB)",
            moved,
            mine and mine["moved_bytes"] <= 1.1 * appended + MiB,
            f"appended {appended / MiB:.1f} MiB per run",
        )
    ]
    return _case(
        "incremental",
        title,
        "s",
        rows,
        metric="wall_s",
        targets=targets,
        ratios=ratios,
        best_peer="duplicity incremental" if dup else None,
        ratio_to_best_peer=ratios.get("duplicity incremental"),
        appended_bytes=appended,
    )


# ============================================================================ case 5
class _Mount:
    """``stream-backend mount --background stream://bench MNT``; its PID counts as the server."""

    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.mnt = ctx.tmp("mnt")
        self.pid = None

    def __enter__(self):
        self.ctx.need("fuse")
        os.makedirs(self.mnt, exist_ok=True)
        res = subprocess.run(
            [
                self.ctx.sb,
                "mount",
                "--background",
                "--root",
                self.ctx.root,
                f"stream://{SCOPE}",
                self.mnt,
            ],
            env=self.ctx.env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        if res.returncode != 0 or not os.path.ismount(self.mnt):
            raise RuntimeError(
                "mount failed: "
                + (res.stderr.strip().splitlines() or [f"exit {res.returncode}"])[-1]
            )
        import psutil

        for proc in psutil.process_iter(["pid", "cmdline"]):
            cmd = proc.info.get("cmdline") or []
            if self.mnt in cmd and "mount" in cmd:
                self.pid = proc.info["pid"]
        return self

    def __exit__(self, *exc):
        if os.path.ismount(self.mnt):
            subprocess.run(
                [self.ctx.sb, "umount", self.mnt],
                env=self.ctx.env(),
                capture_output=True,
                timeout=60,
            )
        if os.path.ismount(self.mnt):
            for tool in ("fusermount3", "fusermount"):
                if shutil.which(tool):
                    subprocess.run([tool, "-u", "-z", self.mnt], capture_output=True)
                    break


def case_read(ctx: Context) -> dict:
    """File-view reads: sequential (fsspec, FUSE) vs cat, random 4 KiB at two stream lengths."""
    p = ctx.profile
    title = f"file-view reads: sequential {p.big // MiB} MiB, random 4 KiB at " + " and ".join(
        f"{x // MiB} MiB" for x in p.rand_sizes
    )
    f = ctx.plain_file("f1g", p.big, p.event_size)
    rows = []
    block = 1 * MiB

    def cat_row(tool, path, role, server_pids=()):
        def make(i):
            return [ctx.peers.get("cat") or "cat", path], None, None, {"stdout_path": os.devnull}

        runs = repeat(ctx, tool, make, p.runs, p.warmup, server_pids=list(server_pids))
        return tool_result(
            tool,
            role,
            f"cat {'MNT/s1g' if role == 'ours' else 'data.bin'} > /dev/null",
            runs,
            nbytes=p.big,
            warmup=p.warmup,
        )

    rows.append(
        _safe(ctx, "cat", "peer", "cat data.bin > /dev/null", lambda: cat_row("cat", f, "peer"))
    )

    def dd_row():
        def make(i):
            return [ctx.peers.get("dd") or "dd", f"if={f}", "of=/dev/null", "bs=1M"], None, None

        runs = repeat(ctx, "dd bs=1M", make, p.runs, p.warmup, server_pids=[])
        return tool_result(
            "dd bs=1M",
            "peer",
            "dd if=data.bin of=/dev/null bs=1M",
            runs,
            nbytes=p.big,
            warmup=p.warmup,
        )

    rows.append(_safe(ctx, "dd bs=1M", "peer", "dd if=data.bin of=/dev/null bs=1M", dd_row))

    fcmd = "fsspec.open('stream://bench/s1g').read(1 MiB) loop"

    def fs_row():
        s = ctx.stream("s1g", p.big, p.event_size)
        ctx.need("fsspec")

        def make(i):
            return (
                [ctx.python, PROBES, "seqread", "fsspec", s["url"], str(block)],
                ctx.env(),
                _probe_after(expect_bytes=p.big),
            )

        runs = repeat(ctx, "fsspec stream://", make, p.runs, p.warmup, server_pids=[])
        inner = median([r.extra["probe"]["seconds"] for r in runs])
        return tool_result(
            "fsspec stream://",
            "ours",
            fcmd,
            runs,
            warmup=p.warmup,
            extra={
                "bytes": p.big,
                "throughput_mib_s": p.big / MiB / inner,
                "process_wall_s": median([r.wall_s for r in runs]),
                "timing": "inside the process (open to last byte)",
            },
        )

    rows.append(_safe(ctx, "fsspec stream://", "ours", fcmd, fs_row))

    mount = None
    try:
        ctx.stream("s1g", p.big, p.event_size)
        mount = _Mount(ctx).__enter__()
    except Exception as exc:  # noqa: BLE001
        reason = str(exc)
        is_na = isinstance(exc, NotAvailable)
        rows.append(
            tool_result(
                "cat via FUSE mount",
                "ours",
                "cat MNT/s1g > /dev/null",
                runs=None if is_na else [],
                reason=reason,
            )
        )
        mount = None
    try:
        if mount:
            rows.append(
                _safe(
                    ctx,
                    "cat via FUSE mount",
                    "ours",
                    "cat MNT/s1g > /dev/null",
                    lambda: cat_row(
                        "cat via FUSE mount",
                        os.path.join(mount.mnt, "s1g"),
                        "ours",
                        [mount.pid] if mount.pid else [],
                    ),
                )
            )
        # random 4 KiB reads
        rand = []
        for size in p.rand_sizes:
            name = "s1g" if size == p.big else f"r{size // MiB}m"
            try:
                st = ctx.stream(name, size, p.event_size)
            except NotAvailable as exc:
                rand.append({"size": size, "status": "not available", "reason": str(exc)})
                continue
            variants = [
                ("fsspec", "fsspec", st["url"]),
            ]
            if mount:
                variants.append(("FUSE pread", "file", os.path.join(mount.mnt, name)))
            if size == p.big:
                variants.append(("plain file pread (page cache)", "file", f))
            for label, kind, target in variants:
                entry = {"size": size, "tool": label}
                try:
                    if kind == "fsspec":
                        ctx.need("fsspec")
                    res = run_measured(
                        [ctx.python, PROBES, "randread", kind, target, str(p.rand_reads), "7"],
                        env=ctx.env(),
                        server_pids=(
                            [mount.pid]
                            if (mount and mount.pid and label.startswith("FUSE"))
                            else []
                        ),
                    )
                    probe = json.loads(res.extra["stdout"].strip().splitlines()[-1])
                    entry.update(
                        status="ok",
                        **probe,
                        client_cpu_s=res.client_cpu_s,
                        server_cpu_s=res.server_cpu_s,
                    )
                    ctx.log(
                        f"    random 4 KiB {label:<30} {size // MiB:>6} MiB  median"
                        f" {probe['median_ms']:.3f} ms  p99 {probe['p99_ms']:.3f} ms"
                    )
                except NotAvailable as exc:
                    entry.update(status="not available", reason=str(exc))
                except Exception as exc:  # noqa: BLE001
                    entry.update(status="failed", reason=f"{type(exc).__name__}: {exc}")
                    ctx.log(f"    random 4 KiB {label} FAILED: {exc}")
                rand.append(entry)
    finally:
        if mount:
            mount.__exit__(None, None, None)
        for size in p.rand_sizes:
            if size != p.big:
                _drop(ctx, f"r{size // MiB}m")

    cat = _ok(rows, "cat")
    fs = _ok(rows, "fsspec stream://")
    fuse = _ok(rows, "cat via FUSE mount")
    r = _ratios(rows, ours="fsspec stream://")
    ratios = r["ratios"]
    fuse_ratio = (fuse["throughput_mib_s"] / cat["throughput_mib_s"]) if cat and fuse else None
    fr = [e for e in rand if e.get("tool") == "fsspec" and e.get("status") == "ok"]
    small = next((e for e in fr if e["size"] == p.rand_sizes[0]), None)
    large = next((e for e in fr if e["size"] == p.rand_sizes[-1]), None)
    flat = (large["median_ms"] / small["median_ms"]) if small and large else None
    worst = max((e["median_ms"] for e in fr), default=None)
    targets = [
        _target(
            "fsspec sequential read >= 0.8x cat", ratios.get("cat"), (ratios.get("cat") or 0) >= 0.8
        ),
        _target(
            "random 4 KiB read (fsspec) < 1 ms median",
            worst,
            worst is not None and worst < 1.0,
            "worst median over the sizes, ms",
        ),
        _target(
            f"random read flat {p.rand_sizes[0] // MiB} MiB -> {p.rand_sizes[-1] // MiB} MiB (<="
            " 1.5x)",
            flat,
            flat is not None and flat <= 1.5,
            "median at the larger size / at the smaller",
        ),
    ]
    return _case(
        "read",
        title,
        "MiB/s",
        rows,
        metric="throughput_mib_s",
        targets=targets,
        random_reads=rand,
        fuse_ratio_to_cat=fuse_ratio,
        **r,
    )


# ============================================================================ case 6
def case_memory(ctx: Context) -> dict:
    """Peak RSS of export at two stream lengths: it must not grow with the stream."""
    p = ctx.profile
    title = "peak RSS of export to S3 at " + " and ".join(f"{x // MiB} MiB" for x in p.rss_sizes)
    ctx.need("store")
    srv = ctx.need_s3()
    env = ctx.env(s3=True)
    rows = []
    for k, size in enumerate(p.rss_sizes):
        name = "s1g" if size == p.big else f"m{size // MiB}m"
        tool = f"export {size // MiB} MiB"
        cmd = (
            f"stream-backend export stream://bench/{name} s3://BUCKET/archive --endpoint-url $S3"
            " --progress none"
        )

        def body(name=name, size=size, tool=tool, cmd=cmd, k=k):
            if name == "s1g" and ctx.memo.get("export-s3-s1g"):
                ctx.log(f"    {tool:<28} same command as case 1: reusing its runs")
                return dict(ctx.memo["export-s3-s1g"], tool=tool, command=cmd, reused_from="export")
            st = ctx.stream(name, size, p.event_size)
            ctx.need("export")

            def make(i):
                bucket = ctx.buckets.new("rss")
                return (
                    [
                        ctx.sb,
                        "export",
                        st["url"],
                        f"s3://{bucket}/archive",
                        "--endpoint-url",
                        srv.endpoint,
                        "--progress",
                        "none",
                    ],
                    env,
                    lambda run: ctx.buckets.delete(bucket),
                )

            n = p.slow_runs if k == 0 else 1
            runs = repeat(ctx, tool, make, n, 0)
            return tool_result(
                tool,
                "ours",
                cmd,
                runs,
                nbytes=size,
                events=st["events"],
                extra={"stream_bytes": size},
            )

        rows.append(_safe(ctx, tool, "ours", cmd, body))
    for size in p.rss_sizes:
        if size != p.big:
            _drop(ctx, f"m{size // MiB}m")
    ok = [r for r in rows if r.get("status") == "ok"]
    growth = None
    if len(ok) == len(p.rss_sizes) and len(ok) >= 2:
        growth = ok[-1]["median"]["client_maxrss"] / ok[0]["median"]["client_maxrss"]
    targets = [
        _target(
            "export memory flat (peak RSS at the larger stream <= 1.25x the smaller)",
            growth,
            growth is not None and growth <= 1.25,
        )
    ]
    return _case(
        "memory",
        title,
        "MiB",
        rows,
        metric="client_maxrss",
        targets=targets,
        ratios={},
        best_peer=None,
        ratio_to_best_peer=None,
        rss_growth=growth,
    )


# ============================================================================ case 7
def case_pravega(ctx: Context) -> dict:
    """Pravega: the client's own reader loop alone vs export pravega:// -> file://."""
    p = ctx.profile
    title = (
        f"Pravega: reader loop vs export of {p.pravega_bytes // MiB} MiB ({p.event_size // MiB} MiB"
        " events)"
    )
    ctx.need("pravega")
    server = ctx.start_pravega()
    controller = server.controller
    ev = min(p.event_size, 1 * MiB)
    n_events = data.count_events(p.pravega_bytes, ev)
    from stream_backend.stores.pravega import PravegaStore

    t0 = time.perf_counter()
    store = PravegaStore(controller=controller, timeout=60)
    try:
        store.create_stream(SCOPE, "pv", segments=1, exist_ok=True)
        with store.writer(SCOPE, "pv") as w:
            for payload in data.payloads(p.pravega_bytes, ev):
                w.append(payload, None, 0)
    finally:
        store.close()
    ctx.log(f"  wrote pravega://{SCOPE}/pv: {n_events} events in {time.perf_counter() - t0:.1f}s")
    rows = []
    pids = [server.pid] if server.pid else []
    lcmd = "the Java client's reader group: readNextEvent loop over every event (PravegaTool bench-read)"

    def loop():
        def make(i):
            return (
                [
                    ctx.python,
                    PROBES,
                    "pravega-readloop",
                    controller,
                    SCOPE,
                    "pv",
                    str(n_events),
                    "600",
                ],
                ctx.env(),
                _probe_after(expect_events=n_events),
            )

        runs = repeat(ctx, "pravega reader loop", make, p.runs, p.warmup, server_pids=pids)
        return tool_result(
            "pravega reader loop",
            "peer",
            lcmd,
            runs,
            nbytes=p.pravega_bytes,
            events=n_events,
            warmup=p.warmup,
        )

    rows.append(_safe(ctx, "pravega reader loop", "peer", lcmd, loop))
    cmd = "stream-backend export pravega://bench/pv file://DIR --controller URI --progress none"

    def ours():
        ctx.need("export")

        def make(i):
            dest = ctx.tmp(f"pv-export-{i}")
            return (
                [
                    ctx.sb,
                    "export",
                    f"pravega://{SCOPE}/pv",
                    "file://" + dest,
                    "--controller",
                    controller,
                    "--progress",
                    "none",
                ],
                ctx.env(),
                lambda run: drop_file(dest),
            )

        runs = repeat(ctx, "stream-backend", make, p.runs, p.warmup, server_pids=pids)
        return tool_result(
            "stream-backend",
            "ours",
            cmd,
            runs,
            nbytes=p.pravega_bytes,
            events=n_events,
            warmup=p.warmup,
        )

    rows.append(_safe(ctx, "stream-backend", "ours", cmd, ours))
    r = _ratios(rows)
    return _case("pravega", title, "MiB/s", rows, metric="throughput_mib_s", targets=[], **r)


# ============================================================================ case 8
#: downloads started at once in the concurrency rows (the issue's "20 concurrent downloads")
CONCURRENT = 20


class _Serve:
    """``stream-backend serve`` on loopback with one S3 location; its PID is measured apart
    from SeaweedFS's, so what it sends during downloads shows whether anything relays."""

    def __init__(self, ctx: Context, bucket: str):
        srv = ctx.need_s3()
        (self.port,) = free_ports(1)
        self.base = f"http://127.0.0.1:{self.port}"
        self._log = open(ctx.tmp("serve.log"), "ab")
        argv = [ctx.sb, "serve", "--listen", f"127.0.0.1:{self.port}", "--location", f"bench=s3://{bucket}",
                "--endpoint-url", srv.endpoint, "--state-dir", ctx.tmp("serve-state"), "--workers", "1"]
        self.trace = ctx.tmp("serve.strace") if shutil.which("strace") else None
        if self.trace:  # every byte it sends, counted by the kernel's syscalls, not by us
            argv = ["strace", "-f", "-qq", "-yy", "-s", "0", "-e", "trace=sendto,sendmsg,write,writev",
                    "-e", "signal=none", "-o", self.trace, *argv]
        self.proc = subprocess.Popen(argv, env=ctx.env(s3=True), stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"serve did not start: {self.log_tail()}")
            try:
                self.get("/healthz")
                return
            except OSError:
                time.sleep(0.1)

    def get(self, path: str, body: dict | None = None) -> dict:
        import urllib.request

        req = urllib.request.Request(
            self.base + path, data=None if body is None else json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.loads(r.read() or b"null")

    def sent_bytes(self) -> int | None:
        """Bytes the server has sent to its HTTP clients so far: the return values of its
        send/write calls on connections of its listening port, from strace (None without it)."""
        if not self.trace:
            return None
        import re

        mine = re.compile(r"<TCP:\[127\.0\.0\.1:%d->[^]]*\]>.*= (\d+)$" % self.port)
        with open(self.trace, errors="replace") as f:
            return sum(int(m.group(1)) for line in f if (m := mine.search(line.rstrip())))

    def log_tail(self) -> str:
        self._log.flush()
        with open(self._log.name, errors="replace") as f:
            return " | ".join(f.read().strip().splitlines()[-3:])

    def stop(self) -> None:
        """Stop serve and strace together: a signal to strace alone detaches it and leaves
        serve running."""
        import signal

        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self._log.close()


def _all_at_once(argvs: list[list[str]]) -> list[str]:
    """One command that starts every argv at once and fails if any of them fails."""
    import shlex

    starts = "; ".join(shlex.join(a) + " & pids+=($!)" for a in argvs)
    return ["bash", "-c", f"pids=(); {starts}; rc=0; for p in \"${{pids[@]}}\"; do wait $p || rc=1; done;"
            " exit $rc"]


def case_download(ctx: Context) -> dict:
    """Download of an export's file view through its plan vs s5cmd cp of the same objects."""
    p = ctx.profile
    title = f"download a {p.big // MiB} MiB export's file view from S3 (one, and {CONCURRENT} at once)"
    f = ctx.plain_file("f1g", p.big, p.event_size)
    s = ctx.stream("s1g", p.big, p.event_size)
    srv = ctx.need_s3()
    env = ctx.env(s3=True)
    bucket = ctx.buckets.new("download")
    rows = []
    serve = _Serve(ctx, bucket)
    try:
        t0 = time.perf_counter()
        serve.get("/v1/exports", {"name": "bench", "spec": {
            "source": s["url"], "archiveLocation": "bench", "archivePath": "s1g", "fileView": True}})
        while (phase := serve.get("/v1/exports/bench")["status"].get("phase")) not in ("Succeeded", "Failed"):
            time.sleep(0.2)
        if phase != "Succeeded":
            raise RuntimeError(f"the export request failed: {serve.get('/v1/exports/bench')['status']}")
        ctx.log(f"  export with its file view through serve: {time.perf_counter() - t0:.1f} s")
        url = serve.base + "/v1/exports/bench/download"
        views = f"s3://{bucket}/s1g/views/000000/*"
        checked = {}

        def ours_make(i):
            dest = ctx.tmp(f"dl-ours-{i}.bin")
            argv = [ctx.sb, "download", url, "-o", dest, "--progress", "none"]

            def after(run):
                if run.rc == 0 and not checked:  # once (untimed): the bytes are the stream's
                    checked["identical"] = subprocess.run(["cmp", "-s", f, dest]).returncode == 0
                    if not checked["identical"]:
                        raise RuntimeError(f"the download differs from the stream's bytes ({dest})")
                drop_file(dest)

            return argv, env, after

        command = "stream-backend download http://127.0.0.1:PORT/v1/exports/bench/download -o data.bin"
        rows.append(_safe(ctx, "stream-backend", "ours", command, lambda: tool_result(
            "stream-backend", "ours", command, repeat(ctx, "stream-backend", ours_make, p.runs, p.warmup),
            nbytes=p.big, warmup=p.warmup, extra={"identical": checked.get("identical")})))

        pcommand = "s5cmd --endpoint-url $S3 cp 's3://BUCKET/s1g/views/000000/*' DIR/"

        def s5cmd_make(i):
            dest = ctx.tmp(f"dl-s5cmd-{i}")
            argv = [ctx.peers.get("s5cmd"), "--endpoint-url", srv.endpoint, "cp", views, dest + "/"]

            def after(run):
                got = dir_bytes(dest)
                drop_file(dest)
                if run.rc == 0 and got != p.big:
                    raise RuntimeError(f"s5cmd downloaded {got} bytes, expected {p.big}")

            return argv, env, after

        def s5cmd_row():
            if not ctx.peers.get("s5cmd"):
                raise NotAvailable(ctx.peers.reason("s5cmd"))
            runs = repeat(ctx, "s5cmd cp", s5cmd_make, p.runs, p.warmup)
            return tool_result("s5cmd cp", "peer", pcommand, runs, nbytes=p.big, warmup=p.warmup)

        rows.append(_safe(ctx, "s5cmd cp", "peer", pcommand, s5cmd_row))

        def at_once(tool, one_argv, check_dest):
            def make(i):
                dests = [ctx.tmp(f"dl-{tool.split()[0]}-x{i}-{k}") for k in range(CONCURRENT)]
                before = serve.sent_bytes()

                def after(run):
                    now = serve.sent_bytes()
                    run.extra["serve_sent_bytes"] = None if now is None else now - before
                    sizes = [check_dest(d) for d in dests]
                    for d in dests:
                        drop_file(d)
                    if run.rc == 0 and sizes != [p.big] * CONCURRENT:
                        raise RuntimeError(f"{tool}: downloaded sizes {sorted(set(sizes))}, expected {p.big}")

                return _all_at_once([one_argv(d) for d in dests]), env, after

            runs = repeat(ctx, tool, make, p.slow_runs, 0)
            sent = max((r.extra["serve_sent_bytes"] for r in runs), default=None, key=lambda v: v or 0)
            return tool_result(tool, "ours" if tool.startswith("stream-backend") else "peer",
                               f"{CONCURRENT} x ({command if tool.startswith('stream') else pcommand}) at once",
                               runs, nbytes=CONCURRENT * p.big, extra={"serve_sent_bytes": sent})

        many = f"stream-backend x{CONCURRENT}"
        rows.append(_safe(ctx, many, "ours", f"{CONCURRENT} x ({command}) at once", lambda: at_once(
            many, lambda d: [ctx.sb, "download", url, "-o", d, "--progress", "none"], os.path.getsize)))

        def s5cmd_many():
            if not ctx.peers.get("s5cmd"):
                raise NotAvailable(ctx.peers.reason("s5cmd"))
            return at_once(f"s5cmd cp x{CONCURRENT}", lambda d: [
                ctx.peers.get("s5cmd"), "--endpoint-url", srv.endpoint, "cp", views, d + "/"], dir_bytes)

        rows.append(_safe(ctx, f"s5cmd cp x{CONCURRENT}", "peer", f"{CONCURRENT} x ({pcommand}) at once", s5cmd_many))
    finally:
        serve.stop()
        ctx.buckets.delete(bucket)
    one = _ratios([r for r in rows if "x" + str(CONCURRENT) not in r["tool"]])
    both = _ratios([r for r in rows if "x" + str(CONCURRENT) in r["tool"]], ours=many)
    relay = (_ok(rows, many) or {}).get("serve_sent_bytes")
    targets = [
        _target("download >= 0.9x s5cmd cp", one["ratios"].get("s5cmd cp"),
                (one["ratios"].get("s5cmd cp") or 0) >= 0.9),
        _target(f"{CONCURRENT} at once >= 0.9x {CONCURRENT} s5cmd", both["ratios"].get(f"s5cmd cp x{CONCURRENT}"),
                (both["ratios"].get(f"s5cmd cp x{CONCURRENT}") or 0) >= 0.9),
        _target(f"bytes serve sent during {CONCURRENT} downloads <= 0.01% of theirs",
                None if relay is None else relay, relay is not None and relay <= CONCURRENT * p.big / 10_000,
                detail="what serve sent its clients (strace): the plans, no data"),
    ]
    ratios = dict(one["ratios"], **both["ratios"])
    return _case("download", title, "MiB/s", rows, metric="throughput_mib_s", targets=targets,
                 ratios=ratios, best_peer=one["best_peer"], ratio_to_best_peer=one["ratio_to_best_peer"])


CASES = {
    "export": (1, case_export),
    "import": (2, case_import),
    "small-events": (3, case_small_events),
    "incremental": (4, case_incremental),
    "read": (5, case_read),
    "memory": (6, case_memory),
    "pravega": (7, case_pravega),
    "download": (8, case_download),
}
DEFAULT_CASES = [c for c in CASES if c != "pravega"]
