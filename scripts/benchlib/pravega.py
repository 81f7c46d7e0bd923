"""Pravega standalone for case 7, through scripts/pravega-server, in a state dir of ours."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time

from .util import free_ports, is_loopback, listening_addresses


class PravegaServer:
    def __init__(self, repo: str, home: str):
        self.script = os.path.join(repo, "scripts", "pravega-server")
        self.home = home
        ports = free_ports(5)
        self.env = dict(
            os.environ,
            PRAVEGA_HOME=home,
            PRAVEGA_CONTROLLER_PORT=str(ports[0]),
            PRAVEGA_SEGMENTSTORE_PORT=str(ports[1]),
            PRAVEGA_ZK_PORT=str(ports[2]),
            PRAVEGA_REST_PORT=str(ports[3]),
            PRAVEGA_ADMIN_PORT=str(ports[4]),
        )
        self.controller = f"tcp://127.0.0.1:{ports[0]}"
        self.pid = None
        self.listeners: list[str] = []

    def start(self) -> None:
        os.makedirs(self.home, exist_ok=True)
        # reuse a classpath another run already resolved (saves a Maven run)
        default = os.path.join(
            os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")),
            "stream-backend",
            "pravega",
            "classpath",
        )
        if os.path.exists(default) and not os.path.exists(os.path.join(self.home, "classpath")):
            shutil.copy(default, os.path.join(self.home, "classpath"))
        res = subprocess.run(
            ["bash", self.script, "start"],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if res.returncode != 0:
            raise RuntimeError(
                "pravega-server start failed: "
                + " | ".join((res.stderr or res.stdout).strip().splitlines()[-5:])
            )
        with open(os.path.join(self.home, "pravega.pid")) as f:
            self.pid = int(f.read().strip())
        # the sandbox prints "running" before the controller's gRPC port listens
        port = int(self.controller.rsplit(":", 1)[1])
        deadline = time.monotonic() + 180
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"Pravega controller port {port} not listening after 180 s")
                time.sleep(0.5)
        self.listeners = self._check_loopback()

    def _check_loopback(self) -> list[str]:
        addrs = listening_addresses([self.pid])
        bad = [a for a in addrs if not is_loopback(a)]
        if bad:
            self.stop()
            raise RuntimeError(f"Pravega bound non-loopback addresses {bad}; stopped it")
        return sorted(addrs)

    def stop(self) -> None:
        subprocess.run(
            ["bash", self.script, "stop"], env=self.env, capture_output=True, text=True, timeout=120
        )
