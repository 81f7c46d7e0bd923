"""Reader-group positions through the official Java client (java/ReaderGroups.java).

A Pravega reader group keeps its state in a Java-format state-synchronizer stream
(``_RG<name>``) that only the Java client reads and writes; its public API
(``ReaderGroup.getStreamCuts``, ``ReaderGroupConfig.stream(stream, cut)``) is the one
stable way in. So this needs Java 17+ and the client's jars, resolved once:

    python -m stream_backend.stores.pravega.groups fetch

(Maven, into the user's cache) or named by STREAM_BACKEND_PRAVEGA_CLASSPATH. Nothing else
in stream-backend needs Java.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from ... import settings
from ...errors import AlreadyExistsError, NotFoundError, StreamBackendError, UnavailableError, UsageError

CLIENT_VERSION = "0.13.0"
_HERE = Path(__file__).resolve().parent / "java"
SOURCE = _HERE / "ReaderGroups.java"
POM = _HERE / "pom.xml"
QUIET = _HERE / "logback-quiet.xml"
SETUP = (f"install Java 17+ and Maven and run `{Path(sys.executable).name} -m stream_backend.stores.pravega.groups "
         f"fetch`, or set {settings.PRAVEGA_CLASSPATH_ENV}")


def _cache_file() -> Path:
    return Path(settings.cache_dir()) / "stream-backend" / "pravega-java-client" / CLIENT_VERSION / "classpath"


def classpath() -> str:
    cp = settings.pravega_classpath()
    if cp:
        return cp
    f = _cache_file()
    if f.exists():
        return f.read_text().strip()
    raise UsageError(f"reader-group positions need the Pravega Java client: {SETUP}")


def fetch() -> Path:
    """Resolve the client's jars with Maven (offline first) and cache the classpath."""
    mvn = shutil.which("mvn")
    if mvn is None:
        raise UsageError("mvn not found: install Maven (and Java 17+) to fetch the Pravega Java client")
    out = _cache_file()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    base = [mvn, "-q", "-B", "-f", str(POM), "dependency:build-classpath", f"-Dmdep.outputFile={tmp}"]
    for offline in (True, False):
        p = subprocess.run(base[:1] + (["-o"] if offline else []) + base[1:], capture_output=True, text=True)
        if p.returncode == 0 and tmp.exists() and tmp.stat().st_size:
            break
    else:
        raise UnavailableError(f"Maven could not resolve io.pravega:pravega-client:{CLIENT_VERSION}: "
                               f"{(p.stdout + p.stderr).strip().splitlines()[-1:]}")
    missing = [j for j in tmp.read_text().strip().split(os.pathsep) if j and not os.path.exists(j)]
    if missing:
        raise UnavailableError(f"Maven's classpath lists missing jars: {missing[:3]}")
    tmp.replace(out)
    return out


def check_ready() -> None:
    """UsageError now, before any work, if Java or the client's jars are missing."""
    if shutil.which("java") is None:
        raise UsageError(f"reader-group positions need Java 17+ on PATH: {SETUP}")
    classpath()


def _run(controller: str, *args: str, timeout: float) -> dict:
    check_ready()
    java = shutil.which("java")
    cmd = [java, f"-Dlogback.configurationFile={QUIET}", "-cp", classpath(), str(SOURCE), controller, *args]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise UnavailableError(f"the Java client did not answer within {timeout:g}s ({args[0]} reader group)") from None
    err = (p.stderr.strip().splitlines() or ["(no message)"])[-1]
    if p.returncode == 66:
        raise NotFoundError(err)
    if p.returncode == 73:
        raise AlreadyExistsError(err)
    if p.returncode != 0:
        raise StreamBackendError(f"the Java client failed ({args[0]} reader group): {err}")
    try:
        return json.loads(p.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise StreamBackendError(f"the Java client printed no answer ({args[0]} reader group)") from None


def group_position(controller: str, scope: str, group: str, stream: str, timeout: float = 120) -> dict[int, int]:
    """Segment id -> offset where ``scope/group`` next reads ``scope/stream``: exact for a
    group whose readers are offline or have just checkpointed (Pravega updates a reader's
    position in the group's state then), else as of its readers' last reports."""
    doc = _run(controller, "position", scope, group, timeout=timeout)
    streams = doc.get("streams", {})
    cut = streams.get(f"{scope}/{stream}")
    if cut is None:
        raise NotFoundError(f"reader group {scope}/{group} does not read {scope}/{stream} "
                            f"(it reads {', '.join(sorted(streams)) or 'nothing'})")
    return {int(k): int(v) for k, v in cut.items()}


def create_group(controller: str, scope: str, group: str, stream: str, cut: dict[int, int],
                 timeout: float = 120) -> None:
    """Create ``scope/group`` reading ``scope/stream`` from ``cut`` (segment id -> offset);
    AlreadyExistsError if the group exists."""
    _run(controller, "create", scope, group, f"{scope}/{stream}", *(f"{k}={v}" for k, v in sorted(cut.items())),
         timeout=timeout)


def main(argv: list[str]) -> int:
    if argv != ["fetch"]:
        print(f"usage: {Path(sys.executable).name} -m stream_backend.stores.pravega.groups fetch", file=sys.stderr)
        return 2
    try:
        print(f"Pravega Java client {CLIENT_VERSION}: classpath in {fetch()}")
    except StreamBackendError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
