"""``stream-backend duplicity ARGS...``: duplicity itself, with stream:// and pravega:// targets.

Everything after the command goes to duplicity unchanged (its exit codes too). The store
is configured by --root/--controller given *before* the duplicity action, or by the
env vars STREAM_BACKEND_ROOT / PRAVEGA_CONTROLLER_URI (duplicity has its own --timeout).
"""

from __future__ import annotations

import os

import click

from .. import settings
from . import main

if os.environ.get(settings.DUPLICITY_ENV) == "1":
    # A duplicity worker (--concurrency N) spawned from `stream-backend duplicity`
    # re-imports the main module and with it this one: register our schemes here too.
    from ..duplicity_backend import register as _register_duplicity

    _register_duplicity()


@main.command(
    context_settings={
        "ignore_unknown_options": True,
        "allow_interspersed_args": False,
        "help_option_names": ["--wrapper-help"],
    },
    add_help_option=True,
)
@click.option(
    "--root",
    envvar=settings.ROOT_ENV,
    default=None,
    help="Local store directory for stream:// targets [env STREAM_BACKEND_ROOT].",
)
@click.option(
    "--controller",
    envvar=settings.CONTROLLER_ENV,
    default=None,
    help="Pravega controller URI for pravega:// targets [env PRAVEGA_CONTROLLER_URI].",
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED, metavar="DUPLICITY_ARGS...")
def duplicity(root, controller, args):
    """Run duplicity with stream://SCOPE/STREAM and pravega://SCOPE/STREAM as backup targets.

    \b
    Options of this wrapper (--root, --controller, --wrapper-help) go before the
    duplicity action; everything else is passed to duplicity as is, and duplicity's
    exit code is returned. `stream-backend duplicity --help` shows duplicity's help.

    \b
    Examples:
      stream-backend duplicity full --no-encryption /data stream://backups/pv1
      stream-backend duplicity incr --no-encryption /data stream://backups/pv1
      stream-backend duplicity restore --no-encryption stream://backups/pv1 /restore
      stream-backend duplicity full --no-encryption /mnt/streams s3://bucket/streams \\
          --s3-endpoint-url http://127.0.0.1:8333
    """
    if root:
        os.environ[settings.ROOT_ENV] = root  # for duplicity's backend, in this process and its workers
    if controller:
        os.environ[settings.CONTROLLER_ENV] = controller
    from ..duplicity_backend import run_duplicity

    run_duplicity(list(args))
