"""Restart policies as immutable values, in the spirit of urllib3's ``Retry``.

Everything here is pure: no clock is read, no randomness is drawn except from the ``rng`` the
caller passes, so each rule can be tested exhaustively on its own.

- :class:`Restart` says *whether* a child that ended is started again (OTP's restart types).
- :class:`Strategy` says *which* children restart when one of them does.
- :class:`RestartIntensity` says *how often* a supervisor may restart before it gives up.
- :class:`Backoff` says *how long* to wait before a restart (exponential, capped, with jitter).
"""

from __future__ import annotations

import enum
import math
import random

import msgspec

__all__ = ["Backoff", "Restart", "RestartIntensity", "Strategy"]


class Restart(enum.Enum):
    """When a child that ended is started again.

    - ``PERMANENT``: always, whether it crashed or returned.
    - ``TRANSIENT``: only after an abnormal exit (an exception); a normal return ends it for good.
    - ``TEMPORARY``: never.
    """

    PERMANENT = "permanent"
    TRANSIENT = "transient"
    TEMPORARY = "temporary"

    def restarts_after(self, *, crashed: bool) -> bool:
        """True when a child with this restart type is restarted after this kind of exit."""
        if self is Restart.PERMANENT:
            return True
        if self is Restart.TRANSIENT:
            return crashed
        return False


class Strategy(enum.Enum):
    """Which children a supervisor restarts when one of them must be restarted.

    - ``ONE_FOR_ONE``: only that child.
    - ``ONE_FOR_ALL``: every child (the others are stopped in reverse order first).
    - ``REST_FOR_ONE``: that child and every child started after it.
    """

    ONE_FOR_ONE = "one_for_one"
    ONE_FOR_ALL = "one_for_all"
    REST_FOR_ONE = "rest_for_one"


class RestartIntensity(msgspec.Struct, frozen=True):
    """At most ``max_restarts`` restarts within any ``period_seconds``; one more and the
    supervisor stops its children and fails itself (its own parent then decides).

    ``max_restarts=0`` means a supervisor never restarts anything: the first exit that calls for
    a restart fails it.
    """

    max_restarts: int = 3
    period_seconds: float = 5.0

    def __post_init__(self) -> None:
        if self.max_restarts < 0:
            raise ValueError(f"max_restarts must be >= 0, not {self.max_restarts}")
        if not self.period_seconds > 0:
            raise ValueError(f"period_seconds must be > 0, not {self.period_seconds}")

    def admit(self, history: tuple[float, ...], now: float) -> tuple[bool, tuple[float, ...]]:
        """Decide one more restart at time ``now``, given the times of earlier restarts.

        Returns ``(allowed, history)``: the new history holds ``now`` and the earlier restarts
        still inside the period (``now - t <= period_seconds``, as OTP counts them).
        ``allowed`` is False once that history holds more than ``max_restarts`` entries.
        """
        threshold = now - self.period_seconds
        recent = (*(t for t in history if t >= threshold), now)
        return len(recent) <= self.max_restarts, recent


class Backoff(msgspec.Struct, frozen=True):
    """How long to wait before restarting: exponential growth, capped, with jitter.

    The ``attempt``-th restart in a row (1 for the first) waits
    ``base = min(maximum, initial * multiplier ** (attempt - 1))`` minus up to ``jitter`` of it:
    a uniform draw in ``[base * (1 - jitter), base]``. The delay therefore never exceeds
    ``maximum`` and never falls below ``(1 - jitter)`` of the un-jittered value.
    ``Backoff(initial=0.0)`` restarts immediately, as OTP does.
    """

    initial: float = 0.05
    maximum: float = 5.0
    multiplier: float = 2.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if not (0 <= self.initial <= self.maximum and math.isfinite(self.maximum)):
            raise ValueError("need 0 <= initial <= maximum < inf")
        if not self.multiplier >= 1:
            raise ValueError(f"multiplier must be >= 1, not {self.multiplier}")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"jitter must be within [0, 1], not {self.jitter}")

    def base(self, attempt: int) -> float:
        """The un-jittered delay of the ``attempt``-th restart in a row (0 for attempt < 1)."""
        if attempt < 1 or self.initial == 0:
            return 0.0
        try:
            grown = self.initial * self.multiplier ** (attempt - 1)
        except OverflowError:
            return self.maximum
        return min(self.maximum, grown)

    def delay(self, attempt: int, rng: random.Random) -> float:
        """The jittered delay of the ``attempt``-th restart in a row, drawn from ``rng``."""
        base = self.base(attempt)
        if base == 0 or self.jitter == 0:
            return base
        return base * (1.0 - self.jitter * rng.random())
