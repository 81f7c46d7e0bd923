"""The admin guide's read-write block runs as written (it mounted one scope in the
foreground, so the next line never ran, then `mkdir`ed a scope inside a scope)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from support.mounting import CLI

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "admin-guide.md"


def _block(after: str) -> str:
    text = GUIDE.read_text()
    start = text.index("```sh\n", text.index(after)) + len("```sh\n")
    return text[start:text.index("```", start)]


def test_read_write_block_runs_as_written(mountdir, store_root, tmp_path):
    block = _block("### Read-write mounts")
    mnt = mountdir()
    script = block.replace("/mnt/streams", str(mnt)).replace("stream-backend ", f"{CLI} ")
    work = tmp_path / "work"
    work.mkdir()
    (work / "app.log").write_text("first line\n")
    (work / "more.log").write_text("second line\n")
    env = {**os.environ, "STREAM_BACKEND_ROOT": str(store_root)}
    p = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=work, env=env,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "one more line" in p.stdout.splitlines()  # the tail of what was appended
    assert not os.path.ismount(mnt)
    assert (store_root / "demo").is_dir() and not (store_root / "demo" / "applog").exists()
    assert re.search(r"stream-backend mount --background", block)


def _blocks() -> list[str]:
    return re.findall(r"^```(?:bash|sh)\n(.*?)^```", GUIDE.read_text(), re.M | re.S)


# run elsewhere or not runnable here, each for a reason
SKIP = {
    "export STREAM_BACKEND_ROOT=/data/store": "the settings block: its values are the test's own",
    "stream-backend mount stream:// /mnt/streams ": "foreground mounts: each blocks until Ctrl-C",
    "sudo -u backup": "needs a second local user",
    "--read-write stream:// /mnt/streams": "test_read_write_block_runs_as_written",
    "scripts/bench_mount.py": "a benchmark, run by tests/bench",
}


def test_admin_guide_tour(mountdir, store_root, tmp_path, s3_bucket, pravega_server):
    """Every other block of the admin guide, in the page's order, as one session of a
    backup admin: mounts, everyday tools on them, an archive mount, duplicity through a
    mount into S3 and back into streams, duplicity of a plain volume into S3 and into a
    stream target (local and Pravega)."""
    w = tmp_path / "w"
    for d in ("tmp", "backup", "restore", "pv"):
        (w / d).mkdir(parents=True)
    for i in range(5):
        (w / "pv" / f"file{i}.txt").write_text(f"volume file {i}\n" * (i + 1) * 100)
    mnt = {name: mountdir(name.strip("/").replace("/", "-")) for name in
           ("/mnt/streams", "/mnt/archive", "/mnt/apps", "/mnt/restored")}
    run_blocks = [b for b in _blocks() if not any(key in b for key in SKIP)]
    assert len(run_blocks) >= 9, len(run_blocks)
    # the background block's "use it" is the next blocks: its umount goes after the last of them
    bg = next(i for i, b in enumerate(run_blocks) if "mount --background stream:// /mnt/streams" in b)
    *lines, umount = run_blocks[bg].rstrip("\n").split("\n")
    assert umount.startswith("stream-backend umount /mnt/streams"), umount
    run_blocks[bg] = "\n".join(lines) + "\n"
    last = next(i for i, b in enumerate(run_blocks) if "stream-backend umount /mnt/archive" in b)
    run_blocks.insert(last + 1, umount + "\n")
    script = "\n".join(run_blocks)
    for path in ("/tmp/", "/backup/", "/restore/"):  # before the mount points, which live in /tmp
        script = script.replace(path, f"{w}{path}")
    for path, real in mnt.items():
        script = script.replace(path, str(real))
    script = (script.replace("/data/pv", str(w / "pv")).replace("/data/store", str(store_root))
                    .replace("s3://backups/", f"s3://{s3_bucket.name}/")
                    .replace("tcp://pravega:9090", pravega_server.controller)
                    .replace("stream-backend ", f"{CLI} "))
    setup = "\n".join([
        f"head -c $((112 << 20)) /dev/urandom | {CLI} write --create --event-size 1MiB stream://demo/logs -",
        f"{CLI} export stream://demo/logs s3://{s3_bucket.name}/logs --progress none",
        f"head -c 300000 /dev/urandom | {CLI} write --create stream://apps/orders -",
        f"{CLI} create --segments 2 stream://apps/clicks",
        *(f"head -c 5000 /dev/urandom | {CLI} write --event-size 1000 stream://apps/clicks/{n} -" for n in (0, 1)),
    ])
    env = {**os.environ, **s3_bucket.server.env, "STREAM_BACKEND_ROOT": str(store_root), "PASSPHRASE": "",
           "S3": s3_bucket.server.endpoint_url, "PRAVEGA_CONTROLLER_URI": pravega_server.controller}
    p = subprocess.run(["bash", "-euo", "pipefail", "-c", setup + "\n" + script], cwd=w, env=env,
                       capture_output=True, text=True, errors="replace", timeout=900)
    assert p.returncode == 0, f"exit {p.returncode}\n{p.stderr[-4000:]}"
    assert "identical" in p.stdout  # the volume restored from S3 equals the volume
    assert (w / "tmp" / "piece").stat().st_size == 10 << 20  # dd skip=100 count=10 read 10 MiB
    assert not any(os.path.ismount(m) for m in mnt.values())
    from stream_backend.stores.local import LocalStore

    s = LocalStore(root=str(store_root))
    try:
        assert b"".join(e.payload for e in s.read_events("restored", "orders", 0)) == \
            b"".join(e.payload for e in s.read_events("apps", "orders", 0))
        for n in (0, 1):  # a file view restores the bytes of each segment (events are re-cut)
            assert b"".join(e.payload for e in s.read_events("restored", "clicks", n)) == \
                b"".join(e.payload for e in s.read_events("apps", "clicks", n))
    finally:
        s.close()
