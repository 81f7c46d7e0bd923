"""The ``stream-backend`` command: a click group; commands live in one module per concern.

Every StreamBackendError becomes one line on stderr and its documented exit code
(docs/cli.md); nothing prints a traceback unless ``--debug`` is given.
"""

from __future__ import annotations

import sys

import click

from .. import __version__
from ..errors import StreamBackendError
from .common import StreamBackendGroup


EXIT_CODES = """\b
Exit codes (docs/cli.md):
  0 done  2 command-line syntax  3/4 verify --against: stream ahead of / behind the archive
  64 bad input  65 damaged data  66 not found  69 server unreachable  70 our bug
  73 exists / not ours / not empty  74 no space  75 paused or busy: run again  77 denied
"""


@click.group(cls=StreamBackendGroup, context_settings={"help_option_names": ["-h", "--help"]},
             epilog=EXIT_CODES)
@click.version_option(__version__, prog_name="stream-backend")
@click.option("--debug", is_flag=True, envvar="STREAM_BACKEND_DEBUG", help="Show tracebacks on errors.")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """Streams as files: browse, write, export to S3 and import back, resumably.

    \b
    Example:
      stream-backend create stream://demo/logs
      stream-backend write stream://demo/logs ./app.log
      stream-backend export stream://demo/logs file:///backups/logs
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


def _register() -> None:
    """Import the command modules; each adds its commands to ``main``."""
    import importlib

    for name in ("streams", "data", "transfer", "mount", "duplicity", "k8s", "serve", "version", "completion"):
        try:
            importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:  # a module not written yet, not a missing dependency
            if exc.name != f"{__name__}.{name}":
                raise


_register()

__all__ = ["main", "StreamBackendError"]

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
