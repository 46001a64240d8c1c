"""The drain switch: the operator's "stop claiming new jobs, finish the running ones".

``grid-supervisor drain`` turns it on and ``grid-supervisor resume`` off (through the control
socket, :mod:`actors.control`). While it is on, the RegistrationActor does not turn claiming on,
however the provider's approval goes; jobs already claimed run to their end as usual, and their
reports still reach the chain.

The switch is durable: :meth:`DrainSwitch.set` writes the new state to the checkpoint store
(namespace ``"control"``, key ``"drain"``) *before* it flips, so a drain survives a restart of the
process (:meth:`DrainSwitch.load` reads it back at start-up, before the tree runs).

Whoever decides from the switch reads :attr:`DrainSwitch.drained` and, to hear about a change
without polling, waits with :meth:`DrainSwitch.wait_changed` from the :attr:`generation` it
decided on: a change that happens while it acts is never missed.
"""

from __future__ import annotations

import time

import msgspec
import trio

from runtime.store import Store

__all__ = ["DRAIN_KEY", "DRAIN_NAMESPACE", "DrainState", "DrainSwitch"]

DRAIN_NAMESPACE = "control"
DRAIN_KEY = "drain"


class DrainState(msgspec.Struct, frozen=True):
    """The stored state of the switch."""

    drained: bool = False
    #: Unix time of the last change (0: never changed).
    since: float = 0.0


class DrainSwitch:
    """Whether claiming is paused by the operator. Use it from the trio thread only."""

    __slots__ = ("_changed", "_generation", "_state", "_store")

    def __init__(self, store: Store | None = None, state: DrainState | None = None) -> None:
        self._store = store
        self._state = state or DrainState()
        self._generation = 0
        self._changed = trio.Event()

    @classmethod
    async def load(cls, store: Store) -> DrainSwitch:
        """The switch as the store last saw it (off when never set)."""
        return cls(store, await store.get(DRAIN_NAMESPACE, DRAIN_KEY, DrainState))

    @property
    def drained(self) -> bool:
        return self._state.drained

    @property
    def state(self) -> DrainState:
        return self._state

    @property
    def generation(self) -> int:
        """Counts the changes; pass it to :meth:`wait_changed`."""
        return self._generation

    async def set(self, drained: bool) -> DrainState:
        """Turn the switch on or off: persisted first, then flipped, then waiters woken."""
        if drained == self._state.drained:
            return self._state
        state = DrainState(drained=drained, since=time.time())
        if self._store is not None:
            await self._store.put(DRAIN_NAMESPACE, DRAIN_KEY, state)
        self._state = state
        self._generation += 1
        self._changed.set()
        self._changed = trio.Event()
        return state

    async def wait_changed(self, seen: int, timeout: float) -> bool:  # noqa: ASYNC109
        """Sleep until the generation differs from ``seen`` (True) or ``timeout`` passes (False).

        Returns at once when it already differs."""
        with trio.move_on_after(timeout):
            while self._generation == seen:
                await self._changed.wait()
            return True
        return False
