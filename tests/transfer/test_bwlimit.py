"""--bwlimit as the wire sees it: a proxy in front of SeaweedFS notes when each request's
bytes went through, and every window of the transfer carries the limit within 10 %,
with all parts in flight sharing it: every 10 s of a 1 GiB export at 20 MiB/s (52 s),
every 5 s of a 300 MiB import at 40 MiB/s."""

from __future__ import annotations

import pytest

from support.transfer import append_events, cli_env, done_line, listing, run_cli

pytestmark = pytest.mark.s3

MiB = 1 << 20


def _window_rates(carried, width: float, step: float = 0.25) -> list[float]:
    """Bytes per second of every ``width``-second window from the first to the last
    transfer, ``carried`` being (time, bytes) of each request that moved data."""
    times = [t for t, _ in carried]
    first, last = min(times), max(times)
    rates, a = [], first
    while a + width <= last:
        rates.append(sum(n for t, n in carried if a < t <= a + width) / width)
        a += step
    return rates


@pytest.mark.parametrize("op, mib, limit, width", [("export", 1024, 20, 10.0), ("import", 300, 40, 5.0)])
def test_bwlimit_holds_the_rate_in_every_window(local_store, store_root, s3_bucket, fault_proxy, op, mib, limit,
                                                width):
    local_store.create_stream("demo", "src", segments=2)
    append_events(local_store, "demo", "src", mib, MiB, seed=2)
    proxy = fault_proxy(s3_bucket.server)
    archive = f"{s3_bucket.url}/bw"
    common = ["--part-size", "5MiB", "--parallel", "4"]
    export = ["export", "stream://demo/src", archive, "--object-size", "40MiB", *common]
    bw = ["--bwlimit", f"{limit}MiB"]
    if op == "export":
        done = done_line(run_cli(export + bw, cli_env(store_root, proxy.server), check=0).stdout)
        moved = [(t, sent) for t, method, sent, _ in proxy.carried if method in ("PUT", "POST") and sent > 64 << 10]
        assert done["complete"] and sum(n for _, n in moved) >= mib * MiB
    else:
        run_cli(export, cli_env(store_root, s3_bucket.server), check=0)
        run_cli(["import", archive, "stream://demo/copy", "--part-size", "5MiB", *bw],
                cli_env(store_root, proxy.server), check=0)
        assert listing(local_store, "demo", "copy") == listing(local_store, "demo", "src")
        moved = [(t, got) for t, method, _, got in proxy.carried if method == "GET" and got > 64 << 10]
    rates = _window_rates(moved, width)
    assert len(rates) >= 8, rates  # the transfer outlasted the window by a few seconds at least
    worst = max(abs(r / (limit * MiB) - 1) for r in rates)
    print(f"{op} at {limit} MiB/s: {len(rates)} windows of {width:.0f} s, "
          f"{min(rates) / MiB:.2f}..{max(rates) / MiB:.2f} MiB/s, worst {100 * worst:.1f} % off")
    assert worst < 0.10, [round(r / MiB, 1) for r in rates]


def test_bwlimit_takes_a_rate(local_store, store_root, s3_bucket):
    local_store.create_stream("demo", "src")
    env = cli_env(store_root, s3_bucket.server)
    run = run_cli(["export", "stream://demo/src", f"{s3_bucket.url}/x", "--bwlimit", "fast"], env, check=64)
    assert "--bwlimit" in run.stderr and "MiB" in run.stderr and "Traceback" not in run.stderr, run.stderr
    run = run_cli(["export", "stream://demo/src", f"{s3_bucket.url}/x", "--bwlimit", "0"], env, check=64)
    assert "--bwlimit" in run.stderr, run.stderr
