"""Run scripts/pravega/PravegaTool.java: the official Java client shapes a stream (routing
keys, scaling through the controller, seal) so the tests read streams stream-backend did
not write. Java 17 runs the source file directly, with the standalone's classpath."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

TOOL = Path(__file__).resolve().parents[2] / "scripts" / "pravega" / "PravegaTool.java"


def _classpath(server) -> str:
    cands = []
    if server.home is not None:
        cands.append(Path(server.home) / "classpath")
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "stream-backend" / "pravega" / "classpath"
    cands.append(cache)
    for c in cands:
        if c.exists():
            return c.read_text().strip()
    raise AssertionError("no Pravega classpath: run scripts/pravega-server fetch")


QUIET = """<configuration><root level="ERROR"/></configuration>"""


def java_tool(server, *commands: list[str], timeout: float = 300) -> str:
    """Run the commands (each a list of words) in one JVM; return its stdout."""
    args: list[str] = []
    for c in commands:
        args += [*map(str, c), ";"]
    with tempfile.NamedTemporaryFile("w", suffix=".xml") as quiet:
        quiet.write(QUIET)
        quiet.flush()
        p = subprocess.run(
            ["java", f"-Dlogback.configurationFile={quiet.name}", "-cp", _classpath(server), str(TOOL),
             server.controller, *args],
            capture_output=True, text=True, timeout=timeout,
        )
    assert p.returncode == 0, f"PravegaTool {commands} failed:\n{p.stdout[-2000:]}\n{p.stderr[-4000:]}"
    return p.stdout
