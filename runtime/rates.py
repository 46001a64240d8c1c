"""Rate limits as token buckets: pure arithmetic over a clock the caller reads.

A bucket holds at most ``burst`` tokens and gains ``rate`` tokens per second; each admitted
request takes one. Nothing here reads a clock or sleeps: every method takes ``now`` (seconds, any
monotonic or wall clock, as long as one bucket always gets the same one), so each rule is tested
with plain numbers.

- :class:`TokenBucket` for one stream of requests: :meth:`~TokenBucket.try_take` answers at once
  (refuse when empty), :meth:`~TokenBucket.reserve` queues fairly (the caller sleeps the delay it
  returns, then goes ahead).
- :class:`KeyedBuckets` for one bucket per key (per peer, per job), bounded in memory: the key
  used least recently is forgotten first.
"""

from __future__ import annotations

import math
from collections import OrderedDict

__all__ = ["KeyedBuckets", "TokenBucket"]


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` kept; full at ``now``."""

    __slots__ = ("_last", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        if not (rate > 0 and math.isfinite(rate)) or not (burst >= 1 and math.isfinite(burst)):
            raise ValueError(f"a token bucket needs rate > 0 and burst >= 1, not {rate}/{burst}")
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._last = now

    def _refill(self, now: float) -> None:
        if now > self._last:
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now

    def tokens(self, now: float) -> float:
        """Tokens available at ``now`` (negative while reservations are queued)."""
        self._refill(now)
        return self._tokens

    def try_take(self, now: float) -> bool:
        """Take a token if one is there; False (and nothing taken) if the bucket is empty."""
        self._refill(now)
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False

    def reserve(self, now: float) -> float:
        """Take a token, borrowing from the future if need be: the seconds to wait before
        using it (0 when one was there). Callers served in the order they reserve."""
        self._refill(now)
        self._tokens -= 1
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate


class KeyedBuckets:
    """One :class:`TokenBucket` per key, created full on first use; at most ``capacity`` keys
    are remembered (the least recently used one is forgotten, and comes back full)."""

    __slots__ = ("_buckets", "burst", "capacity", "rate")

    def __init__(self, rate: float, burst: float, *, capacity: int = 4096) -> None:
        TokenBucket(rate, burst, 0.0)  # the same checks
        if capacity < 1:
            raise ValueError("KeyedBuckets needs a capacity of at least 1")
        self.rate = rate
        self.burst = burst
        self.capacity = capacity
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def bucket(self, key: str, now: float) -> TokenBucket:
        """The bucket of ``key`` (now the most recently used)."""
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(self.rate, self.burst, now)
            while len(self._buckets) > self.capacity:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return bucket

    def try_take(self, key: str, now: float) -> bool:
        """:meth:`TokenBucket.try_take` on the bucket of ``key``."""
        return self.bucket(key, now).try_take(now)
