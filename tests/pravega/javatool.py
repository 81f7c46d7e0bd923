"""Run scripts/pravega/PravegaTool.java: the official Java client shapes a stream (routing
keys, scaling through the controller, seal) so the tests read streams stream-backend did
not write. It is compiled once (javac, Java 17) against the standalone's classpath."""

from __future__ import annotations

import hashlib
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


def _compiled(cp: str) -> str:
    """The tool compiled once per version of its source (``java File.java`` would compile it
    again on every call, seconds each)."""
    digest = hashlib.sha256(TOOL.read_bytes()).hexdigest()[:16]
    out = Path(tempfile.gettempdir()) / f"sb-pravegatool-{digest}"
    if not (out / "PravegaTool.class").exists():
        tmp = Path(tempfile.mkdtemp(dir=tempfile.gettempdir(), prefix="sb-pravegatool-"))
        p = subprocess.run(["javac", "-nowarn", "-cp", cp, "-d", str(tmp), str(TOOL)], capture_output=True, text=True,
                           timeout=300)
        assert p.returncode == 0, f"javac {TOOL} failed:\n{p.stderr[-4000:]}"
        try:
            tmp.rename(out)
        except OSError:  # another test process compiled it meanwhile
            pass
    return str(out)


def java_tool(server, *commands: list[str], timeout: float = 300) -> str:
    """Run the commands (each a list of words) in one JVM; return its stdout."""
    cp = _classpath(server)
    args: list[str] = []
    for c in commands:
        args += [*map(str, c), ";"]
    with tempfile.NamedTemporaryFile("w", suffix=".xml") as quiet:
        quiet.write(QUIET)
        quiet.flush()
        p = subprocess.run(
            ["java", f"-Dlogback.configurationFile={quiet.name}", "-cp", f"{_compiled(cp)}:{cp}", "PravegaTool",
             server.controller, *args],
            capture_output=True, text=True, timeout=timeout,
        )
    assert p.returncode == 0, f"PravegaTool {commands} failed:\n{p.stdout[-2000:]}\n{p.stderr[-4000:]}"
    return p.stdout
