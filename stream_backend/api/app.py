"""The ASGI application: JSON under /v1, the OpenAPI document at /v1/openapi.json."""

from __future__ import annotations

from typing import Iterator

from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from .. import __version__
from ..errors import NotFoundError, StreamBackendError, UsageError
from ..urls import check_name
from . import ranges
from .auth import Tokens

#: bytes read from the store per chunk of a response
CHUNK = 1 << 20
_STATUS = {NotFoundError: 404, UsageError: 400}


def create_app(store, protocol: str, tokens: Tokens | None) -> FastAPI:
    """The API over one opened store (``protocol``: its URL scheme, ``stream`` or
    ``pravega``); ``tokens`` None serves without authentication (loopback only)."""
    app = FastAPI(title="stream-backend", version=__version__, openapi_url="/v1/openapi.json",
                  docs_url="/v1/docs", redoc_url=None)

    def need_read(authorization: str | None = Header(default=None)) -> None:
        if tokens is None:
            return
        if tokens.scopes_of(authorization) is None:  # every scope reads (read is the only one yet)
            raise HTTPException(401, "a bearer token is needed", headers={"WWW-Authenticate": "Bearer"})

    @app.exception_handler(StreamBackendError)
    async def _error(_request: Request, exc: StreamBackendError):
        status = next((code for kind, code in _STATUS.items() if isinstance(exc, kind)), 500)
        return JSONResponse({"detail": str(exc), "exit_code": exc.exit_code}, status_code=status)

    @app.get("/v1/streams", dependencies=[Depends(need_read)])
    def list_streams() -> list[dict]:
        """Every scope with its streams' names."""
        return [{"scope": scope, "streams": sorted(store.list_streams(scope))} for scope in sorted(store.list_scopes())]

    @app.get("/v1/streams/{scope}/{stream}", dependencies=[Depends(need_read)])
    def stream_info(scope: str, stream: str) -> dict:
        """The fields of `stream-backend info --json`."""
        return store.stream_info(check_name("scope", scope), check_name("stream", stream)).to_dict(protocol)

    @app.api_route("/v1/streams/{scope}/{stream}/data", methods=["GET", "HEAD"], dependencies=[Depends(need_read)])
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

    return app
