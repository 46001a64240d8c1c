"""The registry: every live actor and supervisor, where it sits in the tree, and how it is doing.

The root supervisor creates one :class:`Registry` (or is handed one) and passes it down: each
supervisor registers a child when it first starts it, keeps its entry up to date through
restarts (same entry, new instance, ``restarts`` counting up) and unregisters it when the child
is gone for good. Names are unique across the whole tree, so :meth:`Registry.whereis` finds the
*current* instance of a name even after restarts; that is what ``ActorRef`` relies on.

:meth:`Registry.snapshot` turns the tree into plain data (:class:`ActorNode` Structs) for the
control socket, built from nothing but each instance's ``statistics()`` record (its common part
in columns, its own facts in ``info``); :meth:`Registry.collect` hands out those records
themselves, for readers that want the typed values (metrics, ``status``). Both cost one pass over
the entries, so they stay cheap with 10,000 children.

Anything a supervisor can run satisfies the small :class:`Supervisable` protocol: an ``Actor``
or a ``Supervisor`` alike.
"""

from __future__ import annotations

import contextlib
import enum
import time
from collections.abc import Callable
from typing import Protocol

import msgspec
import trio

from runtime.errors import ActorNotFound, ErrorInfo, NameTaken
from runtime.statistics import Statistics

__all__ = [
    "ActorEntry",
    "ActorNode",
    "Kind",
    "Registry",
    "State",
    "Supervisable",
]


class Kind(enum.Enum):
    """What a registered thing is."""

    ACTOR = "actor"
    SUPERVISOR = "supervisor"


class State(enum.Enum):
    """Where a registered thing is in its life (as its supervisor sees it)."""

    STARTING = "starting"
    RUNNING = "running"
    RESTARTING = "restarting"
    STOPPING = "stopping"
    STOPPED = "stopped"
    FAILED = "failed"


class Supervisable(Protocol):
    """What a supervisor needs from a child: an ``Actor`` and a ``Supervisor`` both fit.

    - ``run`` calls ``task_status.started()`` once it is ready, then runs until it is asked to
      stop (it returns) or it fails (it raises its own exception).
    - ``request_stop`` asks for a graceful stop; it must not block. A child that does not end
      within its shutdown deadline is cancelled.
    - ``attach`` is called by the supervisor before ``run`` with the tree's registry and the
      child's own entry.
    - ``wait_running`` returns once the start has been reported (``ActorStopped`` if it ends
      first).
    - ``statistics`` is its frozen record (a :class:`~runtime.statistics.Statistics`), read by
      the registry's snapshot; it must be cheap and must not await.
    """

    @property
    def name(self) -> str: ...

    @property
    def kind(self) -> Kind: ...

    async def run(self, *, task_status: trio.TaskStatus[None] = ...) -> None: ...

    def request_stop(self) -> None: ...

    def attach(self, registry: Registry, entry: ActorEntry) -> None: ...

    async def wait_running(self) -> None: ...

    def statistics(self) -> Statistics: ...


class ActorNode(msgspec.Struct, frozen=True):
    """One registered actor or supervisor as plain data, with its children (start order)."""

    name: str
    kind: str
    state: str
    restarts: int
    last_error: ErrorInfo | None
    uptime_seconds: float
    mailbox_depth: int
    handled: int
    info: dict[str, str]
    children: tuple[ActorNode, ...] = ()


class ActorEntry:
    """The registry's record of one name. It outlives restarts: each incarnation rebinds it.

    Read its fields freely; change them only through the :class:`Registry` methods, which
    wake whoever waits on the entry (``ActorRef`` waiting for a restart).
    """

    __slots__ = (
        "_changed",
        "children",
        "instance",
        "kind",
        "last_error",
        "name",
        "parent",
        "restarts",
        "started_at",
        "state",
    )

    def __init__(self, instance: Supervisable, parent: ActorEntry | None) -> None:
        self.name = instance.name
        self.kind = instance.kind
        self.instance: Supervisable | None = instance
        self.parent = parent
        self.state = State.STARTING
        self.restarts = 0
        self.last_error: ErrorInfo | None = None
        self.started_at: float | None = None
        self.children: dict[str, ActorEntry] | None = None
        self._changed: trio.Event | None = None

    def __repr__(self) -> str:
        return f"<ActorEntry {self.name!r} {self.kind.value} {self.state.value}>"


class Registry:
    """Every live actor and supervisor by name, with its parent, state, restarts and errors.

    ``clock`` (default :func:`time.monotonic`) dates starts for ``uptime_seconds``; it is not
    trio's clock, so a snapshot can also be taken outside ``trio.run`` (after it, in a test).
    Like everything else here it is not thread-safe: use it from the trio thread.
    """

    __slots__ = ("_clock", "_entries")

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._entries: dict[str, ActorEntry] = {}
        self._clock = clock

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    # --- changes (supervisors call these) -------------------------------------------------

    def register(self, instance: Supervisable, *, parent: ActorEntry | None = None) -> ActorEntry:
        """Add a new name in state ``STARTING`` under ``parent`` (None for a root).

        Raises :class:`NameTaken` when the name is already registered.
        """
        name = instance.name
        if name in self._entries:
            raise NameTaken(name)
        entry = ActorEntry(instance, parent)
        self._entries[name] = entry
        if parent is not None:
            if parent.children is None:
                parent.children = {}
            parent.children[name] = entry
        return entry

    def rebind(self, entry: ActorEntry, instance: Supervisable) -> None:
        """Point ``entry`` at a new incarnation (state ``STARTING``); follow a change of name."""
        name = instance.name
        if name != entry.name:
            if name in self._entries:
                raise NameTaken(name)
            del self._entries[entry.name]
            self._entries[name] = entry
            siblings = entry.parent.children if entry.parent is not None else None
            if siblings is not None:
                siblings.pop(entry.name, None)
                siblings[name] = entry
            entry.name = name
        entry.instance = instance
        entry.kind = instance.kind
        entry.state = State.STARTING
        entry.started_at = None
        self._notify(entry)

    def set_state(
        self, entry: ActorEntry, state: State, *, error: BaseException | None = None
    ) -> None:
        """Move ``entry`` to ``state``; ``RUNNING`` starts the uptime clock, ``RESTARTING``
        counts one restart, and ``error`` (if given) becomes its ``last_error``."""
        if state is State.RUNNING and entry.state is not State.RUNNING:
            entry.started_at = self._clock()
        elif state is State.RESTARTING and entry.state is not State.RESTARTING:
            entry.restarts += 1
        if error is not None:
            entry.last_error = ErrorInfo.of(error)
        entry.state = state
        self._notify(entry)

    def unregister(self, entry: ActorEntry) -> None:
        """Forget ``entry`` and anything still registered below it."""
        if self._entries.get(entry.name) is not entry:
            return
        if entry.children:
            for child in list(entry.children.values()):
                self.unregister(child)
        del self._entries[entry.name]
        if entry.parent is not None and entry.parent.children is not None:
            entry.parent.children.pop(entry.name, None)
        entry.instance = None
        if entry.state is not State.FAILED:
            entry.state = State.STOPPED
        self._notify(entry)

    # --- queries -------------------------------------------------------------------------

    def lookup(self, name: str) -> ActorEntry | None:
        """The entry registered under ``name``, or None."""
        return self._entries.get(name)

    def whereis(self, name: str) -> Supervisable | None:
        """The current instance registered under ``name`` (None if unknown or between lives)."""
        entry = self._entries.get(name)
        return entry.instance if entry is not None else None

    async def wait_changed(self, entry: ActorEntry) -> None:
        """Sleep until ``entry`` next changes state, incarnation or registration."""
        if entry._changed is None:
            entry._changed = trio.Event()
        await entry._changed.wait()

    def collect(self) -> list[Statistics]:
        """The ``statistics()`` record of every registered instance, in tree order (parents
        before children, siblings in start order). A name between two lives reports its last
        instance; a faulty ``statistics()`` is left out rather than cost the whole list."""
        records: list[Statistics] = []
        pending = [e for e in reversed(self._entries.values()) if e.parent is None]
        while pending:
            entry = pending.pop()
            instance = entry.instance
            if instance is not None:
                with contextlib.suppress(Exception):  # a faulty hook must not cost the others
                    records.append(instance.statistics())
            if entry.children:
                pending.extend(reversed(entry.children.values()))
        return records

    def snapshot(self) -> tuple[ActorNode, ...]:
        """Every tree (normally exactly one, the root supervisor's) as plain data."""
        now = self._clock()
        return tuple(self._node(e, now) for e in self._entries.values() if e.parent is None)

    def snapshot_of(self, name: str) -> ActorNode:
        """The subtree rooted at ``name``; raises :class:`ActorNotFound` if it is not known."""
        entry = self._entries.get(name)
        if entry is None:
            raise ActorNotFound(name)
        return self._node(entry, self._clock())

    # --- internals -----------------------------------------------------------------------

    def _notify(self, entry: ActorEntry) -> None:
        event = entry._changed
        if event is not None:
            entry._changed = None
            event.set()

    def _node(self, entry: ActorEntry, now: float) -> ActorNode:
        instance = entry.instance
        depth = handled = 0
        info: dict[str, str] = {}
        if instance is not None:
            try:
                stats = instance.statistics()
                depth, handled, info = stats.mailbox_depth, stats.handled, stats.facts()
            except Exception as exc:  # a faulty hook must not cost the whole snapshot
                info = {"statistics_error": f"{type(exc).__name__}: {exc}"}
        running = entry.state is State.RUNNING and entry.started_at is not None
        children = entry.children
        return ActorNode(
            name=entry.name,
            kind=entry.kind.value,
            state=entry.state.value,
            restarts=entry.restarts,
            last_error=entry.last_error,
            uptime_seconds=max(0.0, now - entry.started_at)
            if running and entry.started_at is not None
            else 0.0,
            mailbox_depth=depth,
            handled=handled,
            info=info,
            children=tuple(self._node(c, now) for c in children.values()) if children else (),
        )
