"""Stream commands that name and describe streams: ls, info, create, rm, seal (the data
commands are data.py).

Thin: parse the URL, open the store, call the StreamStore protocol, print.
"""

from __future__ import annotations

import contextlib
import json
import sys

import click

from .. import settings
from ..errors import NotFoundError, UnsupportedError, UsageError
from ..stores.base import StreamInfo
from ..units import human_size, iso_time, parse_size
from ..urls import parse_stream_url
from . import main
from .common import config_line, opened_store, segment_of, shape_line, store_options



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
                d = info.to_dict(u.protocol)
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
            segs = info.segments if u.segment is None else [segment_of(info, u, None)]
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
            segment_of(info, u, None)  # a clear error for an unknown segment
        d = info.to_dict(u.protocol)
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
@click.option("-y", "--yes", is_flag=True, help="An archive: remove it without asking.")
@click.option("--endpoint-url", default=None, help="An archive in S3: the endpoint [env AWS_ENDPOINT_URL].")
@store_options
def rm_cmd(url, recursive, yes, endpoint_url, root, controller, timeout):
    """Delete a stream, a scope (empty, or with --recursive all of its streams), or a
    whole archive (s3://bucket/prefix, a directory), after asking.

    \b
    Example:
      stream-backend rm stream://demo/logs
      stream-backend rm --recursive stream://demo
      stream-backend rm s3://backups/old-logs --yes
    """
    if not url.startswith(("stream://", "pravega://")):
        return _rm_archive(url, yes, endpoint_url)
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


def _rm_archive(url: str, yes: bool, endpoint_url: str | None) -> None:
    """Every object of the archive, once it is sure to be one and free to go."""
    from ..transfer.removal import archive_keys, check_removable, remove_archive
    from ..transfer.targets import S3Options, open_target

    target = open_target(url, S3Options(endpoint_url=endpoint_url or settings.s3_endpoint()) if endpoint_url else None)
    target.check_access()
    keys = archive_keys(target)
    check_removable(target, keys)
    what = f"archive {target.display} ({len(keys)} objects, {human_size(sum(keys.values()))})"
    if not yes:
        if not sys.stdin.isatty():
            raise UsageError(f"rm of {what} asks first: on no terminal, give --yes")
        if not click.confirm(f"Remove {what}, every run of it?", default=False, err=True):
            raise UsageError("nothing removed")
    remove_archive(target)
    click.echo(f"removed {what}", err=True)


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
