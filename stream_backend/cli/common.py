"""Shared CLI plumbing: error reporting, store options, URL arguments."""

from __future__ import annotations

import os
import sys

import click

from ..errors import StreamBackendError
from ..urls import redact


class StreamBackendGroup(click.Group):
    """Turns our errors into one stderr line + documented exit code, never a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except StreamBackendError as exc:
            if (ctx.obj or {}).get("debug"):
                raise
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
                raise
            click.echo(
                redact(f"stream-backend: internal error: {type(exc).__name__}: {exc} "
                       "(run with --debug for a traceback)"),
                err=True,
            )
            sys.exit(70)  # EX_SOFTWARE


def _termination_message(summary: dict) -> None:
    """In a Kubernetes pod, leave the one-line failure where `kubectl get pod` shows it."""
    if os.environ.get("STREAM_BACKEND_TERMINATION_LOG"):
        from ..k8s import write_termination_message

        write_termination_message(summary)


def store_options(f):
    """--root (local store) and --controller/--timeout (Pravega) on any command taking a URL."""
    f = click.option(
        "--timeout",
        type=float,
        default=30.0,
        show_default=True,
        envvar="STREAM_BACKEND_TIMEOUT",
        help="Seconds to wait for a Pravega controller before giving up.",
    )(f)
    f = click.option(
        "--controller",
        envvar="PRAVEGA_CONTROLLER_URI",
        default=None,
        help="Pravega controller URI for pravega:// URLs [env PRAVEGA_CONTROLLER_URI; default tcp://127.0.0.1:9090].",
    )(f)
    f = click.option(
        "--root",
        envvar="STREAM_BACKEND_ROOT",
        default=None,
        help="Local store directory for stream:// URLs [env STREAM_BACKEND_ROOT; default: per-user data dir].",
    )(f)
    return f


def open_store_for(url, root=None, controller=None, timeout=30.0):
    """Open the store a parsed StreamURL lives in, with the CLI's options."""
    from ..stores import open_store

    if url.protocol == "stream":
        return open_store("stream", root=root)
    opts = {"timeout": timeout}
    if controller:
        opts["controller"] = controller
    return open_store("pravega", **opts)
