"""The manifest tests name an image the way a user must (``--image`` has no default: an
image without a registry would not pull); STREAM_BACKEND_IMAGE is the option's env."""

from __future__ import annotations

import pytest

from support.jobs import fill_source_store

TEST_IMAGE = "registry.example/stream-backend:0.1.0"


@pytest.fixture(autouse=True)
def _image(monkeypatch):
    monkeypatch.setenv("STREAM_BACKEND_IMAGE", TEST_IMAGE)


@pytest.fixture
def source_store(store_root):
    """A local store with one stream of a few segments (support.jobs.fill_source_store)."""
    return fill_source_store(store_root)
