"""Basic stream commands: ls, info, create, rm, seal, write, cat, events.

Thin: parse the URL, open the store, call the StreamStore protocol, print. Data is
moved one event (write) or one 1 MiB range (cat) at a time, so memory stays bounded
whatever the stream's or file's length.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import shlex
import sys

import click

from ..errors import NotFoundError, PermissionDeniedError, UnsupportedError, UsageError
from ..stores.base import StreamInfo
from ..units import human_size, parse_size
from ..urls import parse_stream_url
from . import main
from .common import config_line, open_store_for, shape_line, store_options

CAT_CHUNK = 1 << 20  # bytes per read_range call in `cat`
WRITE_FLUSH_EVERY = (
    8 << 20
)  # bytes between writer.flush() calls in `write`: bounds what a store may queue


def iso_time(t: float | None) -> str | None:
    if t is None:
        return None
    return (
        _dt.datetime.fromtimestamp(t, tz=_dt.timezone.utc)
        .isoformat(timespec="seconds")
        .replace("+00:00", "Z")
    )


def _binary(stream):
    """The byte stream under a text stream (sys.stdin/stdout, also under CliRunner)."""
    return getattr(stream, "buffer", stream)


@contextlib.contextmanager
def opened_store(url, root, controller, timeout):
    """The store a URL lives in, closed afterwards; an unusable root is a clear error."""
    try:
        store = open_store_for(url, root=root, controller=controller, timeout=timeout)
    except PermissionError as exc:  # a store that did not translate it itself
        raise PermissionDeniedError(
            f"store root not usable: {exc.filename or root}: {exc.strerror}"
        ) from exc
    try:
        yield store
    finally:
        store.close()


def _segment_of(info, url, segment: int | None):
    """The SegmentInfo a command addresses: the URL's /SEGMENT, --segment, or the only one."""
    if url.segment is not None and segment is not None and url.segment != segment:
        raise UsageError(f"segment given twice and they differ: {url} and --segment {segment}")
    number = url.segment if url.segment is not None else segment
    if number is None:
        if info.segment_count != 1:
            raise UsageError(
                f"{url} has {info.segment_count} segments: choose one with --segment N "
                f"(segments: {', '.join(str(s.segment) for s in info.segments)})"
            )
        return info.segments[0]
    for seg in info.segments:
        if seg.segment == number:
            return seg
    raise NotFoundError(
        f"{url.protocol}://{info.scope}/{info.stream} has no segment {number} "
        f"(segments: {', '.join(str(s.segment) for s in info.segments)})"
    )


def _segment_dict(seg) -> dict:
    return {
        "segment": seg.segment,
        "head_seq": seg.head_seq,
        "tail_seq": seg.tail_seq,
        "events": seg.events,
        "length": seg.length,
        "last_append": seg.last_append,
        **({"key_range": list(seg.key_range), "epoch": seg.epoch, "predecessors": list(seg.predecessors),
            "successors": list(seg.successors), "sealed": seg.sealed} if seg.key_range is not None else {}),
    }


def _stream_dict(url_protocol: str, info) -> dict:
    return {
        "url": f"{url_protocol}://{info.scope}/{info.stream}",
        "scope": info.scope,
        "stream": info.stream,
        "segment_count": info.segment_count,
        "events": info.events,
        "length": info.length,
        "sealed": info.sealed,
        "max_event_size": info.max_event_size,
        "created": info.created,
        "last_append": info.last_append,
        "segments": [_segment_dict(s) for s in info.segments],
        **({"config": info.config} if info.config is not None else {}),
    }


def _scope_streams(store, scope):
    infos = []
    for name in store.list_streams(scope):
        try:
            infos.append(store.stream_info(scope, name))
        except NotFoundError:  # deleted while listing
            continue
        except UnsupportedError as exc:  # a shape the store cannot count (a scaled Pravega stream)
            click.echo(f"stream-backend: warning: {scope}/{name}: {exc}", err=True)
            infos.append(StreamInfo(scope=scope, stream=name))
    return infos


# --------------------------------------------------------------------------- ls


@main.command("ls")
@click.argument("url", required=False, default="stream://")
@click.option(
    "-l",
    "--long",
    "long_",
    is_flag=True,
    help="One line per entry with segments, events, bytes, last append.",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of entries.")
@store_options
def ls_cmd(url, long_, as_json, root, controller, timeout):
    """List scopes (URL names a store), streams (URL names a scope) or a stream's segments.

    \b
    Example:
      stream-backend ls                    # scopes of the local store
      stream-backend ls -l stream://demo   # streams of scope demo, with sizes
      stream-backend ls pravega://demo --controller tcp://127.0.0.1:9090
    """
    u = parse_stream_url(url, need="store")
    entries = []
    with opened_store(u, root, controller, timeout) as store:
        if u.scope is None:
            for scope in sorted(store.list_scopes()):
                infos = _scope_streams(store, scope)
                times = [i.last_append for i in infos if i.last_append is not None]
                entries.append(
                    {
                        "name": scope,
                        "url": f"{u.protocol}://{scope}",
                        "type": "scope",
                        "streams": len(infos),
                        "events": sum(i.events for i in infos),
                        "length": sum(i.length for i in infos),
                        "last_append": max(times) if times else None,
                    }
                )
        elif u.stream is None:
            for info in sorted(_scope_streams(store, u.scope), key=lambda i: i.stream):
                d = _stream_dict(u.protocol, info)
                entries.append(
                    {
                        "name": info.stream,
                        "url": d["url"],
                        "type": "stream",
                        "segments": info.segment_count,
                        "events": info.events,
                        "length": info.length,
                        "sealed": info.sealed,
                        "last_append": info.last_append,
                    }
                )
        else:
            info = store.stream_info(u.scope, u.stream)
            segs = info.segments if u.segment is None else [_segment_of(info, u, None)]
            for seg in segs:
                entries.append(
                    {
                        "name": str(seg.segment),
                        "url": f"{u.protocol}://{u.scope}/{u.stream}/{seg.segment}",
                        "type": "segment",
                        "events": seg.events,
                        "length": seg.length,
                        "head_seq": seg.head_seq,
                        "tail_seq": seg.tail_seq,
                        "last_append": seg.last_append,
                    }
                )
    if as_json:
        click.echo(json.dumps(entries, indent=2))
        return
    if not entries and u.scope is None:  # stderr: a pipe still gets an empty listing
        where = f"the local store at {store.root}" if u.protocol == "stream" else f"the Pravega cluster at {store.uri}"
        click.echo(f"no scopes in {where}", err=True)
    for e in entries:
        if not long_:
            click.echo(e["name"])
            continue
        count = (
            f"{e['streams']} streams"
            if e["type"] == "scope"
            else (
                f"{e['segments']} seg"
                if e["type"] == "stream"
                else f"seq {e['head_seq']}..{e['tail_seq']}"
            )
        )
        click.echo(
            f"{e['type']:<7} {count:>16} {e['events']:>10} ev {e['length']:>14} B  "
            f"{iso_time(e['last_append']) or '-':<20}  {e['name']}"
        )


# --------------------------------------------------------------------------- info


@main.command("info")
@click.argument("url")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON instead of text.")
@store_options
def info_cmd(url, as_json, root, controller, timeout):
    """Show a stream's segments, events, bytes, seq ranges and times (or a scope's totals).

    \b
    Example:
      stream-backend info stream://demo/logs
      stream-backend info --json stream://demo/logs | jq .length
    """
    u = parse_stream_url(url, need="scope")
    with opened_store(u, root, controller, timeout) as store:
        if u.stream is None:
            infos = _scope_streams(store, u.scope)
            d = {
                "url": f"{u.protocol}://{u.scope}",
                "scope": u.scope,
                "streams": len(infos),
                "events": sum(i.events for i in infos),
                "length": sum(i.length for i in infos),
                "stream_names": sorted(i.stream for i in infos),
            }
            if as_json:
                click.echo(json.dumps(d, indent=2))
                return
            click.echo(d["url"])
            click.echo(f"  streams:        {d['streams']}")
            click.echo(f"  events:         {d['events']}")
            click.echo(f"  bytes:          {human_size(d['length'])} ({d['length']})")
            return
        info = store.stream_info(u.scope, u.stream)
        if u.segment is not None:
            _segment_of(info, u, None)  # a clear error for an unknown segment
        d = _stream_dict(u.protocol, info)
        if u.segment is not None:
            d["segments"] = [s for s in d["segments"] if s["segment"] == u.segment]
        from ..transfer.import_ import import_state

        state = import_state(store, u.scope, u.stream)
        if state is not None:
            d["import"] = state
        try:
            store.check_whole(u.scope, u.stream)
        except UnsupportedError as exc:  # the counts above miss events: say so, loudly
            d["incomplete_view"] = str(exc)
    if as_json:
        click.echo(json.dumps(d, indent=2))
        return
    click.echo(d["url"])
    click.echo(f"  segments:       {d['segment_count']}")
    click.echo(f"  events:         {d['events']}")
    click.echo(f"  bytes:          {human_size(d['length'])} ({d['length']})")
    click.echo(f"  sealed:         {'yes' if d['sealed'] else 'no'}")
    click.echo(f"  max event size: {human_size(d['max_event_size'])}")
    click.echo(f"  created:        {iso_time(d['created']) or '-'}")
    click.echo(f"  last append:    {iso_time(d['last_append']) or '-'}")
    if d.get("incomplete_view"):
        click.echo(f"  WARNING:        these counts miss events: {d['incomplete_view']}")
    imp = d.get("import")
    if imp is not None:
        src = imp.get("source") or {}
        what = f"run {imp['run']} of an archive of {src.get('store')}://{src.get('scope')}/{src.get('stream')}"
        if imp["complete"]:
            point = imp.get("restore_point") or {}
            upto = []
            if point.get("to_seq") is not None:
                upto.append(f"seq {point['to_seq']}")
            if point.get("to_time_ns") is not None:
                upto.append(iso_time(point["to_time_ns"] / 1e9))
            click.echo(f"  import:         complete: {what}" + (f", restored up to {' and '.join(upto)}" if upto else ""))
        elif imp.get("damaged"):
            click.echo(f"  import:         INCOMPLETE: {what}; segments finished {imp['segments_done'] or 'none'}; "
                       f"stopped because the archive is damaged ({imp['damaged']}): repair or replace the archive, "
                       "then run the same import again")
        else:
            click.echo(f"  import:         INCOMPLETE: {what}; segments finished {imp['segments_done'] or 'none'} "
                       "(run the same import again to finish it)")
    if d.get("config"):
        click.echo(f"  {config_line(d['config'])}")
    for s in d["segments"]:
        click.echo(
            f"  segment {s['segment']}: seq [{s['head_seq']}, {s['tail_seq']}), "
            f"{s['events']} events, "
            f"{human_size(s['length'])}, last append {iso_time(s['last_append']) or '-'}"
        )
        if "key_range" in s:
            click.echo("    " + shape_line(s["segment"], s).split(": ", 1)[1])


# --------------------------------------------------------------------------- create / rm / seal


@main.command("create")
@click.argument("url")
@click.option(
    "--segments",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Number of segments (fixed for the stream's life).",
)
@click.option(
    "--max-event-size",
    default=None,
    help="Largest event the stream accepts (local store only; default 8MiB, like Pravega, "
    "whose limit is the server's).",
)
@store_options
def create_cmd(url, segments, max_event_size, root, controller, timeout):
    """Create a stream (and its scope), or just a scope when URL names only a scope.

    \b
    Example:
      stream-backend create stream://demo/logs
      stream-backend create --segments 4 stream://demo/metrics
      stream-backend create --max-event-size 32MiB stream://demo/blobs
      stream-backend create stream://demo          # scope only
    """
    u = parse_stream_url(url, need="scope")
    if u.segment is not None:
        raise UsageError(f"create takes SCOPE or SCOPE/STREAM, not a segment: {url}")
    if max_event_size is not None:
        if u.protocol != "stream" or u.stream is None:
            raise UsageError("--max-event-size applies to a new stream of the local store (stream://SCOPE/STREAM)")
        from ..stores import open_store

        size = parse_size(max_event_size)
        store = open_store("stream", root=root, max_event_size=size)  # UsageError if out of range
        try:
            store.create_stream(u.scope, u.stream, segments=segments)
        finally:
            store.close()
        click.echo(f"created {u} ({segments} segment{'s' if segments != 1 else ''}, "
                   f"max event size {human_size(size)})", err=True)
        return
    with opened_store(u, root, controller, timeout) as store:
        if u.stream is None:
            store.create_scope(u.scope)
            click.echo(f"created scope {u}", err=True)
        else:
            store.create_stream(u.scope, u.stream, segments=segments)
            click.echo(f"created {u} ({segments} segment{'s' if segments != 1 else ''})", err=True)


@main.command("rm")
@click.argument("url")
@click.option("-r", "--recursive", is_flag=True, help="Also delete every stream of a scope.")
@store_options
def rm_cmd(url, recursive, root, controller, timeout):
    """Delete a stream, or a scope (empty, or with --recursive all of its streams).

    \b
    Example:
      stream-backend rm stream://demo/logs
      stream-backend rm --recursive stream://demo
    """
    u = parse_stream_url(url, need="scope")
    if u.segment is not None:
        raise UsageError(f"a single segment cannot be deleted; rm the stream: {url}")
    with opened_store(u, root, controller, timeout) as store:
        if u.stream is not None:
            store.delete_stream(u.scope, u.stream)
            click.echo(f"deleted {u}", err=True)
            return
        if recursive:
            for name in store.list_streams(u.scope):
                with contextlib.suppress(NotFoundError):
                    store.delete_stream(u.scope, name)
        store.delete_scope(u.scope)
        click.echo(f"deleted scope {u}", err=True)


@main.command("seal")
@click.argument("url")
@store_options
def seal_cmd(url, root, controller, timeout):
    """Seal a stream: no more appends; readers see it as complete.

    \b
    Example:
      stream-backend seal stream://demo/logs
    """
    u = parse_stream_url(url, need="stream")
    if u.segment is not None:
        raise UsageError(f"seal applies to a whole stream, not a segment: {url}")
    with opened_store(u, root, controller, timeout) as store:
        store.seal_stream(u.scope, u.stream)
        click.echo(f"sealed {u}", err=True)


# --------------------------------------------------------------------------- write


def _read_full(f, n: int) -> bytes:
    """Read exactly ``n`` bytes unless EOF comes first (pipes return short reads)."""
    parts, got = [], 0
    while got < n:
        chunk = f.read(n - got)
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


@contextlib.contextmanager
def _open_input(path: str):
    if path == "-":
        if sys.stdin.isatty():
            raise UsageError("write reads stdin, which is a terminal: give FILE or pipe data in")
        yield _binary(sys.stdin)
        return
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise NotFoundError(f"no such file: {path}") from None
    except IsADirectoryError:
        raise UsageError(f"{path} is a directory, not a file") from None
    except PermissionError:
        raise PermissionDeniedError(f"cannot read {path}: permission denied") from None
    with f:
        yield f


def _already_written(store, u, segment: int, f, size: int, fsize: int) -> int:
    """How many leading bytes of the file FILE the segment already ends with: the part an
    interrupted ``write`` of the same file (same --event-size) got acknowledged. The
    largest k (a multiple of the event size, or the whole file) whose bytes end the
    segment; the last event is compared first, so a wrong k costs one event's read."""
    length = store.offset_index(u.scope, u.stream, segment).length
    top = min(fsize, length)
    candidates = ([fsize] if fsize <= length else []) + list(range(top - top % size, 0, -size))
    for k in candidates:
        last = k - ((k - 1) // size) * size  # bytes of the k-prefix's last event
        f.seek(k - last)
        if store.read_range(u.scope, u.stream, segment, length - last, last) != f.read(last):
            continue
        pos, same = 0, True
        while pos < k and same:
            n = min(8 << 20, k - pos)
            f.seek(pos)
            same = store.read_range(u.scope, u.stream, segment, length - k + pos, n) == f.read(n)
            pos += n
        if same:
            return k
    return 0


@main.command("write")
@click.argument("url")
@click.argument("file", required=False, default="-")
@click.option(
    "--event-size",
    default=None,
    metavar="BYTES",
    help="Bytes per event (suffixes KiB, MiB ok) [default: the store's max event size].",
)
@click.option(
    "--routing-key", default=None, help="Routing key for every event (picks the segment)."
)
@click.option(
    "--create", is_flag=True, help="Create the stream (one segment) if it does not exist."
)
@click.option(
    "--resume", is_flag=True,
    help="Continue an interrupted write of the same FILE and --event-size: skip the part the "
         "stream already ends with, append the rest (nothing twice).",
)
@click.option(
    "--progress", type=click.Choice(["auto", "bar", "json", "none"]), default="auto", show_default=True,
    help="Progress: a bar on a terminal (auto), JSON lines on stderr, or none.",
)
@store_options
def write_cmd(url, file, event_size, routing_key, create, resume, progress, root, controller, timeout):
    """Append FILE (or stdin, '-') to a stream, cut into events of --event-size bytes.

    Every event is exactly --event-size bytes except the last, so the same bytes
    always make the same events. URL may name a segment (stream://S/T/N) to append
    there; otherwise --routing-key (or the store) chooses. Returns once every event
    is acknowledged (durable). Interrupted (Ctrl-C), it says how much was kept;
    run it again with --resume to append only the rest.

    \b
    Example:
      stream-backend write stream://demo/logs ./app.log
      stream-backend write --resume stream://demo/logs ./app.log   # after an interruption
      tar c /etc | stream-backend write --event-size 1MiB --create stream://demo/etc -
    """
    from ..transfer.progress import Progress
    from ..transfer.signals import PauseRequest

    u = parse_stream_url(url, need="stream")
    if progress == "auto" and not sys.stderr.isatty():
        progress = "none"  # a pipe's write stays quiet unless asked
    with opened_store(u, root, controller, timeout) as store:
        if create and u.segment is None:
            store.create_stream(u.scope, u.stream, exist_ok=True)
        info = store.stream_info(u.scope, u.stream)
        segment = _segment_of(info, u, None).segment if u.segment is not None else None
        max_size = info.max_event_size
        size = parse_size(event_size) if event_size is not None else max_size
        if not 0 < size <= max_size:
            raise UsageError(
                f"--event-size {size} is outside 1..{max_size} (the store's max event size)"
            )
        events = total = since_flush = 0
        with _open_input(file) as f, store.writer(u.scope, u.stream) as writer:
            fsize = os.fstat(f.fileno()).st_size if file != "-" and os.path.isfile(file) else None
            skip = 0
            if resume:
                if fsize is None:
                    raise UsageError("--resume needs a regular FILE (it compares the stream's tail with it), not stdin")
                if segment is None and info.segment_count != 1:
                    raise UsageError("--resume needs one segment: name it in the URL (stream://S/T/N)")
                skip = _already_written(store, u, segment or 0, f, size, fsize)
                f.seek(skip)
                click.echo(f"resuming: the stream already ends with the first {skip} bytes of {file}", err=True)
            prog = Progress("write", progress)
            prog.add_total(0, (fsize - skip) if fsize is not None else 0)
            with PauseRequest() as stop, prog:
                stop.holding_state()  # Ctrl-C/SIGTERM: stop between two events, never inside one
                while not stop:
                    chunk = _read_full(f, size)
                    if not chunk:
                        break
                    writer.append(chunk, routing_key=routing_key, segment=segment)
                    events += 1
                    total += len(chunk)
                    since_flush += len(chunk)
                    if since_flush >= WRITE_FLUSH_EVERY:
                        writer.flush()
                        prog.add_done(0, since_flush)
                        since_flush = 0
                    if len(chunk) < size:
                        break
                writer.flush()  # what was appended is acknowledged, interrupted or not
                prog.add_done(0, since_flush)
            if stop:
                prog.stop()
                click.echo(
                    f"stream-backend: interrupted: {skip + total} bytes of {file} are in {u} "
                    f"({events} event{'' if events == 1 else 's'} appended now); "
                    + (f"continue with: stream-backend write --resume {u} {shlex.quote(file)}"
                       + (f" --event-size {size}" if event_size is not None else "")
                       if fsize is not None else "stdin cannot be resumed"),
                    err=True,
                )
                sys.exit(130)
    click.echo(f"wrote {total} bytes in {events} event{'' if events == 1 else 's'} to {u}", err=True)


# --------------------------------------------------------------------------- cat / events


@main.command("cat")
@click.argument("url")
@click.option(
    "--offset",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="First byte of the file view to print.",
)
@click.option(
    "--length",
    type=click.IntRange(min=0),
    default=None,
    help="Bytes to print [default: to the end].",
)
@click.option(
    "--segment",
    type=click.IntRange(min=0),
    default=None,
    help="Segment to print (needed when the stream has several).",
)
@store_options
def cat_cmd(url, offset, length, segment, root, controller, timeout):
    """Print a segment's file view (its events' payloads concatenated) to stdout.

    Reads go through the offset index, so --offset costs no scan.

    \b
    Example:
      stream-backend cat stream://demo/logs > app.log
      stream-backend cat --offset 1048576 --length 4096 stream://demo/logs | xxd | head
      stream-backend cat --segment 2 stream://demo/metrics
    """
    u = parse_stream_url(url, need="stream")
    out = _binary(sys.stdout)
    with opened_store(u, root, controller, timeout) as store:
        info = store.stream_info(u.scope, u.stream)
        seg = _segment_of(info, u, segment)
        end = seg.length if length is None else min(seg.length, offset + length)
        pos = offset
        while pos < end:
            data = store.read_range(u.scope, u.stream, seg.segment, pos, min(CAT_CHUNK, end - pos))
            if not data:
                break
            out.write(data)
            pos += len(data)
        out.flush()


@main.command("events")
@click.argument("url")
@click.option(
    "--segment",
    type=click.IntRange(min=0),
    default=None,
    help="Only this segment [default: every segment, in segment order].",
)
@click.option(
    "--from-seq",
    type=click.IntRange(min=0),
    default=None,
    help="Start at this sequence number [default: the segment's first].",
)
@store_options
def events_cmd(url, segment, from_seq, root, controller, timeout):
    """Print one JSON line per event: segment, seq, size, sha256, routing_key.

    Lets you compare event boundaries across stores, exports and restores without
    printing payloads.

    \b
    Example:
      stream-backend events stream://demo/logs | head
      diff <(stream-backend events stream://a/x | jq -c '[.size,.sha256]') \\
           <(stream-backend events pravega://a/x | jq -c '[.size,.sha256]')
    """
    u = parse_stream_url(url, need="stream")
    out = sys.stdout
    with opened_store(u, root, controller, timeout) as store:
        info = store.stream_info(u.scope, u.stream)
        if u.segment is not None or segment is not None:
            segs = [_segment_of(info, u, segment)]
        else:
            segs = list(info.segments)
        for seg in segs:
            start = seg.head_seq if from_seq is None else max(from_seq, seg.head_seq)
            for ev in store.read_events(
                u.scope, u.stream, seg.segment, from_seq=start, to_seq=seg.tail_seq
            ):
                out.write(
                    json.dumps(
                        {
                            "segment": ev.segment,
                            "seq": ev.seq,
                            "size": len(ev.payload),
                            "sha256": hashlib.sha256(ev.payload).hexdigest(),
                            "routing_key": ev.routing_key,
                        }
                    )
                    + "\n"
                )
        out.flush()
