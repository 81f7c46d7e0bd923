"""``stream-backend mount`` / ``umount``: a store, a scope or an archive as a directory.

Foreground by default: the mount lives exactly as long as the command (Ctrl-C, SIGTERM
and even SIGKILL unmount it). ``--background`` starts the same command detached, waits
until the mount is up, prints how to unmount, and returns.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time

import click

from ..archive.layout import IDENTITY_KEY
from ..errors import NotFoundError, StreamBackendError, UsageError
from . import main
from .common import open_store_for, sse_c_key, store_options


def _parse_targets(args: tuple[str, ...], archive: str | None) -> tuple[str, str]:
    if archive:
        if len(args) != 1:
            raise UsageError("with --archive give exactly one argument: MOUNTPOINT")
        return archive, args[0]
    if len(args) != 2:
        raise UsageError("expected URL MOUNTPOINT (or --archive ARCHIVE_URL MOUNTPOINT)")
    return args[0], args[1]


def _archive_operations(url: str, endpoint_url: str | None, sse_c_key_file: str | None = None):
    """Generic read-only operations over the archive filesystem (protocol sbarchive)."""
    from ..fs.archivefs import ArchiveFileSystem
    from ..fs.fuse import FileSystemOperations
    from ..urls import redact

    target = url.split("::", 1)[1] if url.startswith("sbarchive::") else url
    if target.startswith("sbarchive://"):
        raise UsageError(f"give the archive's own URL: sbarchive::s3://BUCKET/PREFIX, not {url!r}")
    from ..transfer.targets import S3_SCHEMES, S3Options, open_target, translate_error

    s3 = target.split("://", 1)[0] in S3_SCHEMES
    if sse_c_key_file and not s3:
        raise UsageError(f"--sse-c-key-file is an S3 setting; {redact(target)} is not in S3")
    key = sse_c_key(sse_c_key_file) if sse_c_key_file else None
    # the archive's URL, endpoint and credentials checked the way export checks them:
    # one-line errors with their codes (69 unreachable, 77 denied, 66 missing), never 70
    given = s3 and (endpoint_url or key is not None)
    probe = open_target(target, S3Options(endpoint_url=endpoint_url, sse_c_key=key) if given else None)
    probe.check_access()
    options = {}
    if endpoint_url and s3:
        options["endpoint_url"] = endpoint_url
    if key is not None:
        probe.read(IDENTITY_KEY)  # S3 refuses a wrong key here (77), not at the first read
        options.update(probe.options.fs_options())
    try:
        fs = ArchiveFileSystem(fo=target, target_options=options, skip_instance_cache=True)
    except StreamBackendError:
        raise
    except FileNotFoundError as exc:
        raise NotFoundError(f"archive not found: {target} ({exc})") from None
    except (ImportError, ValueError) as exc:
        raise UsageError(f"cannot open archive {redact(target)!r}: {exc}") from None
    except Exception as exc:  # s3fs/botocore: the one error table
        raise translate_error(exc, redact(target)) from None
    return FileSystemOperations(fs)


def _background(argv: list[str], mountpoint: str, wait: float) -> None:
    """Re-run this command in the foreground, detached; return once it is mounted."""
    log = tempfile.NamedTemporaryFile(prefix="stream-backend-mount-", suffix=".log", delete=False)
    entry = "import sys; from stream_backend.cli import main; sys.exit(main())"
    cmd = [sys.executable, "-c", entry, *argv]
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        start_new_session=True,
        close_fds=True,
    )
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if os.path.ismount(mountpoint):
            os.unlink(log.name)  # the mount is up; nothing to report (no litter in /tmp)
            click.echo(
                f"mounted at {mountpoint} (pid {proc.pid}); unmount with: "
                f"stream-backend umount {mountpoint}   (or fusermount -u {mountpoint})"
            )
            return
        rc = proc.poll()
        if rc is not None:
            log.seek(0)
            msg = open(log.name, encoding="utf-8", errors="replace").read().strip().splitlines()
            os.unlink(log.name)
            line = msg[-1] if msg else f"exit code {rc}"
            if line.startswith("stream-backend: error: "):
                line = line.removeprefix("stream-backend: error: ")
            err = StreamBackendError(line)
            err.exit_code = rc or 1
            raise err
        time.sleep(0.05)
    proc.terminate()
    raise StreamBackendError(
        f"mount at {mountpoint} did not come up within {wait:.0f}s (log: {log.name})"
    )


@main.command(context_settings={"ignore_unknown_options": False})
@click.argument("args", nargs=-1, metavar="URL MOUNTPOINT")
@click.option(
    "--archive",
    "archive",
    metavar="ARCHIVE_URL",
    help="Mount an archive (any fsspec URL, e.g. s3://bucket/prefix) read-only.",
)
@click.option(
    "--read-write",
    is_flag=True,
    help="Allow creating streams and appending (never rewriting) through the mount.",
)
@click.option(
    "--background",
    is_flag=True,
    help="Return once mounted; unmount later with `stream-backend umount MOUNTPOINT`.",
)
@click.option(
    "--attr-timeout",
    type=float,
    default=1.0,
    show_default=True,
    help="Seconds the kernel may cache sizes/times (appends show up after at most this).",
)
@click.option(
    "--endpoint-url",
    envvar="AWS_ENDPOINT_URL",
    default=None,
    help="S3 endpoint for archive mounts [env AWS_ENDPOINT_URL].",
)
@click.option(
    "--allow-other",
    is_flag=True,
    help="Let other users (e.g. a backup user) use the mount; permissions still apply "
    "(non-root needs user_allow_other in /etc/fuse.conf).",
)
@click.option(
    "--sse-c-key-file",
    default=None,
    metavar="FILE",
    help="An archive encrypted with a customer key (SSE-C): the key's file, as export was given.",
)
@click.option("--fuse-debug", is_flag=True, hidden=True)
@store_options
@click.pass_context
def mount(
    ctx,
    args,
    archive,
    read_write,
    background,
    attr_timeout,
    endpoint_url,
    allow_other,
    sse_c_key_file,
    fuse_debug,
    root,
    controller,
    timeout,
):
    """Mount a store or scope (stream://[SCOPE], pravega://[SCOPE]) or an archive at MOUNTPOINT.

    \b
    Scopes are directories; a single-segment stream is a file (its events' payloads
    concatenated); a multi-segment stream is a directory with one file per segment.
    Read-only unless --read-write. Runs in the foreground until Ctrl-C / SIGTERM or
    `stream-backend umount MOUNTPOINT`.

    \b
    Examples:
      stream-backend mount stream://demo /mnt/demo
      stream-backend mount --background stream:// /mnt/streams
      stream-backend mount sbarchive::s3://backups/logs /mnt/archive
      stream-backend umount /mnt/streams
    """
    url, mountpoint = _parse_targets(args, archive)
    mountpoint = os.path.abspath(mountpoint)
    if _mounted(mountpoint):  # also a stale mount, which is no directory any more
        raise UsageError(
            f"{mountpoint!r} is already a mount point (stale? `stream-backend umount {mountpoint}`)"
        )
    if not os.path.isdir(mountpoint):
        raise NotFoundError(f"mount point {mountpoint!r} is not a directory")
    is_archive = bool(archive) or url.startswith("sbarchive::")
    if is_archive and read_write:
        raise UsageError("archives are mounted read-only; drop --read-write")

    if background:
        argv = ["mount", "--attr-timeout", str(attr_timeout), "--timeout", str(timeout)]
        if archive:
            argv += ["--archive", archive]
        if read_write:
            argv.append("--read-write")
        if allow_other:
            argv.append("--allow-other")
        for flag, value in (
            ("--endpoint-url", endpoint_url),
            ("--sse-c-key-file", os.path.abspath(sse_c_key_file) if sse_c_key_file else None),
            ("--root", root),
            ("--controller", controller),
        ):
            if value:
                argv += [flag, value]
        argv += ["--", *([] if archive else [url]), mountpoint]
        _background(argv, mountpoint, wait=max(timeout, 10.0))
        return

    from ..fs.fuse import FileSystemOperations
    from ..fs.fuse_mount import run_mount
    from ..fs.streamfs import filesystem_over

    if is_archive:
        ops = _archive_operations(url, endpoint_url, sse_c_key_file)
        run_mount(
            ops,
            mountpoint,
            read_only=True,
            fsname=f"sbarchive:{url.split('::')[-1]}",
            debug=fuse_debug,
            attr_timeout=attr_timeout,
            allow_other=allow_other,
        )
        return

    from ..urls import parse_stream_url

    parsed = parse_stream_url(url, need="store")
    if parsed.stream:
        raise UsageError(
            f"mount a store or a scope ({parsed.protocol}://[SCOPE]), not a stream: {url}"
        )
    store = open_store_for(parsed, root=root, controller=controller, timeout=timeout)
    try:
        if parsed.scope and parsed.scope not in store.list_scopes():
            raise NotFoundError(f"scope not found: {parsed.scope}")
        ops = FileSystemOperations(filesystem_over(store), root=parsed.scope or "",
                                   read_write=read_write, cache_ttl=min(attr_timeout, 1.0))
        run_mount(
            ops,
            mountpoint,
            read_only=not read_write,
            fsname=str(parsed),
            debug=fuse_debug,
            attr_timeout=attr_timeout,
            allow_other=allow_other,
        )
    finally:
        store.close()


def _mounted(mountpoint: str) -> bool:
    """Mounted, per /proc/self/mountinfo: unlike os.path.ismount this also sees a stale
    FUSE mount ("Transport endpoint is not connected") whose process died."""
    from ..fs.fuse_mount import mount_device

    return os.path.ismount(mountpoint) or mount_device(mountpoint) is not None


def unmount(mountpoint: str) -> None:
    """Unmount a FUSE mount: fusermount3/fusermount -u, umount, and for a stale mount
    (its process is gone) a lazy unmount (-z)."""
    mountpoint = os.path.abspath(mountpoint)
    if not _mounted(mountpoint):
        raise UsageError(f"{mountpoint!r} is not a mount point")
    errors = []
    tools = (
        ["fusermount3", "-u"],
        ["fusermount", "-u"],
        ["umount"],
        ["fusermount3", "-u", "-z"],
        ["fusermount", "-u", "-z"],
        ["umount", "-l"],
    )
    for tool in tools:
        if shutil.which(tool[0]) is None:
            continue
        res = subprocess.run([*tool, mountpoint], capture_output=True, text=True)
        if res.returncode == 0:
            break
        errors.append(res.stderr.strip() or f"{tool[0]} exit {res.returncode}")
    else:
        why = "; ".join(dict.fromkeys(errors)) or "no fusermount/umount found"
        raise StreamBackendError(f"could not unmount {mountpoint}: {why}")
    deadline = time.monotonic() + 10
    while _mounted(mountpoint) and time.monotonic() < deadline:
        time.sleep(0.05)


@main.command()
@click.argument("mountpoint", type=click.Path())
def umount(mountpoint):
    """Unmount a mount made by `stream-backend mount` (same as fusermount -u MOUNTPOINT).

    \b
    Example:
      stream-backend umount /mnt/streams
    """
    unmount(mountpoint)
    click.echo(f"unmounted {os.path.abspath(mountpoint)}")
