"""``stream-backend version``: what a bug report or an upgrade plan needs to know, the
formats this build reads and writes and which optional parts are installed."""

from __future__ import annotations

import json
import platform
import shutil
from importlib import metadata

import click

from .. import __version__
from . import main


def _dist(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _fuse() -> str | None:
    """mfusepy's version if it imports, i.e. if libfuse loads too."""
    try:
        import mfusepy  # noqa: F401
    except (ImportError, OSError):
        return None
    return _dist("mfusepy")


def _java_groups() -> str | None:
    """The Pravega Java client's version when java and its cached classpath are there
    (export/import --reader-group)."""
    from ..errors import UsageError
    from ..stores.pravega.groups import CLIENT_VERSION, classpath

    try:
        classpath()
    except UsageError:
        return None
    return CLIENT_VERSION if shutil.which("java") else None


def _both(a: str, b: str) -> str | None:
    va, vb = _dist(a), _dist(b)
    return f"{a} {va}, {b} {vb}" if va and vb else None


def describe() -> dict:
    from ..archive.format import FORMAT_VERSION, SHAPE_VERSION
    from ..stores.local.files import FORMAT_VERSION as STORE_VERSION

    parts = {
        "pravega": _dist("sb_pravega"),
        "pravega-reader-groups": _java_groups(),
        "fuse": _fuse(),
        "duplicity": _dist("duplicity"),
        "serve": _both("fastapi", "uvicorn"),
        "operator": _both("kopf", "kubernetes"),
    }
    return {"version": __version__, "python": platform.python_version(),
            "formats": {"archive": {"reads": list(range(1, FORMAT_VERSION + 1)), "writes": [1, SHAPE_VERSION]},
                        "local-store": STORE_VERSION},
            "parts": parts}


@main.command("version")
@click.option("--json", "as_json", is_flag=True, help="One JSON document.")
def version_cmd(as_json):
    """The version, the archive and store formats it reads and writes, and which optional
    parts are installed (an absent part names the extra that brings it).

    \b
    Example:
      stream-backend version
      stream-backend version --json | jq .parts
    """
    d = describe()
    if as_json:
        click.echo(json.dumps(d, indent=1))
        return
    f = d["formats"]
    click.echo(f"stream-backend {d['version']} (Python {d['python']})")
    click.echo(f"archive format: reads {', '.join(map(str, f['archive']['reads']))}; writes 1 for fixed streams, "
               f"{f['archive']['writes'][-1]} for archives of streams that scaled (a segment graph)")
    click.echo(f"local store format: {f['local-store']}")
    extras = {"pravega": "scripts/native-build (native/)", "pravega-reader-groups":
              "java + python -m stream_backend.stores.pravega.groups fetch", "fuse": "pip extra 'fuse' + libfuse",
              "duplicity": "pip extra 'duplicity'", "serve": "pip extra 'serve'", "operator": "pip extra 'operator'"}
    for name, value in d["parts"].items():
        click.echo(f"  {name:<22} {value or 'not installed: ' + extras[name]}")
