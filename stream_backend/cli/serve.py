"""``stream-backend serve``: the HTTP API (stream_backend.api) on uvicorn."""

from __future__ import annotations

import ipaddress

import click

from .. import settings
from ..errors import UnavailableError, UsageError
from ..urls import parse_stream_url
from . import main
from .common import opened_store, store_options


def _host_port(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise UsageError(f"--listen takes HOST:PORT, not {listen!r}")
    return host.strip("[]"), int(port)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@main.command("serve")
@click.argument("store_url", metavar="STORE", required=False, default="stream://")
@click.option("--listen", default="127.0.0.1:8080", show_default=True, help="Address and port to listen on.")
@click.option("--token-file", type=click.Path(dir_okay=False), default=None, envvar=settings.TOKEN_FILE_ENV,
              help="Bearer tokens, one 'TOKEN SCOPE[,SCOPE]' per line (scope: read); needed unless --listen "
                   "is a loopback address [env STREAM_BACKEND_TOKEN_FILE].")
@store_options
def serve_cmd(store_url, listen, token_file, root, controller, timeout):
    """Serve streams over HTTP: info as JSON and each segment's file view with Range
    requests (so `curl -C -` resumes a download), OpenAPI at /v1/openapi.json.

    \b
    Example:
      stream-backend serve --listen 127.0.0.1:8080
      curl -s localhost:8080/v1/streams/demo/logs
      curl -C - -o logs.bin 'localhost:8080/v1/streams/demo/logs/data'
      stream-backend serve --listen 0.0.0.0:8080 --token-file /etc/stream-backend/tokens
    """
    try:
        import uvicorn

        from ..api.app import create_app
        from ..api.auth import Tokens
    except ImportError as exc:
        raise UnavailableError(f"serve needs {exc.name}: pip install 'stream-backend[serve]'") from None
    host, port = _host_port(listen)
    tokens = Tokens.load(token_file) if token_file else None
    if tokens is None and not _loopback(host):
        raise UsageError(f"--listen {listen} reaches beyond this machine: give --token-file")
    u = parse_stream_url(store_url, need="store")
    with opened_store(u, root, controller, timeout) as store:
        click.echo(f"stream-backend: serving {u.protocol}:// on http://{listen}/v1/"
                   f"{'' if tokens else ' (no authentication: loopback only)'}", err=True)
        uvicorn.run(create_app(store, u.protocol, tokens), host=host, port=port, log_level="warning",
                    server_header=False)
