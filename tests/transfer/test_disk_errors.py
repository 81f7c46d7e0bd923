"""Full and read-only disks under an archive or a store: one line naming the path and the
cause, and a code that says what a retry can do (74: no space, 77: read-only or denied),
never 69 ("endpoint unreachable", which the generated Jobs retry six times) or 1.

Each case runs the CLI in a user and mount namespace of its own (``unshare``) over a small
tmpfs: the host's mounts are untouched and no privilege is needed."""

from __future__ import annotations

import shlex
import subprocess

from support.transfer import CLI, cli_env, fill_stream, run_cli


def _in_namespace(setup: str, args: list[str], env) -> subprocess.CompletedProcess:
    cmd = f"{setup} && exec {shlex.join([CLI, *args])}"
    return subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", cmd],
                          env=env, capture_output=True, text=True, timeout=120)


def _one_line(p):
    lines = [line for line in p.stderr.splitlines() if line.strip() and not line.startswith("{")]
    assert len(lines) == 1 and lines[0].startswith("stream-backend: error: "), p.stderr
    return lines[0]


def _export_onto_tmpfs(tmp_path, local_store, size: str, *extra):
    disk = tmp_path / "disk"
    disk.mkdir()
    p = _in_namespace(f"mount -t tmpfs -o size={size} none {disk}",
                      ["export", "stream://dk/s", f"file://{disk}/arch", "--progress", "none", *extra],
                      cli_env(local_store.root))
    assert p.returncode == 74, p.stderr
    return p, disk


def test_archive_directory_without_room_is_refused_before_the_run(tmp_path, local_store):
    fill_stream(local_store, "dk", "s", segments=1, events=200, max_size=8000, seed=2)
    p, disk = _export_onto_tmpfs(tmp_path, local_store, "256k")
    line = _one_line(p)
    assert f"{disk}/arch" in line and "free" in line and "needs about" in line


def test_archive_disk_filling_up_mid_run(tmp_path, local_store):
    """Room for the planned payload, not for the framing and the manifests around it."""
    local_store.create_stream("dk", "s")
    with local_store.writer("dk", "s") as w:  # 1-byte events: framing is most of the archive
        for i in range(4000):
            w.append(b"x", None, segment=0)
    p, disk = _export_onto_tmpfs(tmp_path, local_store, "64k", "--object-size", "16KiB")
    assert "no space left on device" in _one_line(p) and str(disk) in p.stderr


def test_read_only_archive_directory(tmp_path, local_store):
    fill_stream(local_store, "dk", "s", segments=1, events=20, max_size=100)
    env = cli_env(local_store.root)
    ro = tmp_path / "ro"
    ro.mkdir()
    p = _in_namespace(f"mount --bind {ro} {ro} && mount -o remount,bind,ro {ro}",
                      ["export", "stream://dk/s", f"file://{ro}/arch", "--progress", "none"], env)
    assert p.returncode == 77, p.stderr
    assert "read-only file system" in _one_line(p) and str(ro) in p.stderr


def test_full_store_during_import(tmp_path, local_store):
    fill_stream(local_store, "dk", "s", segments=1, events=300, max_size=8000, seed=3)
    env = cli_env(local_store.root)
    archive = tmp_path / "arch"
    run_cli(["export", "stream://dk/s", f"file://{archive}", "--progress", "none"], env, check=0)
    store = tmp_path / "small-store"
    store.mkdir()
    p = _in_namespace(f"mount -t tmpfs -o size=256k none {store}",
                      ["import", f"file://{archive}", "stream://dk/back", "--root", str(store),
                       "--progress", "none"], env)
    assert p.returncode == 74, p.stderr
    assert "no space left on device" in _one_line(p)
