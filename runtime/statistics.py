"""Statistics: what an actor or a supervisor says about itself, as one frozen record.

The model is trio's ``MemoryChannel.statistics()``: a method that is cheap to call returns a
frozen value, a picture of that moment, which the caller may keep, compare or send as JSON.
Everything that shows the tree (the ``tree`` command, ``status``, Prometheus metrics) reads those
records and nothing else; none of them asks an actor a question or parses its text.

- :class:`Statistics` is what every actor and supervisor reports: its name, its phase, how often
  its supervisor restarted it, how many messages wait and how many it has handled. The runtime
  extends it as :class:`~runtime.actor.ActorStatistics` and
  :class:`~runtime.supervisor.SupervisorStatistics`.
- An actor with facts of its own declares its own record, a subclass of ``ActorStatistics``
  (``class ChainStatistics(ActorStatistics, frozen=True, kw_only=True)``), and returns it from
  ``statistics()``, built with the common part from :meth:`Actor.common_statistics
  <runtime.actor.Actor.common_statistics>`. Callers tell records apart by their type.
- :meth:`Statistics.facts` turns a record's own fields into the short ``key=value`` text the
  ``tree`` command shows; a record overrides it where a field needs a better wording.

Counting events with their outcomes and durations (transactions by contract function, commands on
the login node, claims by queue) is :class:`OutcomeTally`: its owner adds one line per event and
puts :meth:`OutcomeTally.snapshot` (frozen :class:`Outcomes`) in its record. The counts belong to
the instance that made them, so they start again from zero when it restarts, as a process's own
counters do when it restarts (Prometheus ``rate()`` allows for that).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable
from typing import ClassVar

import msgspec

__all__ = [
    "LATENCY_BOUNDS",
    "OutcomeTally",
    "Outcomes",
    "Statistics",
    "Timings",
    "fact_text",
    "outcome_counts",
]

#: Upper bounds (seconds) of the duration buckets an :class:`OutcomeTally` keeps by default.
LATENCY_BOUNDS: tuple[float, ...] = (
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
)


def fact_text(value: object) -> str | None:
    """A field's value as short text for a ``key=value`` fact; None to leave the field out.

    None is left out, a boolean is ``on``/``off``, a float is shortest-form (``%g``), an enum is
    its value, a tuple of plain values is comma-separated (``none`` if empty), a record of plain
    values is ``name value, name value``; collections of records are left out (too long for a
    line: they are in the record, and in ``--json``).
    """
    if value is None:
        return None
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, int | str):
        return str(value)
    if isinstance(value, msgspec.Struct):
        parts = []
        for name in value.__struct_fields__:
            text = fact_text(getattr(value, name))
            if text is not None and not isinstance(getattr(value, name), msgspec.Struct):
                parts.append(f"{name} {text}")
        return ", ".join(parts) or None
    if isinstance(value, tuple | list | frozenset):
        texts = [fact_text(item) for item in value]
        if any(isinstance(item, msgspec.Struct | tuple | list) for item in value):
            return None
        return ",".join(text for text in texts if text is not None) or "none"
    return None


class Statistics(msgspec.Struct, frozen=True):
    """What every actor and supervisor reports about itself (see the module docstring).

    ``phase`` is the instance's own view of its life (``new``, ``running``, ``stopping``,
    ``stopped``, ``crashed`` for an actor; ``starting`` and ``failed`` too for a supervisor).
    ``restarts`` counts the restarts its supervisor made of this name (0 unsupervised).
    ``mailbox_depth`` and ``handled``: messages waiting and handled by this instance (for a
    supervisor: child exits waiting and handled).
    """

    name: str
    phase: str
    restarts: int
    mailbox_depth: int
    handled: int

    common_fields: ClassVar[frozenset[str]] = frozenset(
        ("name", "phase", "restarts", "mailbox_depth", "handled")
    )
    """Fields :meth:`facts` leaves out: the runtime record's, shown in columns of their own."""

    def facts(self) -> dict[str, str]:
        """This record's own fields (beyond :attr:`common_fields`) as text, in field order."""
        facts: dict[str, str] = {}
        for name in _own_fields(type(self)):
            text = fact_text(getattr(self, name))
            if text is not None:
                facts[name] = text
        return facts


_OWN_FIELDS: dict[type[Statistics], tuple[str, ...]] = {}


def _own_fields(kind: type[Statistics]) -> tuple[str, ...]:
    """The fields of a record type beyond its ``common_fields`` (computed once per type: the
    tree's snapshot asks for them once per actor)."""
    names = _OWN_FIELDS.get(kind)
    if names is None:
        common = kind.common_fields
        names = _OWN_FIELDS[kind] = tuple(n for n in kind.__struct_fields__ if n not in common)
    return names


# --- counting events by outcome -----------------------------------------------------------------


class Timings(msgspec.Struct, frozen=True):
    """A histogram of durations.

    ``counts[i]`` events took at most ``bounds[i]`` seconds (and more than ``bounds[i - 1]``);
    the last count, one more than there are bounds, took longer than every bound. ``seconds`` is
    the sum of all the durations.
    """

    bounds: tuple[float, ...]
    counts: tuple[int, ...]
    seconds: float

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[float, int]]:
        """``(upper bound, events at or under it)`` per bucket, ending with ``(inf, count)``."""
        result = []
        running = 0
        for bound, count in zip((*self.bounds, math.inf), self.counts, strict=True):
            running += count
            result.append((bound, running))
        return result


class Outcomes(msgspec.Struct, frozen=True):
    """The events of one kind (a contract function, a command, a claim queue) by outcome."""

    kind: str
    counts: tuple[tuple[str, int], ...]
    """``(outcome, events)``, sorted by outcome."""
    timings: Timings | None
    """Their durations, when the events were timed."""

    def count(self, outcome: str) -> int:
        return dict(self.counts).get(outcome, 0)


class _Kind:
    __slots__ = ("buckets", "outcomes", "seconds", "timed")

    def __init__(self, bounds: int) -> None:
        self.outcomes: dict[str, int] = {}
        self.buckets = [0] * (bounds + 1)
        self.seconds = 0.0
        self.timed = False


class OutcomeTally:
    """Counts events by kind and outcome and, when given their seconds, times them.

    Mutable, owned by one actor or adapter (no locking: trio runs one task at a time). At most
    ``max_kinds`` kinds are kept apart; later new kinds are counted under ``other``, so a label
    set built from outside input stays bounded.
    """

    __slots__ = ("_bounds", "_kinds", "max_kinds")

    OTHER: ClassVar[str] = "other"

    def __init__(self, bounds: Iterable[float] = LATENCY_BOUNDS, *, max_kinds: int = 64) -> None:
        self._bounds = tuple(sorted(bounds))
        self._kinds: dict[str, _Kind] = {}
        self.max_kinds = max_kinds

    def add(self, kind: str, outcome: str, seconds: float | None = None) -> None:
        """Count one event of ``kind`` that ended with ``outcome``, taking ``seconds``."""
        entry = self._kinds.get(kind)
        if entry is None:
            if len(self._kinds) >= self.max_kinds:
                kind = self.OTHER
                entry = self._kinds.get(kind)
            if entry is None:
                entry = self._kinds[kind] = _Kind(len(self._bounds))
        entry.outcomes[outcome] = entry.outcomes.get(outcome, 0) + 1
        if seconds is not None:
            seconds = seconds if math.isfinite(seconds) and seconds > 0 else 0.0
            entry.timed = True
            entry.seconds += seconds
            index = 0
            for bound in self._bounds:
                if seconds <= bound:
                    break
                index += 1
            entry.buckets[index] += 1

    def snapshot(self) -> tuple[Outcomes, ...]:
        """Every kind seen, sorted by kind, as frozen values."""
        return tuple(
            Outcomes(
                kind=kind,
                counts=tuple(sorted(entry.outcomes.items())),
                timings=Timings(self._bounds, tuple(entry.buckets), entry.seconds)
                if entry.timed
                else None,
            )
            for kind, entry in sorted(self._kinds.items())
        )


def outcome_counts(outcomes: Iterable[Outcomes]) -> dict[tuple[str, str], int]:
    """``(kind, outcome) -> events`` over ``outcomes`` (for tests and summaries)."""
    return {(o.kind, outcome): n for o in outcomes for outcome, n in o.counts}
