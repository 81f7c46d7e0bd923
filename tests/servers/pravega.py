"""Pravega standalone for the suite, started and stopped through scripts/pravega-server.

Load as a pytest plugin (``pytest_plugins = [..., "servers.pravega"]`` in tests/conftest.py).

- ``pravega_server`` (session): a :class:`PravegaServer` on free loopback ports, in-memory
  storage, its state dir under the session's tmp dir; stopped by PID at the end.
- ``pravega_store``: a PravegaStore pointed at it (the ``store`` fixture's "pravega"
  param). Tests use unique scope names (uuid); the server is per session and in memory,
  so nothing outlives the run.

Never skipped: if Maven, Java 17 or the server fail, the fixture fails with the server's
log tail. ``SB_TEST_PRAVEGA_CONTROLLER=tcp://127.0.0.1:PORT`` reuses a running server
instead (a developer convenience; CI does not set it).
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from support import free_ports

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "pravega-server"


@dataclass
class PravegaServer:
    controller: str
    home: Path | None
    env: dict

    def run(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["bash", str(SCRIPT), *args], env=self.env, capture_output=True, text=True, timeout=timeout, check=check
        )

    @property
    def pid(self) -> int | None:
        if self.home is None:
            return None
        try:
            return int((self.home / "pravega.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def log_tail(self, n: int = 40) -> str:
        if self.home is None:
            return ""
        out = []
        for name in ("pravega.out", "pravega.log"):
            p = self.home / name
            if p.exists():
                out += p.read_text(errors="replace").splitlines()[-n:]
        return "\n".join(out)


@pytest.fixture(scope="session")
def pravega_server(tmp_path_factory):
    reuse = os.environ.get("SB_TEST_PRAVEGA_CONTROLLER")
    if reuse:
        yield PravegaServer(controller=reuse, home=None, env=dict(os.environ))
        return
    home = tmp_path_factory.mktemp("pravega")
    controller, segstore, zk, rest, admin, ssrest = free_ports(6)
    env = dict(
        os.environ,
        PRAVEGA_HOME=str(home),
        PRAVEGA_CONTROLLER_PORT=str(controller),
        PRAVEGA_SEGMENTSTORE_PORT=str(segstore),
        PRAVEGA_ZK_PORT=str(zk),
        PRAVEGA_REST_PORT=str(rest),
        PRAVEGA_ADMIN_PORT=str(admin),
        PRAVEGA_SEGMENTSTORE_REST_PORT=str(ssrest),
    )
    # the default home keeps the resolved classpath: reuse it instead of asking Maven again
    cached = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "stream-backend" / "pravega" / "classpath"
    if cached.exists():
        (home / "classpath").write_text(cached.read_text())
    server = PravegaServer(controller=f"tcp://127.0.0.1:{controller}", home=home, env=env)
    r = server.run("start", check=False)
    if r.returncode != 0:
        server.run("stop", check=False)
        pytest.fail(f"Pravega standalone did not start:\n{r.stdout}\n{r.stderr}\n{server.log_tail()}", pytrace=False)
    try:
        yield server
    finally:
        server.run("stop", check=False)


@pytest.fixture
def pravega_store(pravega_server):
    from stream_backend.stores.pravega import PravegaStore

    s = PravegaStore(controller=pravega_server.controller, timeout=60)
    yield s
    s.close()


def drop_scope(store, scope: str) -> None:
    """Delete ``scope`` and every stream in it, if it exists (the standalone keeps all data
    in its heap, so tests leave nothing behind)."""
    if scope not in store.list_scopes():
        return
    for stream in store.list_streams(scope):
        store.delete_stream(scope, stream)
    store.delete_scope(scope)
