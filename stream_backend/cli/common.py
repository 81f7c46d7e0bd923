"""Shared CLI plumbing: error reporting, store options, URL arguments."""

from __future__ import annotations

import base64
import contextlib
import os
import sys
import traceback

import click

from .. import settings
from ..errors import NotFoundError, PermissionDeniedError, StreamBackendError, UsageError
from ..urls import redact


class StreamBackendGroup(click.Group):
    """Turns our errors into one stderr line + documented exit code, never a traceback."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """``--debug`` is taken anywhere before ``--`` (people add it after the command
        that just failed), except inside the duplicity wrapper's own arguments."""
        args = list(args)
        end = args.index("--") if "--" in args else len(args)
        if "duplicity" not in args[:end] and "--debug" in args[1:end]:
            args.remove("--debug")
            args.insert(0, "--debug")
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except StreamBackendError as exc:
            if (ctx.obj or {}).get("debug"):
                traceback.print_exc()  # and still the documented exit code
            _termination_message({"event": "error", "exit_code": exc.exit_code, "error": str(exc)})
            click.echo(redact(f"stream-backend: error: {exc}"), err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("stream-backend: interrupted", err=True)
            sys.exit(130)
        except BrokenPipeError:
            # `stream-backend cat ... | head`: the reader left; not an error for us
            try:
                sys.stdout = open(os.devnull, "w")
            except OSError:
                pass
            sys.exit(0)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException, SystemExit):
            raise
        except Exception as exc:  # a bug: still one line unless --debug
            if (ctx.obj or {}).get("debug"):
                traceback.print_exc()
            click.echo(
                redact(f"stream-backend: internal error: {type(exc).__name__}: {exc} "
                       "(run with --debug for a traceback)"),
                err=True,
            )
            sys.exit(70)  # EX_SOFTWARE


def _termination_message(summary: dict) -> None:
    """In a Kubernetes pod, leave the one-line failure where `kubectl get pod` shows it."""
    if settings.termination_log():
        from ..k8s.termination import write_termination_message

        write_termination_message(summary)


def store_options(f):
    """Every store's options (``stores.registry``: --root, --controller, --timeout) on a
    command taking a stream URL."""
    from ..stores import registry

    for o in reversed(registry.all_options()):
        shown = settings.platform_store_root() if o.name == "root" else o.default
        shown = f"; default {shown}" if shown is not None else ""
        # a number's default is the command's own (mount waits by it); a URI or path left
        # unset is the store's to resolve
        default = o.default if o.type is not str else None
        f = click.option(f"--{o.name}", type=o.type, default=default, envvar=o.env,
                         help=f"{o.help} [env {o.env}{shown}].")(f)
    return f


def open_store_for(url, **values):
    """Open the store a parsed StreamURL lives in, with the command's store options."""
    from ..stores import registry

    return registry.open_store_from(url.protocol, values)


def shape_line(segment: int, shape: dict) -> str:
    """segment 2: keys [0.5, 1), epoch 1, after 0, sealed, then 5, 6"""
    lo, hi = shape["key_range"]
    words = [f"segment {segment}: keys [{lo:g}, {hi:g}), epoch {shape['epoch']}"]
    if shape["predecessors"]:
        words.append("after " + ", ".join(map(str, shape["predecessors"])))
    if shape["sealed"]:
        words.append("sealed" + (", then " + ", ".join(map(str, shape["successors"])) if shape["successors"] else ""))
    return ", ".join(words)


def config_line(cfg: dict) -> str:
    sc, ret = cfg.get("scaling") or {}, cfg.get("retention") or {}
    kind = sc.get("type")
    scaling = (f"fixed, {sc.get('min_segments')} segments" if kind == "fixed" else
               f"by {'events/s' if kind == 'events' else 'KiB/s'} {sc.get('target_rate')}, factor "
               f"{sc.get('scale_factor')}, at least {sc.get('min_segments')} segments")
    retention = "none" if ret.get("type") in (None, "none") else (
        f"{ret['value'] / 1000:g} s" if ret["type"] == "time" else f"{ret['value']} bytes")
    tags = ", ".join(cfg.get("tags") or []) or "none"
    return f"stream config: scaling {scaling}; retention {retention}; tags {tags}"




def binary(stream):
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


def segment_of(info, url, segment: int | None):
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


def sse_c_key(path: str) -> bytes:
    """An SSE-C key from its file: 32 bytes, raw or base64 (the key never on a command line)."""
    try:
        with open(path, "rb") as f:
            raw = f.read(1024)
    except OSError as exc:
        raise UsageError(f"--sse-c-key-file {path}: {exc.strerror}") from None
    if len(raw) == 32:
        return raw
    try:
        key = base64.b64decode(raw.strip(), validate=True)
    except ValueError:
        key = b""
    if len(key) != 32:
        raise UsageError(f"--sse-c-key-file {path}: not an SSE-C key (32 bytes, raw or base64)")
    return key
