"""Stream commands that move data: write, cat, events.

Data is moved one event (write) or one 1 MiB range (cat) at a time, so memory stays
bounded whatever the stream's or file's length.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shlex
import sys

import click

from ..errors import NotFoundError, PermissionDeniedError, UsageError
from ..units import parse_size
from ..urls import parse_stream_url
from . import main
from .common import binary, opened_store, segment_of, store_options

CAT_CHUNK = 1 << 20  # bytes per read_range call in `cat`
WRITE_FLUSH_EVERY = (
    8 << 20
)  # bytes between writer.flush() calls in `write`: bounds what a store may queue


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
        yield binary(sys.stdin)
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
        segment = segment_of(info, u, None).segment if u.segment is not None else None
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
    out = binary(sys.stdout)
    with opened_store(u, root, controller, timeout) as store:
        info = store.stream_info(u.scope, u.stream)
        seg = segment_of(info, u, segment)
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
            segs = [segment_of(info, u, segment)]
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
