"""Suite-wide fixtures. Area fixtures live in tests/<area>/conftest.py.

``store`` is parametrized over every StreamStore implementation so that the contract
suite (tests/store/test_contract.py) runs against each: the local store always, Pravega
standalone too (started by the suite; in CI it always runs, it is never skipped).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

pytest_plugins = ["servers.s3", "servers.pravega", "servers.k8s"]  # S3 fixtures: seaweedfs, s3_bucket, moto_server, moto_bucket, fault_proxy

STORE_KINDS = ["local", "pravega"]


@pytest.fixture
def store_root(tmp_path) -> Path:
    root = tmp_path / "store"
    root.mkdir()
    return root


@pytest.fixture
def local_store(store_root):
    from stream_backend.stores.local import LocalStore

    s = LocalStore(root=str(store_root))
    yield s
    s.close()


@pytest.fixture(params=STORE_KINDS)
def store(request):
    """Every StreamStore implementation, one at a time."""
    if request.param == "local":
        yield request.getfixturevalue("local_store")
    else:
        yield request.getfixturevalue("pravega_store")


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path):
    """No test reads the developer's real store or AWS config."""
    monkeypatch.setenv("STREAM_BACKEND_ROOT", str(tmp_path / "default-root"))
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
