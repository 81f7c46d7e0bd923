"""export, import, status, verify: the transfer commands (docs/transfer.md).

Thin: parse options, open the store and the archive target, call the engine in
stream_backend.transfer, print the result. A pause (SIGTERM/SIGINT) exits 75 with the
command that resumes it.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as _dt
import functools
import json
import math
import os
import signal
import sys
import threading

import click

from .. import settings
from ..errors import Paused, StreamBackendError, UnavailableError, UsageError
from ..s3vocab import LOCK_MODES, MAX_LOCK_DAYS, SSE_MODES, STORAGE_CLASSES
from ..units import human_size, iso_time, parse_rate, parse_size
from ..urls import has_userinfo, parse_stream_url, redact
from . import main
from .common import config_line, open_store_for, shape_line, sse_c_key, store_options


#: the metrics of the transfer this command runs (--metrics-port, --pushgateway), if any
_metrics: contextvars.ContextVar = contextvars.ContextVar("metrics", default=None)


def _metered(f):
    """--metrics-port/--metrics-addr/--pushgateway on a transfer command: its progress
    feeds Prometheus metrics, scraped while it runs and pushed when it ends, however it ends."""

    @functools.wraps(f)
    def wrapper(*args, metrics_port, metrics_addr, pushgateway, **kwargs):
        if metrics_port is None and pushgateway is None:
            return f(*args, **kwargs)
        from ..transfer.metrics import TransferMetrics

        if pushgateway is not None and not pushgateway.startswith(("http://", "https://")):
            raise UsageError(f"--pushgateway takes http(s)://HOST[:PORT], not {redact(pushgateway)}")
        if pushgateway is not None and has_userinfo(pushgateway):
            raise UsageError("--pushgateway URL carries credentials, which a process list shows: "
                             "put the Pushgateway behind a proxy that adds them")
        archive = kwargs["archive"]
        if "://" not in archive:
            archive = "file://" + os.path.abspath(os.path.expanduser(archive))
        op = "export" if "source" in kwargs else "import"
        metrics = TransferMetrics(op, redact(archive), kwargs.get("source") or kwargs.get("dest"))
        if metrics_port is not None:
            metrics.serve(metrics_addr, metrics_port)
        token = _metrics.set(metrics)
        complete = False
        try:
            result = f(*args, **kwargs)
            complete = metrics.complete
            return result
        except SystemExit as exc:  # a pause (75), or an error already reported
            metrics.failed(exc.code if isinstance(exc.code, int) else 1)
            raise
        except StreamBackendError as exc:
            metrics.failed(exc.exit_code)
            raise
        except Exception:
            metrics.failed(70)
            raise
        finally:
            _metrics.reset(token)
            if pushgateway:
                try:
                    metrics.push(pushgateway, succeeded=complete)
                except UnavailableError as exc:  # the transfer's own outcome stands
                    click.echo(redact(f"stream-backend: warning: {exc}"), err=True)

    wrapper = click.option("--pushgateway", default=None, metavar="URL",
                           help="Push the metrics to this Prometheus Pushgateway when the run ends (CronJobs).")(wrapper)
    wrapper = click.option("--metrics-addr", default="127.0.0.1", show_default=True,
                           help="Address --metrics-port listens on (0.0.0.0 in a pod).")(wrapper)
    return click.option("--metrics-port", type=click.IntRange(1, 65535), default=None, metavar="PORT",
                        help="Serve Prometheus metrics of the run on this port while it runs.")(wrapper)


@contextlib.contextmanager
def _progress(op: str, mode: str):
    """The transfer's Progress; in a pod the operator started, it also reports to the
    pod's resource (k8s/status.py); with --metrics-port/--pushgateway, to the metrics."""
    from ..transfer.progress import Progress

    reporter = None
    if os.environ.get(settings.K8S_STATUS_ENV):
        from ..k8s.status import reporter_from_env

        reporter = reporter_from_env()
    sinks = [s for s in (reporter, _metrics.get()) if s is not None]
    try:
        with Progress(op, mode, sinks=sinks) as prog:
            yield prog
    finally:
        if reporter is not None:
            reporter.close()


def _size(text: str, what: str) -> int:
    n = parse_size(text)
    if n <= 0:
        raise UsageError(f"{what} must be positive, not {text!r}")
    return n


def _segments(text: str | None) -> list[int] | None:
    if not text:
        return None
    try:
        return sorted({int(x) for x in text.split(",") if x.strip()})
    except ValueError:
        raise UsageError(f"--segments takes numbers separated by commas, not {text!r}") from None


def _shard(shard: str | None, shards: int | None) -> tuple[int, int] | None:
    """--shard I/N, else JOB_COMPLETION_INDEX with --shards N / STREAM_BACKEND_SHARDS."""
    if shard:
        try:
            i, n = (int(x) for x in shard.split("/"))
        except ValueError:
            raise UsageError(f"--shard takes I/N (for example 0/4), not {shard!r}") from None
        return i, n
    index = settings.job_index()
    if shards is None:
        shards = settings.shard_count()
    if index is not None and shards:
        try:
            return int(index), shards
        except ValueError:
            raise UsageError(f"JOB_COMPLETION_INDEX must be a number, not {index!r}") from None
    if shards is not None and shards < 1:
        raise UsageError(f"--shards must be at least 1, not {shards}")
    if shards and index is None:
        raise UsageError("--shards needs JOB_COMPLETION_INDEX (set by a Kubernetes Indexed Job) or use --shard I/N")
    return None


def _to_time_ns(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        seconds = float(text)
    except ValueError:
        seconds = None
    if seconds is not None:
        if not math.isfinite(seconds) or seconds < 0 or seconds > 1e11:
            raise UsageError(f"--to-time takes a time after 1970 (ISO 8601 or epoch seconds), not {text!r}")
        return int(seconds * 1e9)
    try:
        t = _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"--to-time takes ISO 8601 (2026-01-31T12:00:00Z) or epoch seconds, not {text!r}") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=_dt.timezone.utc)
    return int(t.timestamp() * 1e9)


def _bwlimit_option(f):
    return click.option("--bwlimit", default=None, metavar="RATE",
                        help="S3: at most RATE bytes per second (e.g. 20MiB), all parts in flight together.")(f)


def _archive_target(archive: str, endpoint_url: str | None, sse_c_key_file: str | None = None, **write_options):
    """The archive target, with a warning for a plain relative path whose first part looks
    like a bucket name (``export stream://a/b bucket/x`` wrote into ./bucket/x).
    ``write_options``: export's S3 write options (S3Options' fields)."""
    from ..transfer.targets import S3Options, open_target

    given = {k: v for k, v in {**write_options, "sse_c_key_file": sse_c_key_file}.items() if v is not None}
    if given and not archive.startswith(("s3://", "s3a://")):
        raise UsageError(f"--{next(iter(given)).replace('_', '-')} is an S3 setting; {archive} is not in S3")
    if sse_c_key_file:
        given["sse_c_key"] = sse_c_key(given.pop("sse_c_key_file"))
    if "bwlimit" in given:
        given["bwlimit"] = parse_rate(given["bwlimit"])
    s3 = S3Options(endpoint_url=endpoint_url or settings.s3_endpoint(), **given) if endpoint_url or given else None
    target = open_target(archive, s3)
    first = archive.split("/", 1)[0]
    if ("://" not in archive and not archive.startswith(("/", ".", "~")) and "/" in archive
            and not os.path.isdir(first)):
        click.echo(f"stream-backend: warning: {archive} is a local directory, {target.display}; "
                   f"for S3 write s3://{archive}", err=True)
    return target


def _emit(summary: dict) -> None:
    from ..k8s.termination import write_termination_message
    from ..transfer.progress import print_done

    metrics = _metrics.get()
    if metrics is not None:
        metrics.finished(summary)

    write_termination_message({"event": "done", **summary})  # a Kubernetes pod shows it; no-op elsewhere
    if summary.get("warning"):
        click.echo(redact(f"stream-backend: warning: {summary['warning']}"), err=True)

    if sys.stdout.isatty():
        click.echo(redact(_summary_text(summary)))
    else:
        print_done(summary)


def _lock_words(lock: dict | None) -> str:
    if not lock:
        return ""
    words = [f"locked {lock['mode']} until {lock['until']}"] if lock.get("mode") else []
    return ", " + ", ".join(words + (["legal hold"] if lock.get("legal_hold") else []))


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _summary_text(summary: dict) -> str:
    """The result for a person: words, not key=value pairs, for the verdict."""
    if summary.get("op") == "verify":
        text = (f"archive {summary['archive']}: {_plural(summary['runs'], 'run')}, "
                f"{_plural(summary['objects'], 'object')}, {_plural(summary['events'], 'event')}, "
                f"{human_size(summary['bytes'])} checked")
        if "compared_events" in summary:
            text += f"; {_plural(summary['compared_events'], 'event')} compared with the stream"
        return ("OK: " if summary.get("ok") else "NOT OK: ") + text
    total, attempt = summary.get("run_total") or {}, summary.get("this_attempt") or {}
    if summary.get("op") == "export" and total:
        state = "complete" if summary.get("complete") else f"waiting for segments {summary.get('waiting_for')}"
        text = (f"export: run {summary.get('run')} {state}: {_plural(total['events'], 'event')} "
                f"({human_size(total['bytes'])}) of {_plural(total['segments'], 'segment')} in {summary['archive']}")
        return text + (f"; this attempt: {_plural(attempt['objects'], 'object')} written, "
                       f"{human_size(attempt['uploaded_bytes'])} sent in {attempt['elapsed_s']:.1f} s")
    if summary.get("op") == "import" and total:
        return (f"import: {summary['destination']} holds {_plural(total['events'], 'event')} "
                f"({human_size(total['bytes'])}) of {_plural(summary.get('runs', 0), 'run')} of "
                f"{summary['archive']}; this attempt: "
                f"{_plural(attempt['events'], 'event')} appended, {summary.get('skipped', 0)} already there, "
                f"in {attempt['elapsed_s']:.1f} s")
    keys = ("op", "run", "complete", "events", "skipped", "bytes", "objects", "runs", "manifest_checksum", "note")
    words = {True: "yes", False: "no"}
    return "  ".join(f"{k}={words.get(summary[k], summary[k]) if isinstance(summary[k], bool) else summary[k]}"
                     for k in keys if k in summary and summary[k] is not None)


def _paused(exc: Paused) -> None:
    from ..transfer.signals import resume_command

    from ..k8s.termination import write_termination_message

    resume = resume_command()
    write_termination_message({"event": "paused", "exit_code": exc.exit_code, "error": str(exc), "resume": resume})
    click.echo(redact(f"stream-backend: {exc}; resume with: {resume}"), err=True)
    sys.exit(exc.exit_code)


def _pausable(f):
    """Install the SIGTERM/SIGINT handler before anything slow (imports, S3 and store
    set-up): a pod deleted in its first second then pauses with exit 75 like later on,
    instead of dying with 143, which a Job would count as a failure."""

    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        from ..transfer.signals import PauseRequest

        with PauseRequest() as pause:
            try:
                result = f(*args, pause=pause, **kwargs)
            except Paused as exc:
                _paused(exc)
        if settings.termination_log() and threading.current_thread() is threading.main_thread():
            # in a pod (or serve's worker) the work is done and reported: a SIGTERM in the
            # last moments of the interpreter would turn exit 0 into 143, a failed pod
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        return result

    return wrapper


def _check_not_paused(pause) -> None:
    if pause:
        raise Paused("stopped by a signal before the transfer started; nothing was written")


def _progress_option(f):
    return click.option(
        "--progress", type=click.Choice(["auto", "bar", "json", "none"]), default="auto", show_default=True,
        help="Progress: a bar on a terminal, JSON lines on stderr otherwise (auto).",
    )(f)


def _s3_write_options(f):
    """How export's objects are stored in S3: encryption at rest, storage class, Object Lock."""
    f = click.option("--legal-hold", is_flag=True, default=None,
                     help="Object Lock legal hold on the same objects: no deletion until someone with "
                          "s3:PutObjectLegalHold lifts it.")(f)
    f = click.option("--object-lock-retain-days", type=click.IntRange(1, MAX_LOCK_DAYS), default=None, metavar="DAYS",
                     help="With --object-lock-mode: how long each restore point stays locked; every export "
                          "renews earlier runs' locks once half of it is left.")(f)
    f = click.option("--object-lock-mode", type=click.Choice(LOCK_MODES), default=None,
                     help="Object Lock on every object a restore needs (the bucket must have Object Lock "
                          "enabled): GOVERNANCE, or COMPLIANCE (no one can delete them early, not even root).")(f)
    f = click.option("--storage-class", default=None, metavar="CLASS",
                     help="S3 storage class of the data objects (the small documents a run reads back "
                          f"stay STANDARD): {', '.join(STORAGE_CLASSES)}.")(f)
    f = click.option("--sse-kms-key-id", default=None, metavar="KEY",
                     help="With --sse aws:kms: the KMS key (id, ARN or alias) [default: the account's aws/s3 key].")(f)
    return click.option("--sse", default=None, type=click.Choice(SSE_MODES),
                        help="Server-side encryption of every object: AES256 (SSE-S3) or aws:kms (SSE-KMS) "
                             "[default: the bucket's].")(f)


def _endpoint_option(f):
    """Where the S3 archive is, and the customer key (SSE-C) that reads and writes it."""
    f = click.option(
        "--sse-c-key-file", default=None, metavar="FILE",
        help="SSE-C: the 32-byte key (raw or base64) S3 encrypts the objects with and needs to read them; "
             "give it to every command on the archive.",
    )(f)
    return click.option(
        "--endpoint-url", default=None,
        help="S3 endpoint (MinIO, SeaweedFS, Ceph...) [env AWS_ENDPOINT_URL].",
    )(f)


@main.command("export")
@click.argument("source")
@click.argument("archive")
@click.option("--object-size", default=human_size(settings.DEFAULT_OBJECT_SIZE), show_default=True,
              help="Target size of each data object.")
@click.option("--part-size", default=human_size(settings.DEFAULT_PART_SIZE), show_default=True,
              help="Upload part size (S3: at least 5MiB).")
@click.option("--parallel", default=settings.DEFAULT_PARALLEL, show_default=True, type=int, help="Parts uploaded at once.")
@click.option("--compression", type=click.Choice(["none", "zstd"]), default="none", show_default=True,
              help="zstd: archives of text-like streams (logs, JSON) at about 0.2x the size and 0.7x the "
                   "speed; random or already compressed payloads gain nothing (docs/transfer.md).")
@click.option("--to-seq", type=int, default=None, help="Export events with seq below N only.")
@click.option("--segments", "segments_", default=None, help="Only these segments, e.g. 0,2,5.")
@click.option("--shard", default=None, help="I/N: the segments s with s % N == I.")
@click.option("--shards", type=int, default=None, help="N, with JOB_COMPLETION_INDEX as I [env STREAM_BACKEND_SHARDS].")
@click.option("--reader-group", default=None, metavar="NAME",
              help="Pravega: also record where this reader group of the source's scope next reads (needs Java; docs/pravega.md).")
@click.option("--file-view", is_flag=True,
              help="Also write each segment's file view (its payloads, what cat prints) as plain objects, "
                   "for downloads without our format (serve's download plans, docs/http-api.md).")
@_s3_write_options
@_bwlimit_option
@_endpoint_option
@_progress_option
@store_options
@_metered
@_pausable
def export_cmd(source, archive, object_size, part_size, parallel, compression, to_seq, segments_, shard, shards,
               reader_group, file_view, sse, sse_kms_key_id, storage_class, object_lock_mode, object_lock_retain_days,
               legal_hold, bwlimit, endpoint_url, sse_c_key_file, progress, root, controller, timeout, pause):
    """Export SOURCE (stream://SCOPE/STREAM) into ARCHIVE (s3://bucket/prefix, file:///dir, ./dir).

    Run again to export only what was appended since (a new run chained to the last);
    after a pause or a crash, the same command resumes.

    \b
    Example:
      stream-backend export stream://demo/orders s3://backups/orders --endpoint-url http://127.0.0.1:8333
      stream-backend export pravega://demo/orders file:///mnt/backup/orders --shard 0/4
      stream-backend export pravega://demo/orders s3://backups/orders --reader-group billing
      stream-backend export stream://demo/orders s3://backups/orders --sse aws:kms --storage-class STANDARD_IA
      stream-backend export stream://demo/orders s3://locked/orders --object-lock-mode COMPLIANCE --object-lock-retain-days 35
    """
    from ..transfer.export import ExportOptions, export_stream, select_segments

    url = parse_stream_url(source, need="stream")
    if url.segment is not None:
        raise UsageError("export takes a whole stream (stream://SCOPE/STREAM); use --segments to pick segments")
    opts = ExportOptions(
        object_size=_size(object_size, "--object-size"), part_size=_size(part_size, "--part-size"),
        parallel=parallel, compression=compression, to_seq=to_seq,
        checkpoint_interval=settings.seconds("checkpoint_interval"), reader_group=_group(reader_group, url),
    )
    if to_seq is not None and to_seq < 0:
        raise UsageError("--to-seq must be >= 0")
    sel, sh = _segments(segments_), _shard(shard, shards)
    target = _archive_target(archive, endpoint_url, sse_c_key_file, sse=sse, sse_kms_key_id=sse_kms_key_id,
                             storage_class=storage_class, object_lock_mode=object_lock_mode,
                             object_lock_retain_days=object_lock_retain_days, legal_hold=legal_hold or None,
                             bwlimit=bwlimit)
    store = open_store_for(url, root=root, controller=controller, timeout=timeout)
    try:
        info = store.stream_info(url.scope, url.stream)
        opts.segments = select_segments(info.numbers, sel, sh)
        _check_not_paused(pause)
        with _progress("export", progress) as prog:
            try:
                summary = export_stream(store, url.scope, url.stream, target, opts, pause, prog)
            except Paused as exc:
                prog.stop()
                _paused(exc)
    finally:
        store.close()
    if file_view and summary.get("complete"):
        from ..transfer.views import write_views

        summary["file_view_runs"] = write_views(target, opts.object_size, opts.part_size, opts.parallel)
    _emit(summary)


def _group(name: str | None, url) -> str | None:
    """--reader-group: a Pravega reader group's name, on a Pravega stream only."""
    if name is None:
        return None
    if url.protocol != "pravega":
        raise UsageError(f"--reader-group is for Pravega streams, not {url.protocol}://")
    from ..archive.layout import reader_group_key

    try:
        reader_group_key(0, name)
    except ValueError as e:
        raise UsageError(str(e)) from None
    from ..stores.pravega.groups import check_ready

    check_ready()  # before any work: not after a whole import
    return name


@main.command("import")
@click.argument("archive")
@click.argument("dest")
@click.option("--to-seq", type=int, default=None, help="Restore events with seq below N only.")
@click.option("--to-time", default=None, help="Restore events appended at or before T (ISO 8601 or epoch seconds).")
@click.option("--segments", "segments_", default=None, help="Only these segments, e.g. 0,2,5.")
@click.option("--shard", default=None, help="I/N: the segments s with s % N == I.")
@click.option("--shards", type=int, default=None, help="N, with JOB_COMPLETION_INDEX as I [env STREAM_BACKEND_SHARDS].")
@click.option("--part-size", default=human_size(settings.DEFAULT_PART_SIZE), show_default=True,
              help="Bytes fetched per ranged read.")
@click.option("--reader-group", default=None, metavar="NAME",
              help="Pravega: create this reader group in DEST's scope where the archive recorded it (export --reader-group), so its readers go on where they were (needs Java).")
@_bwlimit_option
@_endpoint_option
@_progress_option
@store_options
@_metered
@_pausable
def import_cmd(archive, dest, to_seq, to_time, segments_, shard, shards, part_size, reader_group, bwlimit,
               endpoint_url, sse_c_key_file, progress, root, controller, timeout, pause):
    """Replay ARCHIVE into DEST (stream://SCOPE/STREAM; created if absent).

    DEST must be new, empty, or this archive's own partial import; the same command
    resumes after a pause or crash.

    \b
    Example:
      stream-backend import s3://backups/orders stream://demo/orders-restored --to-time 2026-11-30T12:00:00Z
      stream-backend import file:///mnt/backup/orders pravega://demo/orders-restored
      stream-backend import s3://backups/orders pravega://demo/orders-restored --reader-group billing
    """
    from ..transfer.export import select_segments
    from ..transfer.import_ import ImportOptions, import_archive
    from ..transfer.reader import load_chain

    url = parse_stream_url(dest, need="stream")
    if url.segment is not None:
        raise UsageError("import takes a whole stream (stream://SCOPE/STREAM) as destination")
    if to_seq is not None and to_seq < 0:
        raise UsageError("--to-seq must be >= 0")
    target = _archive_target(archive, endpoint_url, sse_c_key_file, bwlimit=bwlimit)
    sel, sh = _segments(segments_), _shard(shard, shards)
    opts = ImportOptions(to_seq=to_seq, to_time_ns=_to_time_ns(to_time), part_size=_size(part_size, "--part-size"),
                         reader_group=_group(reader_group, url))
    store = open_store_for(url, root=root, controller=controller, timeout=timeout)
    try:
        if sel is not None or sh is not None:
            opts.segments = select_segments(load_chain(target).numbers, sel, sh)
        _check_not_paused(pause)
        with _progress("import", progress) as prog:
            try:
                summary = import_archive(target, store, url.scope, url.stream, opts, pause, prog)
            except Paused as exc:
                prog.stop()
                _paused(exc)
    finally:
        store.close()
    _emit(summary)


def _event_time(ns: int | None) -> str:
    """An event's append time (ns), as every time is shown."""
    return iso_time(ns / 1e9) if ns else "-"


@main.command("archives")
@click.argument("prefix")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--max-depth", type=click.IntRange(0, 32), default=6, show_default=True,
              help="How many directory levels below PREFIX to look for archives.")
@_endpoint_option
def archives_cmd(prefix, as_json, max_depth, endpoint_url, sse_c_key_file):
    """Every archive under PREFIX (s3://bucket[/prefix], a directory): its stream, runs,
    events, size, the time range of its events and when its last run was written.

    \b
    Example:
      stream-backend archives s3://backups
      stream-backend archives file:///mnt/backup --json
    """
    from ..transfer.catalog import archive_summary, find_archives

    root = _archive_target(prefix, endpoint_url, sse_c_key_file)
    root.check_access()
    found = [archive_summary(root.child(key) if key else root) for key in find_archives(root, max_depth)]
    failed = next((a for a in found if "error" in a), None)
    if as_json:
        click.echo(json.dumps({"prefix": root.display, "archives": found}, sort_keys=True))
    elif not found:
        click.echo(f"no archives under {root.display} (looked {max_depth} levels down)")
    else:
        rows = [("ARCHIVE", "STREAM", "RUNS", "EVENTS", "SIZE", "EVENTS APPENDED", "LAST RUN WRITTEN")]
        for a in found:
            if "error" in a:
                rows.append((a["archive"], f"error: {a['error']}", "", "", "", "", ""))
                continue
            state = " (export in progress)" if a["in_progress"] else ""
            rows.append((a["archive"], a["stream"], str(a["runs"]), str(a["events"]), human_size(a["bytes"]),
                         f"{_event_time(a['first_time'])} .. {_event_time(a['last_time'])}",
                         f"{a['last_written'] or '-'}{_lock_words(a.get('lock'))}{state}"))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        for r in rows:
            click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    if failed:
        click.echo(redact(f"stream-backend: {failed['archive']}: {failed['error']}"), err=True)
        sys.exit(failed["exit_code"])


@main.command("status")
@click.argument("archive")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@_endpoint_option
def status_cmd(archive, as_json, endpoint_url, sse_c_key_file):
    """Runs in ARCHIVE and any export in progress or paused.

    \b
    Example:
      stream-backend status s3://backups/orders
      stream-backend status file:///mnt/backup/orders --json
    """
    from ..transfer.verify import archive_status

    st = archive_status(_archive_target(archive, endpoint_url, sse_c_key_file))
    if as_json:
        click.echo(json.dumps(st, sort_keys=True))
        return
    when = _event_time
    src = st["source"]
    click.echo(f"archive {st['archive']}: {src.get('store')}://{src.get('scope')}/{src.get('stream')}, "
               f"{_plural(src.get('segments') or 0, 'segment')}, {_plural(len(st['runs']), 'run')}, "
               f"{_plural(st['events'], 'event')}, {human_size(st['bytes'])}")
    for r in st["runs"]:
        ranges = " ".join(f"{s}:[{a},{b})" for s, (a, b) in sorted(r["ranges"].items(), key=lambda kv: int(kv[0])))
        click.echo(f"  run {r['run']} (written {r.get('written') or '-'}{_lock_words(r.get('lock'))}): "
                   f"{_plural(r['events'], 'event')}, "
                   f"{human_size(r['bytes'])}, "
                   f"{_plural(r['objects'], 'object')}, events appended {when(r['first_time'])} .. "
                   f"{when(r['last_time'])}, segments {ranges}")
    if st["runs"] and st["runs"][-1].get("shape"):
        last = st["runs"][-1]
        click.echo(f"  shape at run {last['run']} (a Pravega stream's segment graph):")
        for seg, sh in sorted(last["shape"].items(), key=lambda kv: int(kv[0])):
            click.echo("    " + shape_line(int(seg), sh))
        cfg = last.get("stream_config")
        if cfg:
            click.echo("  " + config_line(cfg))
    ip = st["in_progress"]
    for r in ip["runs"]:
        click.echo(f"  run {r}: in progress")
    for cp in ip["checkpoints"]:
        click.echo(f"  checkpoint segment {cp.get('segment')} (run {cp.get('run')}): {cp.get('done_events')}/"
                   f"{cp.get('total_events')} events, {cp.get('done_bytes')}/{cp.get('total_bytes')} bytes "
                   f"({cp.get('percent')}%)")
    for lease in ip["leases"]:
        click.echo(f"  lease segment {lease.get('segment')}: held by {lease.get('holder')}, "
                   f"expires in {lease.get('expires_in_s')}s")


@main.command("verify")
@click.argument("archive")
@click.option("--against", default=None, help="Also compare event for event with this stream.")
@_bwlimit_option
@_endpoint_option
@store_options
def verify_cmd(archive, against, bwlimit, endpoint_url, sse_c_key_file, root, controller, timeout):
    """Check every manifest, object and record of ARCHIVE (exit 65 naming the first damage).

    \b
    Example:
      stream-backend verify s3://backups/orders
      stream-backend verify s3://backups/orders --against stream://demo/orders
    """
    from ..transfer.verify import mismatch, verify_archive

    target = _archive_target(archive, endpoint_url, sse_c_key_file, bwlimit=bwlimit)
    problem = None
    if against:
        url = parse_stream_url(against, need="stream")
        store = open_store_for(url, root=root, controller=controller, timeout=timeout)
        try:
            result = verify_archive(target, (store, url.scope, url.stream))
        finally:
            store.close()
        problem = mismatch(result, target.display, f"{url.protocol}://{url.scope}/{url.stream}")
    else:
        result = verify_archive(target)
    _emit(dict(result, ok=problem is None))
    if problem is not None:
        raise problem
