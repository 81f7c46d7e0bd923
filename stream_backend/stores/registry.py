"""The stores stream-backend knows, by URL protocol: how to open one, the options it takes
(on the CLI and from the environment), and its fsspec class. Adding a store is a module of
its own plus one entry here."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

from .. import settings
from ..errors import UsageError


@dataclass(frozen=True)
class StoreOption:
    """One setting of a store: its constructor keyword, its CLI flag (``--name``) and its
    environment variable."""

    name: str
    env: str
    help: str
    #: the option as the environment gives it (None: the store's default)
    from_env: Callable[[], object]
    type: type = str
    #: shown in help; the value used when neither flag nor variable is given
    default: object = None


ROOT = StoreOption("root", settings.ROOT_ENV, "Local store directory for stream:// URLs", settings.store_root)
CONTROLLER = StoreOption("controller", settings.CONTROLLER_ENV, "Pravega controller URI for pravega:// URLs",
                         settings.controller, default=settings.DEFAULT_CONTROLLER)
TIMEOUT = StoreOption("timeout", settings.TIMEOUT_ENV, "Seconds to wait for a Pravega controller before giving up",
                      settings.timeout, type=float, default=settings.DEFAULT_TIMEOUT)


@dataclass(frozen=True)
class StoreKind:
    protocol: str
    #: "module:Class" of the StreamStore, imported when first opened
    factory: str
    #: "module:Class" of its fsspec filesystem (registered under ``protocol``)
    fs_class: str
    options: tuple[StoreOption, ...]

    def open(self, **values):
        """The store, from option values (None or absent: the environment, then the default);
        other keywords (``max_event_size``) go to the store as given."""
        opts = dict(values)
        for o in self.options:
            if opts.get(o.name) is None:
                opts[o.name] = o.from_env()
        _check(opts)
        return _load(self.factory)(**{k: v for k, v in opts.items() if v is not None})

    def filesystem_class(self) -> type:
        return _load(self.fs_class)


def _load(ref: str):
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


def _check(opts: dict) -> None:
    root = opts.get("root")
    if root is not None and not str(root).strip():
        raise UsageError(f"--root (or {settings.ROOT_ENV}) is empty: name the local store's directory")
    timeout = opts.get("timeout")
    if timeout is not None and not timeout > 0:
        raise UsageError(f"--timeout must be more than 0 seconds, not {timeout}")


STORES: dict[str, StoreKind] = {
    "stream": StoreKind("stream", "stream_backend.stores.local.store:LocalStore",
                        "stream_backend.fs.streamfs:StreamFileSystem", (ROOT,)),
    "pravega": StoreKind("pravega", "stream_backend.stores.pravega.store:PravegaStore",
                         "stream_backend.fs.pravegafs:PravegaFileSystem", (CONTROLLER, TIMEOUT)),
}
PROTOCOLS = tuple(STORES)


def kind(protocol: str) -> StoreKind:
    try:
        return STORES[protocol]
    except KeyError:
        raise UsageError(f"unknown store protocol {protocol!r} (expected {' or '.join(PROTOCOLS)})") from None


def all_options() -> list[StoreOption]:
    """Every store's options, each once: what a command taking any stream URL offers."""
    seen: dict[str, StoreOption] = {}
    for k in STORES.values():
        for o in k.options:
            seen.setdefault(o.name, o)
    return list(seen.values())


def open_store(protocol: str = "stream", **values):
    """Open the store of ``protocol`` with the given option values (the rest from the
    environment)."""
    return kind(protocol).open(**values)


def open_store_from(protocol: str, values: dict):
    """Open the store of ``protocol`` from a command's option values, taking only the ones
    it has (a --controller given with a stream:// URL is not its business)."""
    k = kind(protocol)
    return k.open(**{o.name: values.get(o.name) for o in k.options})
