"""--bwlimit: one token bucket for every request of a transfer, whatever runs at once."""

from __future__ import annotations

import threading
import time


class Bandwidth:
    """Lets ``rate`` bytes per second through, shared by all threads.

    Each request takes its bytes before it goes; a request the bucket cannot cover waits
    until it can, and the next waits behind it (the bucket goes into debt), so parts in
    flight are spaced evenly instead of sent together. The bucket starts empty and saves
    at most ``burst`` bytes while idle: a short stall is made up for, a long quiet spell
    is not followed by a rush.
    """

    def __init__(self, rate: float, burst: float = 0.0, clock=time.monotonic, sleep=time.sleep):
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate, self.burst = float(rate), float(burst)
        self._clock, self._sleep = clock, sleep
        self._lock = threading.Lock()
        self._tokens = 0.0
        self._last = clock()

    def take(self, nbytes: int) -> float:
        """Wait until ``nbytes`` may go; returns the seconds waited."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate) - nbytes
            self._last = now
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
        if wait > 0:
            self._sleep(wait)
        return wait
