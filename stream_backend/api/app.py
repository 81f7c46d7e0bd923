"""The ASGI application: JSON under /v1, the OpenAPI document at /v1/openapi.json, the web
page at /ui/."""

from __future__ import annotations

import contextlib
import json
import os
from typing import TYPE_CHECKING, Any, AsyncIterator, Iterator

from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from .. import __version__
from ..errors import (AlreadyExistsError, NotFoundError, PermissionDeniedError, StreamBackendError, UnavailableError,
                      UnsupportedError, UsageError)
from ..urls import check_name
from . import ranges
from .auth import Action, Authorizer, Unauthenticated
from .work import FINISHED, KINDS, LocalWorkers

if TYPE_CHECKING:
    from .cluster import ClusterWorkers

#: bytes read from the store per chunk of a response
CHUNK = 1 << 20
#: a request body larger than this is refused (413) before it is read
MAX_BODY = 64 * 1024
#: an idle event stream sends a comment this often, so proxies keep it open
KEEPALIVE_SECONDS = 15.0
_STATUS = {NotFoundError: 404, UsageError: 400, AlreadyExistsError: 409, UnsupportedError: 400,
           PermissionDeniedError: 403, UnavailableError: 503}


class WorkRequest(BaseModel):
    """A request for an export or an import: the name makes it idempotent, the spec has
    the fields of a StreamExport / StreamImport resource."""

    name: str = Field(description="Client-chosen; the same name and spec again is the same request.",
                      examples=["nightly-orders"])
    spec: dict[str, Any] = Field(examples=[{"source": "stream://demo/logs", "archiveLocation": "backups",
                                            "archivePath": "demo/logs"}])


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes, declared or streamed (chunked)."""

    def __init__(self, app, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            return await JSONResponse({"detail": f"request body over {self.limit} bytes"}, 413)(scope, receive, send)
        seen = 0

        async def limited():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise HTTPException(413, f"request body over {self.limit} bytes")
            return message

        return await self.app(scope, limited, send)


class PageHeaders:
    """Headers that keep the page and the API's answers from being framed, sniffed or
    followed by a Referer; the page may fetch presigned URLs of any S3 endpoint."""

    HEADERS = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"),
               (b"x-frame-options", b"DENY"),
               (b"content-security-policy", b"default-src 'self'; connect-src 'self' http: https:; "
                                            b"img-src 'self' data:; frame-ancestors 'none'")]

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def with_headers(message):
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *self.HEADERS]
            await send(message)

        return await self.app(scope, receive, with_headers)


def create_app(store, protocol: str, auth: Authorizer | None,
               workers: LocalWorkers | ClusterWorkers | None = None) -> FastAPI:
    """The API over one opened store (``protocol``: its URL scheme, ``stream`` or
    ``pravega``); ``auth`` None serves without authentication (loopback only);
    ``workers`` run export and import requests, on this machine or as resources of a
    cluster (none: the request paths answer 404)."""

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        import asyncio

        if workers is not None:
            workers.attach(asyncio.get_running_loop())
        yield
        if workers is not None:
            await asyncio.to_thread(workers.close)

    app = FastAPI(title="stream-backend", version=__version__, openapi_url="/v1/openapi.json",
                  docs_url=None, redoc_url=None, lifespan=lifespan)
    app.add_middleware(BodyLimit, limit=MAX_BODY)
    app.add_middleware(PageHeaders)

    def need(verb: str, resource: str, subresource: str = ""):
        """A dependency: the caller may do this action (on the request named in the path)."""
        action = Action(verb, resource, subresource)

        def check(request: Request, authorization: str | None = Header(default=None, include_in_schema=False)) -> None:
            if auth is None:
                return
            try:
                named = request.path_params.get("name") or request.path_params.get("location")
                auth.check(authorization, action, named)
            except Unauthenticated as exc:
                raise HTTPException(401, str(exc), headers={"WWW-Authenticate": "Bearer"}) from None

        return check

    read_streams, read_locations = need("get", "streams"), need("get", "archivelocations")

    def runner() -> LocalWorkers | ClusterWorkers:
        if workers is None:
            raise NotFoundError("this server runs no export or import requests")
        return workers

    @app.exception_handler(StreamBackendError)
    async def _error(_request: Request, exc: StreamBackendError):
        status = next((code for kind, code in _STATUS.items() if isinstance(exc, kind)), 500)
        return JSONResponse({"detail": str(exc), "exit_code": exc.exit_code}, status_code=status)

    @app.exception_handler(RequestValidationError)
    async def _malformed(_request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return JSONResponse({"detail": f"{where}: {first.get('msg', 'malformed request')}"}, status_code=400)

    @app.get("/", include_in_schema=False)
    def page() -> RedirectResponse:
        return RedirectResponse("/ui/")

    # the page holds no data: it asks the API, with the caller's token, for everything it shows
    app.mount("/ui", StaticFiles(directory=os.path.join(os.path.dirname(__file__), "ui"), html=True), name="ui")

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict:
        return {"ok": True}

    @app.get("/readyz", include_in_schema=False)
    def readyz() -> dict:
        """Ready once the store answers (a Pravega controller may not yet)."""
        store.list_scopes()
        return {"ok": True}

    @app.get("/v1/locations", dependencies=[Depends(need("list", "archivelocations"))])
    def list_locations() -> list[dict]:
        """The archive locations requests may name."""
        return [loc.to_dict() for _, loc in sorted(runner().locations.items())]

    @app.get("/v1/locations/{location}/status", dependencies=[Depends(read_locations)])
    def archive_status(location: str, path: str = Query(default="", description="The archive under the location")):
        """The fields of `stream-backend status --json` for the archive at PATH."""
        from ..transfer.verify import archive_status as status_of

        loc = runner().locations.get(location)
        if loc is None:
            raise NotFoundError(f"no archive location {location!r}")
        return status_of(loc.target(path))


    @app.get("/v1/streams", dependencies=[Depends(need("list", "streams"))])
    def list_streams() -> list[dict]:
        """Every scope with its streams' names."""
        return [{"scope": scope, "streams": sorted(store.list_streams(scope))} for scope in sorted(store.list_scopes())]

    @app.get("/v1/streams/{scope}/{stream}", dependencies=[Depends(read_streams)])
    def stream_info(scope: str, stream: str) -> dict:
        """The fields of `stream-backend info --json`."""
        return store.stream_info(check_name("scope", scope), check_name("stream", stream)).to_dict(protocol)

    read_data = [Depends(need("get", "streams", "data"))]

    @app.head("/v1/streams/{scope}/{stream}/data", dependencies=read_data, operation_id="head_data")
    @app.get("/v1/streams/{scope}/{stream}/data", dependencies=read_data, operation_id="get_data")
    def data(request: Request, scope: str, stream: str, segment: int | None = Query(default=None, ge=0)):
        """The segment's file view (its payloads back to back, what `cat` prints), with
        Range (one or several), If-Range and an ETag that changes when the stream grows."""
        info = store.stream_info(check_name("scope", scope), check_name("stream", stream))
        if segment is None:
            if info.segment_count != 1:
                raise UsageError(f"{scope}/{stream} has {info.segment_count} segments: add ?segment=N")
            seg = info.segments[0]
        else:
            seg = info.segment(segment)
            if seg is None:
                raise NotFoundError(f"{scope}/{stream} has no segment {segment}")
        size = seg.length
        etag = f'"{info.identity or "0"}-{seg.segment}-{seg.tail_seq}-{size}"'
        headers = {"Accept-Ranges": "bytes", "ETag": etag, "Cache-Control": "no-cache"}
        wanted = None
        if_range = request.headers.get("if-range")
        if if_range is None or if_range.strip() == etag:
            try:
                wanted = ranges.parse(request.headers.get("range"), size)
            except ranges.Unsatisfiable as exc:
                return Response(status_code=416, headers={**headers, "Content-Range": str(exc)})
        head = request.method == "HEAD"

        def read(start: int, stop: int) -> Iterator[bytes]:
            pos = start
            while pos < stop:
                chunk = store.read_range(scope, stream, seg.segment, pos, min(CHUNK, stop - pos))
                if not chunk:
                    raise NotFoundError(f"{scope}/{stream} segment {seg.segment} ended at byte {pos}")
                yield chunk
                pos += len(chunk)

        if wanted is None:
            headers["Content-Length"] = str(size)
            body = iter(()) if head else read(0, size)
            return StreamingResponse(body, headers=headers, media_type="application/octet-stream")
        if len(wanted) == 1:
            (start, stop), = wanted
            headers.update({"Content-Range": f"bytes {start}-{stop - 1}/{size}", "Content-Length": str(stop - start)})
            body = iter(()) if head else read(start, stop)
            return StreamingResponse(body, status_code=206, headers=headers, media_type="application/octet-stream")
        boundary = f"sb-{seg.tail_seq}-{size}"
        parts = [(f"--{boundary}\r\nContent-Type: application/octet-stream\r\n"
                  f"Content-Range: bytes {a}-{b - 1}/{size}\r\n\r\n").encode() for a, b in wanted]
        closing = f"\r\n--{boundary}--\r\n".encode()
        length = sum(len(p) for p in parts) + sum(b - a for a, b in wanted) + 2 * (len(wanted) - 1) + len(closing)

        def multipart() -> Iterator[bytes]:
            for i, (part, (a, b)) in enumerate(zip(parts, wanted)):
                yield (b"\r\n" if i else b"") + part
                yield from read(a, b)
            yield closing

        headers["Content-Length"] = str(length)
        return StreamingResponse(iter(()) if head else multipart(), status_code=206, headers=headers,
                                 media_type=f"multipart/byteranges; boundary={boundary}")

    for plural, kind in KINDS.items():
        app.include_router(_work_routes(plural, kind, need, runner))
    return app


def _work_routes(plural: str, kind: str, need, runner) -> APIRouter:
    """/v1/exports or /v1/imports: actions on the StreamExport / StreamImport resources."""
    scope, resource = plural.removesuffix("s"), f"stream{plural}"

    def may(verb: str, subresource: str = "") -> list:
        return [Depends(need(verb, resource, subresource))]

    r = APIRouter(prefix=f"/v1/{plural}", tags=[plural])

    @r.post("", status_code=201, dependencies=may("create"), operation_id=f"request_{scope}",
            responses={200: {"description": "The same name and spec were requested before"},
                       409: {"description": "The name is taken by another spec"}})
    def submit(body: WorkRequest, response: Response) -> dict:
        """Request one; it runs as soon as a worker is free."""
        doc, created = runner().submit(kind, body.name, body.spec)
        if not created:
            response.status_code = 200
        return doc

    @r.get("", dependencies=may("list"), operation_id=f"list_{plural}")
    def list_work() -> list[dict]:
        """Every request, with its status."""
        return runner().list(kind)

    @r.get("/{name}", dependencies=may("get"), operation_id=f"get_{scope}")
    def get_work(name: str) -> dict:
        """The request's document: its spec and status (phase, progress, run, error)."""
        return runner().get(kind, name)

    @r.get("/{name}/events", dependencies=may("watch"), response_class=StreamingResponse, operation_id=f"follow_{scope}")
    async def follow(name: str):
        """Server-Sent Events: the request's document each time it changes (``event:
        status``), ending after it Succeeded or Failed (or ``event: deleted``)."""
        work = runner()
        work.get(kind, name)  # 404 now, not inside the stream

        async def events() -> AsyncIterator[bytes]:
            sent = None
            while True:
                change = work.changes()
                try:
                    doc = work.get(kind, name)
                except NotFoundError:
                    yield b"event: deleted\ndata: {}\n\n"
                    return
                text = json.dumps(doc, sort_keys=True)
                if text != sent:
                    yield f"event: status\ndata: {text}\n\n".encode()
                    sent = text
                    if doc["status"].get("phase") in FINISHED:
                        return
                if not await work.changed(change, KEEPALIVE_SECONDS):
                    yield b": keepalive\n\n"

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    if kind == "StreamExport":
        @r.get("/{name}/download", dependencies=may("get", "download"), operation_id="download_plan")
        def download(name: str, segment: int | None = Query(default=None, ge=0),
                     expires: int = Query(default=3600, description="Seconds the URLs stay valid")) -> dict:
            """A download plan of the export's file view (exported with ``fileView``):
            presigned S3 URLs with offsets, sizes, SHA-256 and CRC32C, fetched by the client
            straight from S3 (`stream-backend download`, curl, a browser)."""
            from ..transfer.views import download_plan

            doc = runner().get(kind, name)
            if doc["status"].get("phase") != "Succeeded":
                raise AlreadyExistsError(f"export {name} has not succeeded yet: there is nothing to download")
            if not doc["spec"].get("fileView"):
                raise UsageError(f"export {name} has no file view: request it with spec.fileView true")
            return download_plan(runner().target_of(kind, name), segment, expires)

    @r.post("/{name}/pause", dependencies=may("patch"), operation_id=f"pause_{scope}")
    def pause(name: str) -> dict:
        """Stop at a checkpoint (spec.suspend = true); resume continues from it."""
        return runner().pause(kind, name)

    @r.post("/{name}/resume", dependencies=may("patch"), operation_id=f"resume_{scope}")
    def resume(name: str) -> dict:
        """Run a Paused or Failed request again, from its checkpoint."""
        return runner().resume(kind, name)

    @r.delete("/{name}", dependencies=may("delete"), operation_id=f"cancel_{scope}")
    def cancel(name: str) -> dict:
        """Cancel: stop at a checkpoint and forget the request (a new request for the
        same archive resumes from that checkpoint)."""
        return runner().cancel(kind, name)

    return r
