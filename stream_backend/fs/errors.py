"""Tool errors re-raised as the builtins fsspec callers catch, shared by every filesystem.

fsspec code (and FUSE, rsync wrappers, pandas...) expects FileNotFoundError,
PermissionError, NotImplementedError; the CLI expects our classes with exit codes.
An error raised here is *both*, so each side keeps working.
"""

from __future__ import annotations

import functools

from .. import errors as E

# Most specific first: the first match decides the builtin an error also becomes.
_BUILTIN_FOR: list[tuple[type[E.StreamBackendError], tuple[type[BaseException], ...]]] = [
    (E.NotFoundError, (FileNotFoundError,)),
    (E.AlreadyExistsError, (FileExistsError,)),
    (E.PermissionDeniedError, (PermissionError,)),
    (E.UnavailableError, (ConnectionError,)),
    (E.UnsupportedError, (NotImplementedError, OSError)),
    (E.EventTooLargeError, (ValueError, OSError)),
    (E.UsageError, (ValueError,)),
    (E.StreamBackendError, (OSError,)),  # NotEmpty, Sealed, WriterBusy, Corruption, ...
]


@functools.lru_cache(maxsize=None)
def _mixed_class(ours: type, builtins: tuple[type, ...]) -> type:
    """A class that is both our error (exit code, errno) and the builtin fsspec expects."""
    return type(ours.__name__, (ours, *builtins), {"__module__": ours.__module__})


def as_fs_error(
    exc: E.StreamBackendError, builtins: tuple[type, ...] | None = None
) -> BaseException:
    """Return ``exc`` re-typed so that ``except FileNotFoundError`` (etc.) catches it."""
    if isinstance(exc, OSError) and builtins is None:
        return exc
    if builtins is None:
        builtins = next(b for cls, b in _BUILTIN_FOR if isinstance(exc, cls))
    if all(isinstance(exc, b) for b in builtins):
        return exc
    new = _mixed_class(type(exc), tuple(builtins))(str(exc))
    if isinstance(new, OSError):
        new.errno = type(exc).errno  # OSError(msg) would leave errno None
    new.__cause__ = exc.__cause__ or exc
    return new


def fs_error(ours: type[E.StreamBackendError], msg: str, *builtins: type) -> BaseException:
    """A new error of our class ``ours`` that also is ``builtins`` (default: by class)."""
    return as_fs_error(ours(msg), tuple(builtins) if builtins else None)


def translating(func):
    """Decorator: store errors leave fsspec methods as builtin-compatible exceptions."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except E.StreamBackendError as exc:
            mapped = as_fs_error(exc)
            if mapped is exc:
                raise
            raise mapped from exc

    return wrapper


def unsupported(what: str) -> BaseException:
    """What an overwrite, truncate or seek-while-writing raises: streams only grow."""
    return fs_error(E.UnsupportedError, f"{what}: streams are append-only")
