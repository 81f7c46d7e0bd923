"""Fixtures for the stream:// filesystem tests: a fresh local store per test."""

from __future__ import annotations

import pytest

#: small events so that spillover happens with kilobytes, not megabytes
SMALL_EVENT = 1024


@pytest.fixture
def sfs(store_root):
    """A StreamFileSystem on a fresh local store with 1 KiB max events."""
    from stream_backend.fs.streamfs import StreamFileSystem

    fs = StreamFileSystem(
        root=str(store_root), max_event_size=SMALL_EVENT, skip_instance_cache=True
    )
    yield fs
    fs.close()


def pytest_collection_modifyitems(config, items):
    """Deselect fsspec abstract cases a stream store cannot express, each with the
    reason written next to it (``NOT_APPLICABLE`` on the test class), never silently:
    the reasons are printed in the terminal summary."""
    keep, dropped = [], []
    for item in items:
        reasons = getattr(item.cls, "NOT_APPLICABLE", None) or {}
        name = item.originalname if hasattr(item, "originalname") else item.name
        if name in reasons:
            dropped.append((item, reasons[name]))
        else:
            keep.append(item)
    if dropped:
        config.hook.pytest_deselected(items=[i for i, _ in dropped])
        items[:] = keep
        # one line per test function (not per parameter set)
        seen = {}
        for i, r in dropped:
            seen.setdefault(i.nodeid.split("[", 1)[0], r)
        config._stream_fs_not_applicable = sorted(seen.items())


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    dropped = getattr(config, "_stream_fs_not_applicable", [])
    if not dropped:
        return
    terminalreporter.section("fsspec abstract cases deselected (not applicable to streams)")
    by_reason: dict[str, list[str]] = {}
    for nodeid, reason in dropped:
        by_reason.setdefault(reason, []).append(
            nodeid.rsplit("::", 2)[-2] + "::" + nodeid.rsplit("::", 1)[-1]
        )
    for reason, names in by_reason.items():
        terminalreporter.write_line(f"{len(names)} x {reason}: {', '.join(names)}")
