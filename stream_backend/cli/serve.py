"""``stream-backend serve``: the HTTP API (stream_backend.api) on uvicorn; ``download``: its
client for download plans."""

from __future__ import annotations

import ipaddress
import os

import click

from .. import settings
from ..api.download import PARALLEL as DOWNLOAD_PARALLEL
from ..api.download import RANGE as DOWNLOAD_RANGE
from ..errors import UnavailableError, UsageError
from ..units import human_size
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
              help="Bearer tokens, one 'TOKEN SCOPE[,SCOPE]' per line (scopes: read, export, import); needed "
                   "unless --listen is a loopback address or --kubernetes checks callers' own tokens "
                   "[env STREAM_BACKEND_TOKEN_FILE].")
@click.option("--location", "locations", multiple=True, metavar="NAME=URL",
              help="An archive location requests may name (repeatable), e.g. backups=s3://bucket/prefix.")
@click.option("--endpoint-url", default=None, help="S3 endpoint of the locations [env AWS_ENDPOINT_URL].")
@click.option("--workers", default=2, show_default=True, type=int, help="Requests that run at once.")
@click.option("--kubernetes", "namespace", default=None, metavar="NAMESPACE",
              help="Run requests in a cluster: as StreamExport / StreamImport resources of NAMESPACE, which "
                   "the operator runs as Jobs; locations are its ArchiveLocations (kubeconfig, or the pod's "
                   "ServiceAccount). Without --token-file a caller's bearer token is its Kubernetes token and "
                   "RBAC in NAMESPACE decides (TokenReview, SubjectAccessReview).")
@click.option("--tls-cert", type=click.Path(dir_okay=False, exists=True), default=None,
              help="Serve HTTPS with this certificate (PEM, the chain after it); needs --tls-key.")
@click.option("--tls-key", type=click.Path(dir_okay=False, exists=True), default=None,
              help="The certificate's private key (PEM).")
@click.option("--state-dir", type=click.Path(file_okay=False), default=None,
              help="Where requests are kept across restarts [default: the per-user state directory].")
@store_options
def serve_cmd(store_url, listen, token_file, locations, endpoint_url, workers, namespace, tls_cert, tls_key, state_dir,
              root, controller, timeout):
    """Serve streams over HTTP: info as JSON, each segment's file view with Range requests
    (so `curl -C -` resumes a download), export and import requests with their progress
    (JSON, Server-Sent Events), pause, resume and cancel. OpenAPI at /v1/openapi.json.

    \b
    Example:
      stream-backend serve --listen 127.0.0.1:8080 --location backups=file:///srv/backups
      curl -s localhost:8080/v1/streams/demo/logs
      curl -C - -o logs.bin 'localhost:8080/v1/streams/demo/logs/data'
      curl -s -X POST localhost:8080/v1/exports -H 'Content-Type: application/json' \\
        -d '{"name": "logs-1", "spec": {"source": "stream://demo/logs", "archiveLocation": "backups"}}'
      curl -sN localhost:8080/v1/exports/logs-1/events
      stream-backend serve --listen 0.0.0.0:8443 --token-file /etc/stream-backend/tokens \\
        --tls-cert tls.crt --tls-key tls.key
      stream-backend serve --listen 0.0.0.0:8443 --kubernetes backups --tls-cert tls.crt --tls-key tls.key
    """
    try:
        import uvicorn

        from ..api.app import create_app
        from ..api.auth import KubernetesIdentities, Tokens
        from ..api.work import LocalWorkers, Location
    except ImportError as exc:
        raise UnavailableError(f"serve needs {exc.name}: pip install 'stream-backend[serve]'") from None
    host, port = _host_port(listen)
    if bool(tls_cert) != bool(tls_key):
        raise UsageError("--tls-cert and --tls-key go together")
    auth = Tokens.load(token_file) if token_file else None
    if auth is None and not namespace and not _loopback(host):
        raise UsageError(f"--listen {listen} reaches beyond this machine: give --token-file (or --kubernetes)")
    u = parse_stream_url(store_url, need="store")
    named = {}
    for text in locations:
        loc = Location.parse(text, endpoint_url)
        if loc.name in named:
            raise UsageError(f"--location {loc.name} is given twice")
        named[loc.name] = loc
    store_args = [arg for opt, value in (("--root", root), ("--controller", controller), ("--timeout", timeout))
                  if value is not None for arg in (opt, str(value))]
    with opened_store(u, root, controller, timeout) as store:
        if namespace:
            from ..api.cluster import ClusterWorkers

            if named or state_dir:
                raise UsageError("--kubernetes takes its locations from the namespace's ArchiveLocations: "
                                 "drop --location and --state-dir")
            runner = ClusterWorkers(namespace)
            auth = auth or KubernetesIdentities(namespace)
        else:
            runner = LocalWorkers(store_args, u.protocol, named, state_dir or settings.platform_requests_dir(),
                                  workers)
        who = {Tokens: "", KubernetesIdentities: " (callers' Kubernetes tokens, RBAC of namespace "
                                                  f"{namespace})"}.get(type(auth), " (no authentication: loopback only)")
        click.echo(f"stream-backend: serving {u.protocol}:// on http{'s' if tls_cert else ''}://{listen}/v1/{who}",
                   err=True)
        uvicorn.run(create_app(store, u.protocol, auth, runner), host=host, port=port, log_level="warning",
                    server_header=False, ssl_certfile=tls_cert, ssl_keyfile=tls_key)


@main.command("download")
@click.argument("plan")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="The file to write.")
@click.option("--parallel", default=DOWNLOAD_PARALLEL, show_default=True, type=int,
              help=f"GETs at once (parts, or ranges of at least {human_size(DOWNLOAD_RANGE)} of them).")
@click.option("--fsync", "durable", is_flag=True,
              help="Flush the file to disk before exiting (a rerun re-checks every part either way).")
@click.option("--progress", type=click.Choice(["auto", "bar", "json", "none"]), default="auto", show_default=True,
              help="Progress: a bar on a terminal, JSON lines on stderr otherwise (auto).")
def download_cmd(plan, output, parallel, durable, progress):
    """Download an export's file view by its download plan (PLAN: the plan's URL on
    `serve`, or a saved plan file), straight from S3: GETs in parallel, each part
    checked by its CRC32C (or SHA-256). Run the same command again after an
    interruption: the parts already on disk are kept. The token comes from
    STREAM_BACKEND_TOKEN.

    \b
    Example:
      export STREAM_BACKEND_TOKEN=...
      stream-backend download http://127.0.0.1:8080/v1/exports/orders-1/download -o orders.bin
      curl -s -H "Authorization: Bearer $STREAM_BACKEND_TOKEN" \\
        http://127.0.0.1:8080/v1/exports/orders-1/download > plan.json
      stream-backend download plan.json -o orders.bin
    """
    from ..api.download import download, fetch_plan
    from ..transfer.progress import Progress, print_done

    got = fetch_plan(plan, os.environ.get(settings.TOKEN_ENV))
    with Progress("download", progress) as prog:
        summary = download(got, output, parallel, prog, durable=durable)
    print_done(summary)
