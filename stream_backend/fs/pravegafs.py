"""``pravega://SCOPE/STREAM``: the stream filesystem over a Pravega cluster."""

from __future__ import annotations

from fsspec.spec import AbstractFileSystem

from .. import settings
from .streamfs import StreamFileSystem


class PravegaFileSystem(StreamFileSystem):
    """Streams of a Pravega cluster as files (``pravega://SCOPE/STREAM``).

    Storage options: ``controller`` (default env PRAVEGA_CONTROLLER_URI, else
    tcp://127.0.0.1:9090), ``timeout`` (seconds), ``event_size``.
    """

    protocol = "pravega"
    store_protocol = "pravega"

    def __init__(
        self,
        controller: str | None = None,
        timeout: float | None = None,
        event_size: int | None = None,
        **kwargs,
    ):
        AbstractFileSystem.__init__(self, **kwargs)
        options = {"controller": controller}
        if timeout is not None:
            options["timeout"] = float(timeout)
        self._init_store(options, event_size)

    @classmethod
    def _resolve_options(cls, kwargs: dict) -> dict:
        if kwargs.get("controller") is None:
            kwargs["controller"] = settings.controller()
        return kwargs
