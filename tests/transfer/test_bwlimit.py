"""--bwlimit as the wire sees it: a proxy in front of SeaweedFS notes when each request's
bytes went through, and every window of the transfer carries the limit within 10 %,
with all parts in flight sharing it: every 10 s of a 1 GiB export at 20 MiB/s (52 s),
every 5 s of a 300 MiB import at 40 MiB/s."""

from __future__ import annotations

import pytest

from support.transfer import append_events, cli_env, done_line, listing, run_cli

pytestmark = pytest.mark.s3

MiB = 1 << 20


def _windows(carried, width: float, step: float = 0.25) -> list[tuple[float, float]]:
    """(start, bytes per second) of every ``width``-second window from the first to the
    last transfer, ``carried`` being (time, bytes) of each request that moved data."""
    times = [t for t, _ in carried]
    first, last = min(times), max(times)
    out, a = [], first
    while a + width <= last:
        out.append((a, sum(n for t, n in carried if a < t <= a + width) / width))
        a += step
    return out


@pytest.mark.parametrize("op, mib, limit, width", [("export", 1024, 20, 10.0), ("import", 300, 40, 5.0)])
def test_bwlimit_holds_the_rate_in_every_window(local_store, store_root, s3_bucket, fault_proxy, op, mib, limit,
                                                width):
    local_store.create_stream("demo", "src", segments=2)
    append_events(local_store, "demo", "src", mib, MiB, seed=2)
    proxy = fault_proxy(s3_bucket.server)
    archive = f"{s3_bucket.url}/bw"
    common = ["--part-size", "5MiB", "--parallel", "8"]
    export = ["export", "stream://demo/src", archive, "--object-size", "40MiB", *common]
    bw = ["--bwlimit", f"{limit}MiB"]
    if op == "export":
        done = done_line(run_cli(export + bw, cli_env(store_root, proxy.server), check=0).stdout)
        # an upload's bytes count when they left the client: a slow answer does not move them
        moved = [(c.received, c.sent) for c in proxy.carried if c.method in ("PUT", "POST") and c.sent > 64 << 10]
        assert done["complete"] and sum(n for _, n in moved) >= mib * MiB
    else:
        run_cli(export, cli_env(store_root, s3_bucket.server), check=0)
        run_cli(["import", archive, "stream://demo/copy", "--part-size", "5MiB", *bw],
                cli_env(store_root, proxy.server), check=0)
        assert listing(local_store, "demo", "copy") == listing(local_store, "demo", "src")
        moved = [(c.answered, c.got) for c in proxy.carried if c.method == "GET" and c.got > 64 << 10]
    windows = _windows(moved, width)
    assert len(windows) >= 8, windows  # the transfer outlasted the window by a few seconds at least
    rates = [r / (limit * MiB) for _, r in windows]
    # a limit caps: no window above it by 10 %, ever; below it only beside a server answer
    # slower than half a second (SeaweedFS holds one for about a second now and then; when
    # it is an object's last part, the export waits for it before the next object begins),
    # which must leave most windows to judge
    stalls = [(c.answered - c.took, c.answered) for c in proxy.carried if c.took > 0.5]
    held = [any(end > a and start < a + width for start, end in stalls) for a, _ in windows]
    print(f"{op} at {limit} MiB/s: {len(rates)} windows of {width:.0f} s, {min(rates) * limit:.2f}.."
          f"{max(rates) * limit:.2f} MiB/s; slowest server answers "
          f"{sorted(round(c.took, 2) for c in proxy.carried)[-4:]} s; {sum(held)} windows beside those over 0.5 s")
    assert max(rates) < 1.10, [round(r * limit, 1) for r in rates]
    assert len(windows) - sum(held) >= len(windows) // 3, stalls
    assert all(r > 0.90 for r, h in zip(rates, held) if not h), [round(r * limit, 1) for r in rates]


def test_bwlimit_takes_a_rate(local_store, store_root, s3_bucket):
    local_store.create_stream("demo", "src")
    env = cli_env(store_root, s3_bucket.server)
    run = run_cli(["export", "stream://demo/src", f"{s3_bucket.url}/x", "--bwlimit", "fast"], env, check=64)
    assert "--bwlimit" in run.stderr and "MiB" in run.stderr and "Traceback" not in run.stderr, run.stderr
    run = run_cli(["export", "stream://demo/src", f"{s3_bucket.url}/x", "--bwlimit", "0"], env, check=64)
    assert "--bwlimit" in run.stderr, run.stderr
