"""The one table from storage errors (fsspec, s3fs, botocore, OS) to ours: a missing
bucket is NotFoundError, bad credentials PermissionDeniedError, an unreachable endpoint
UnavailableError; the message names the object, never a credential."""

from __future__ import annotations

from ...errors import (
    NotFoundError,
    PermissionDeniedError,
    StreamBackendError,
    UnavailableError,
    from_os_error,
)

DENIED_CODES = frozenset({
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "AllAccessDisabled",
    "AccountProblem",
    "InvalidSecurity",
    "403",
})
MISSING_BUCKET_CODES = frozenset({"NoSuchBucket"})
#: what S3 answers a read of an SSE-C object without its key (HEAD has no body: a bare 400)
BAD_REQUEST_CODES = frozenset({"400", "InvalidRequest"})
PRECONDITION_CODES = frozenset({"PreconditionFailed", "412", "ConditionalRequestConflict"})
UNREACHABLE = frozenset({
    "EndpointConnectionError",
    "ConnectTimeoutError",
    "ClientConnectorError",
    "ConnectionRefusedError",
    "ServerDisconnectedError",
})


class PreconditionFailed(Exception):
    """A conditional write lost: someone else wrote the object first."""


def _chain(exc: BaseException):
    seen = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        yield e
        e = e.__cause__ or e.__context__


def client_error_code(exc: BaseException) -> str | None:
    """The S3 error code behind an exception (s3fs chains the botocore ClientError)."""
    for e in _chain(exc):
        resp = getattr(e, "response", None)
        if isinstance(resp, dict):
            code = (resp.get("Error") or {}).get("Code")
            if code:
                return str(code)
    return None


def is_precondition_failure(exc: BaseException) -> bool:
    return client_error_code(exc) in PRECONDITION_CODES


def _is_unreachable(exc: BaseException) -> bool:
    return any(c.__name__ in UNREACHABLE for e in _chain(exc) for c in type(e).__mro__)


def translate_error(exc: BaseException, where: str) -> StreamBackendError:
    """Map an fsspec/s3fs/botocore exception to our one-line error (no credentials)."""
    if isinstance(exc, StreamBackendError):
        return exc
    code = client_error_code(exc)
    name = type(exc).__name__
    if name in ("NoCredentialsError", "PartialCredentialsError"):
        return PermissionDeniedError(f"no credentials for {where} (set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or a profile)")
    if code in DENIED_CODES or isinstance(exc, PermissionError):
        return PermissionDeniedError(f"access denied to {where} ({code or 'permission denied'}): check credentials and permissions")
    if code in MISSING_BUCKET_CODES:
        return NotFoundError(f"bucket of {where} does not exist")
    if code in BAD_REQUEST_CODES:
        return PermissionDeniedError(f"{where} refused the request as invalid ({code}); if it is encrypted with a "
                                     "customer key (SSE-C), give --sse-c-key-file with the key it was written with")
    if _is_unreachable(exc):
        return UnavailableError(f"cannot reach the storage endpoint for {where}")
    if isinstance(exc, FileNotFoundError):
        return NotFoundError(f"not found: {where}")
    if isinstance(exc, OSError) and exc.errno is not None and code is None:
        err = from_os_error(exc, f"write or read {where}")
        if type(err) is not StreamBackendError:
            return err
    return UnavailableError(f"storage error on {where}: {code or name}")
