"""The --bwlimit token bucket, on a simulated clock: however requests arrive and from how
many threads, what it lets go never runs ahead of the rate (plus the burst it may save),
and a steady stream of requests goes at the rate, not below it."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_backend.transfer.targets.throttle import Bandwidth


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _release_times(rate, burst, arrivals):
    """Each request's (release time, size) when requests arrive ``(gap, size)`` apart;
    a waiting request does not hold the next one back (they come from other threads)."""
    clock = Clock()
    bw = Bandwidth(rate, burst, clock=clock, sleep=lambda s: None)
    out = []
    for gap, size in arrivals:
        clock.now += gap
        out.append((clock.now + bw.take(size), size))
    return out


@settings(max_examples=300, deadline=None)
@given(rate=st.floats(1e3, 1e9), burst_s=st.sampled_from([0.0, 0.1, 1.0]),
       arrivals=st.lists(st.tuples(st.floats(0, 5), st.integers(0, 64 << 20)), min_size=1, max_size=60))
def test_what_goes_never_outruns_the_rate(rate, burst_s, arrivals):
    burst = rate * burst_s
    released = sorted(_release_times(rate, burst, arrivals))
    start = 100.0
    for j, (t, _size) in enumerate(released):
        # everything released by time t: at most the burst plus what the rate allows since the start
        sent = sum(size for _t, size in released[: j + 1])
        assert sent <= burst + rate * (t - start) + 1e-6 * max(sent, 1) + 1


@settings(max_examples=200, deadline=None)
@given(rate=st.floats(1e3, 1e9), sizes=st.lists(st.integers(1, 16 << 20), min_size=2, max_size=60))
def test_requests_arriving_together_go_at_the_rate(rate, sizes):
    released = _release_times(rate, 0.0, [(0.0, s) for s in sizes])
    assert released[-1][0] - 100.0 == pytest.approx(sum(sizes) / rate, rel=1e-9)
    assert [t for t, _ in released] == sorted(t for t, _ in released)  # first come, first served


def test_an_idle_spell_saves_no_more_than_the_burst():
    clock = Clock()
    bw = Bandwidth(1000.0, burst=500.0, clock=clock, sleep=lambda s: None)
    clock.now += 3600
    assert bw.take(500) == 0.0
    assert bw.take(1000) == pytest.approx(1.0)


def test_a_rate_must_be_positive():
    with pytest.raises(ValueError):
        Bandwidth(0)
