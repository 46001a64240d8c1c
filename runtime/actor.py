"""Actors: a trio task that owns its state and reads one bounded mailbox.

Subclass :class:`Actor` and implement ``async def handle(self, message)``; its return value is
the reply to an :meth:`Actor.ask`. Other tasks talk to an actor three ways:

- ``await actor.tell(message)``: queue it; blocks while the mailbox is full (backpressure).
- ``actor.tell_nowait(message)``: queue it or raise :class:`MailboxFull` at once.
- ``await actor.ask(message, timeout=...)``: queue it and wait for ``handle``'s return value;
  raises :class:`AskTimeout` (no reply in time), :class:`ActorCrashed` (the actor crashed before
  answering; the message may have taken effect) or :class:`ActorStopped` (it never will answer).

Crash or answer? **An exception escaping ``handle`` crashes the actor**: its mailbox closes,
every asker still waiting (on the message that crashed it, on one being served concurrently, on
one still queued) gets :class:`ActorCrashed`, queued tells are dropped, and its supervisor decides
(usually a restart: a *new* instance with an empty mailbox). That is right for a broken
connection. It is wrong for bad input: a malformed request or a refused transition is a message
with an answer, so ``handle`` should *return* a value that says so (an error reply Struct) and
may call :meth:`Actor.note_error` to make it visible in ``statistics()``. The one exception to
the rule is the class attribute :attr:`Actor.answered_errors`: an exception of one of those types
escaping ``handle`` *is* the answer. The asker gets it raised in its own task, ``note_error``
records it, and the actor reads on; for a tell it is only recorded. It applies alike to
sequential and concurrent messages. Adapters use it for the failures of one request (a command
lost on an SSH channel, a node that did not answer): the asker decides, the pool stays warm.

Concurrency. By default an actor handles one message at a time. ``Actor(name, concurrency=N)``
(N > 0) lets it serve up to N asks at once: the mailbox loop still takes messages in order, but
an ask for which :meth:`Actor.concurrent` is true (by default: every ask) takes one of N slots and
is handed to its own task in the actor's background nursery, which runs ``handle`` and replies.
When all N slots are taken the loop waits for one, the mailbox fills and ``tell``/``ask`` block:
backpressure, as for a busy sequential actor. Tells and the asks ``concurrent`` declines are
handled in the loop itself, one at a time, after every earlier message has been *taken*; asks
taken earlier may still be running, and their tasks start in no guaranteed order. So messages
whose relative order matters must be sequential. ``statistics().in_flight`` counts the asks
holding a slot. ``handled`` counts them once they are answered.

Life cycle of one instance (it runs once; a restart makes a new one):
``run()`` calls :meth:`Actor.started`, signals ``task_status.started()`` (from then on
:meth:`Actor.wait_running` returns), then reads the mailbox as above.
:meth:`Actor.request_stop` closes the mailbox: the current sequential message is finished, the
queued ones are refused (askers get :class:`ActorStopped`), :meth:`Actor.stopping` runs and
``run()`` returns; concurrent asks still in flight then are cancelled with the background tasks,
and their askers get :class:`ActorStopped` too. ``stopping()`` does not run after a crash or a
cancellation.

Background work tied to the actor's life: :meth:`Actor.spawn` runs ``fn(*args)`` in a nursery
owned by ``run()``. A failure there crashes the actor; a graceful stop cancels the tasks after
``stopping()``. To keep idle actors cheap the nursery is opened on the first ``spawn`` (or the
first concurrent ask): a spawn from ``started()`` begins as soon as the actor is running, but a
spawn from a ``handle`` call that is the actor's first begins only once that call returns (so do
not wait in that handler for something the new task does; spawn from ``started()`` instead).

What an actor says about itself is :meth:`Actor.statistics`: a frozen record, trio-style (see
:mod:`runtime.statistics`). An actor with facts of its own returns a subclass of
:class:`ActorStatistics` built on :meth:`Actor.common_statistics`; the registry's snapshot, the
``tree`` command and the metrics read nothing else.

Cost: an idle actor is one trio task plus a few small objects (no trio memory channel: the
mailbox below is a lazily allocated deque driven by trio's low-level parking primitives, and a
sequential actor has no semaphore; see bench/README.md for the measured bytes). Subclasses should
declare ``__slots__`` too.

:class:`ActorRef` reaches an actor by its registered name and follows it across restarts.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, Generic, TypeVar, TypeVarTuple, Unpack, cast

import outcome
import trio

from runtime.errors import (
    ActorCrashed,
    ActorNotFound,
    ActorStopped,
    AskTimeout,
    ErrorInfo,
    MailboxFull,
)
from runtime.logs import FIELDS
from runtime.registry import ActorEntry, Kind, Registry, State
from runtime.statistics import Statistics

__all__ = [
    "DEFAULT_ASK_TIMEOUT",
    "DEFAULT_MAILBOX_SIZE",
    "DEFAULT_RESTART_WAIT",
    "Actor",
    "ActorRef",
    "ActorStatistics",
    "sole_exception",
]

MessageT = TypeVar("MessageT")
ReplyT = TypeVar("ReplyT")
PosArgsT = TypeVarTuple("PosArgsT")

DEFAULT_MAILBOX_SIZE = 64
"""Messages an actor queues before ``tell`` blocks and ``tell_nowait`` raises."""

DEFAULT_ASK_TIMEOUT = 5.0
"""Seconds an ``ask`` waits for its reply unless told otherwise."""


def sole_exception(error: BaseException) -> BaseException:
    """Unwrap exception groups that hold exactly one exception (trio's nurseries wrap even a
    single child error), so a crash reaches its supervisor as the child's own exception.
    Groups with several exceptions are returned unchanged."""
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return error


def _reraise(error: BaseException) -> None:
    """Raise ``error`` keeping its own ``__context__`` (the way trio's ``start`` does)."""
    context = error.__context__
    try:
        raise error
    finally:
        error.__context__ = context
        del error, context


# --- the mailbox -----------------------------------------------------------------------------

_CLOSED: Any = object()  # what a closed mailbox hands its reader


class _Full(Exception):
    pass


class _Closed(Exception):
    pass


class _Mailbox:
    """A bounded, single-reader, many-writer queue built on trio's low-level primitives.

    It behaves like one end of ``trio.open_memory_channel(capacity)`` (a full mailbox blocks
    ``put``; cancelled operations have no effect) at a fraction of the memory: the deque exists
    only while messages wait, the blocked-writer parking lot only once a writer has blocked.
    """

    __slots__ = ("_queue", "_reader", "_writers", "capacity", "closed")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.closed = False
        self._queue: deque[object] | None = None
        self._reader: trio.lowlevel.Task | None = None
        self._writers: trio.lowlevel.ParkingLot | None = None

    def __len__(self) -> int:
        return len(self._queue) if self._queue is not None else 0

    def put_nowait(self, item: object) -> None:
        if self.closed:
            raise _Closed
        reader = self._reader
        if reader is not None:  # the reader is parked, so the queue is empty: hand it over
            self._reader = None
            trio.lowlevel.reschedule(reader, outcome.Value(item))
            return
        queue = self._queue
        if queue is None:
            queue = self._queue = deque()
        elif len(queue) >= self.capacity:
            raise _Full
        queue.append(item)

    async def put(self, item: object) -> None:
        await trio.lowlevel.checkpoint_if_cancelled()
        while True:
            try:
                self.put_nowait(item)
            except _Full:
                if self._writers is None:
                    self._writers = trio.lowlevel.ParkingLot()
                await self._writers.park()
            else:
                break
        await trio.lowlevel.cancel_shielded_checkpoint()

    async def get(self) -> object:
        """The next message, or ``_CLOSED`` once the mailbox is closed (queued items are left
        for :meth:`drain`)."""
        await trio.lowlevel.checkpoint_if_cancelled()
        if self.closed:
            await trio.lowlevel.cancel_shielded_checkpoint()
            return _CLOSED
        queue = self._queue
        if queue:
            item = queue.popleft()
            if not queue:
                self._queue = None  # idle actors hold no buffer
            if self._writers:
                self._writers.unpark()
            await trio.lowlevel.cancel_shielded_checkpoint()
            return item
        assert self._reader is None, "a mailbox has a single reader"
        self._reader = trio.lowlevel.current_task()
        return await trio.lowlevel.wait_task_rescheduled(self._abort_get)

    def _abort_get(self, _: object) -> trio.lowlevel.Abort:
        self._reader = None
        return trio.lowlevel.Abort.SUCCEEDED

    def close(self) -> None:
        """Refuse further messages; wake the reader and every blocked writer."""
        if self.closed:
            return
        self.closed = True
        reader = self._reader
        if reader is not None:
            self._reader = None
            trio.lowlevel.reschedule(reader, outcome.Value(_CLOSED))
        if self._writers is not None:
            self._writers.unpark_all()

    def drain(self) -> list[object]:
        """Take every queued message (after close, to refuse them)."""
        items = list(self._queue) if self._queue else []
        self._queue = None
        return items


class _Ask:
    """An ask in flight: the message and the slot its reply goes to."""

    __slots__ = ("done", "error", "message", "value")

    def __init__(self, message: object) -> None:
        self.message = message
        self.done = trio.Event()
        self.value: object = None
        self.error: BaseException | None = None

    def reply(self, value: object) -> None:
        if not self.done.is_set():
            self.value = value
            self.done.set()

    def fail(self, error: BaseException) -> None:
        if not self.done.is_set():
            self.error = error
            self.done.set()


# --- the actor -------------------------------------------------------------------------------


class ActorStatistics(Statistics, frozen=True):
    """A point-in-time view of one actor instance: the part every actor has.

    ``phase`` is ``"new"``, ``"running"``, ``"stopping"``, ``"stopped"`` or ``"crashed"``;
    ``last_error`` the error it last answered with (:meth:`Actor.note_error`) or crashed with.
    An actor with facts of its own returns a subclass (see :mod:`runtime.statistics`).
    """

    mailbox_size: int
    last_error: ErrorInfo | None
    background_tasks: int  # includes the tasks serving concurrent asks
    in_flight: int  # concurrent asks holding a slot (always 0 for a sequential actor)

    common_fields: ClassVar[frozenset[str]] = Statistics.common_fields | frozenset(
        ("mailbox_size", "last_error", "background_tasks", "in_flight")
    )


_NEW, _RUNNING, _STOPPING, _STOPPED, _CRASHED, _STOPPING_BEFORE_RUN = range(6)
_PHASES = ("new", "running", "stopping", "stopped", "crashed", "stopping")


class Actor(Generic[MessageT, ReplyT]):
    """Base class of every actor. ``MessageT`` is what it handles, ``ReplyT`` what ``handle``
    returns (a union when different messages get different replies)."""

    __slots__ = (
        "_entry",
        "_handled",
        "_last_error",
        "_limit",
        "_mailbox",
        "_name",
        "_nursery",
        "_pending",
        "_phase",
        "_registry",
        "_reported",
        "_unanswered",
        "_up",
    )

    kind: ClassVar[Kind] = Kind.ACTOR

    answered_errors: ClassVar[tuple[type[Exception], ...]] = ()
    """Exceptions that ``handle`` raises as an answer, not a crash (see the module docstring)."""

    def __init__(
        self, name: str, *, mailbox_size: int = DEFAULT_MAILBOX_SIZE, concurrency: int = 0
    ) -> None:
        """``concurrency``: how many asks may be served at once, each in its own task (0, the
        default: one message at a time; see :meth:`concurrent`)."""
        if mailbox_size < 1:
            raise ValueError(f"mailbox_size must be >= 1, not {mailbox_size}")
        if concurrency < 0:
            raise ValueError(f"concurrency must be >= 0, not {concurrency}")
        self._name = name
        self._mailbox = _Mailbox(mailbox_size)
        # the slots of concurrent asks; none at all for a sequential actor (idle actors are many)
        self._limit = trio.Semaphore(concurrency, max_value=concurrency) if concurrency else None
        # asks whose handling was cancelled: _end answers them once the actor's fate is known
        self._unanswered: list[_Ask] | None = None
        self._handled = 0
        self._last_error: ErrorInfo | None = None
        self._phase = _NEW
        self._nursery: trio.Nursery | None = None
        self._pending: list[tuple[Callable[..., Awaitable[object]], tuple[object, ...]]] | None
        self._pending = None
        self._registry: Registry | None = None
        self._entry: ActorEntry | None = None
        self._reported = False  # task_status.started() has been called
        self._up: trio.Event | None = None  # created by the first wait_running()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._name!r} {_PHASES[self._phase]}>"

    @property
    def name(self) -> str:
        return self._name

    @property
    def registry(self) -> Registry:
        """The registry of the tree this actor runs in (set by its supervisor)."""
        if self._registry is None:
            raise ActorNotFound(self._name, "is not attached to a registry (not supervised)")
        return self._registry

    # --- hooks subclasses implement ----------------------------------------------------------

    async def handle(self, message: MessageT) -> ReplyT:
        """Handle one message; the return value answers an ``ask``. Raise only to crash (or
        one of :attr:`answered_errors`, to answer with it)."""
        raise NotImplementedError

    def concurrent(self, message: MessageT) -> bool:
        """Whether this ask is served in its own task (only asked when ``concurrency`` > 0;
        tells are always sequential). The default serves every ask concurrently; override it
        to keep the asks whose order matters in the mailbox loop."""
        return True

    async def started(self) -> None:
        """Runs before the actor reports itself started; a failure here fails the start."""

    async def stopping(self) -> None:
        """Runs on a graceful stop, after the last message and before background tasks are
        cancelled. Not run after a crash or a cancellation."""

    # --- talking to the actor ----------------------------------------------------------------

    async def tell(self, message: MessageT) -> None:
        """Queue ``message``; wait while the mailbox is full. Raises :class:`ActorStopped`."""
        try:
            await self._mailbox.put(message)
        except _Closed:
            raise ActorStopped(self._name, "is stopping or stopped") from None

    def tell_nowait(self, message: MessageT) -> None:
        """Queue ``message`` or raise :class:`MailboxFull` / :class:`ActorStopped` at once."""
        try:
            self._mailbox.put_nowait(message)
        except _Full:
            raise MailboxFull(self._name, self._mailbox.capacity) from None
        except _Closed:
            raise ActorStopped(self._name, "is stopping or stopped") from None

    # The deadline is part of ask's contract (AskTimeout names the actor), hence the parameter.
    async def ask(
        self,
        message: MessageT,
        *,
        timeout: float = DEFAULT_ASK_TIMEOUT,  # noqa: ASYNC109
    ) -> ReplyT:
        """Send ``message`` and wait for ``handle``'s reply; ``timeout`` covers queueing too.

        Raises :class:`AskTimeout`, :class:`ActorCrashed` or :class:`ActorStopped`.
        """
        request = _Ask(message)
        with trio.move_on_after(timeout):
            try:
                await self._mailbox.put(request)
            except _Closed:
                raise ActorStopped(self._name, "is stopping or stopped") from None
            await request.done.wait()
        if not request.done.is_set():
            raise AskTimeout(self._name, type(message).__name__, timeout)
        if request.error is not None:
            raise request.error
        return cast(ReplyT, request.value)

    # --- life cycle ----------------------------------------------------------------------------

    def attach(self, registry: Registry, entry: ActorEntry) -> None:
        """Called by the supervisor before ``run``: remember the tree's registry and the entry
        (whose restart count :meth:`statistics` reports)."""
        self._registry = registry
        self._entry = entry

    async def wait_running(self) -> None:
        """Wait until this instance is running: ``started()`` has returned and the start has
        been reported. Returns at once if it already is.

        Raises :class:`ActorStopped` if it ends, or is asked to stop, without being running
        (or has ended since); the caller then knows it never will be.
        """
        if not self._reported and self._phase in (_NEW, _RUNNING):
            if self._up is None:
                self._up = trio.Event()
            await self._up.wait()
        else:
            await trio.lowlevel.checkpoint()
        if not (self._reported and self._phase == _RUNNING):
            raise ActorStopped(self._name, f"is {_PHASES[self._phase]}, not running")

    def _wake_waiters(self) -> None:
        up, self._up = self._up, None
        if up is not None:
            up.set()

    def request_stop(self) -> None:
        """Ask for a graceful stop: finish the current message, refuse the rest, run
        ``stopping()``, return from ``run()``. Never blocks; safe to call more than once."""
        if self._phase == _NEW:
            self._phase = _STOPPING_BEFORE_RUN
        elif self._phase == _RUNNING:
            self._phase = _STOPPING
        self._mailbox.close()

    def ref(self, name: str) -> ActorRef[Any, Any]:
        """A reference to another actor of this tree, by its registered name."""
        return ActorRef(self.registry, name)

    def spawn(self, fn: Callable[[Unpack[PosArgsT]], Awaitable[object]], *args: *PosArgsT) -> None:
        """Run ``fn(*args)`` as a background task for as long as this actor runs.

        Its exception crashes the actor. Raises :class:`ActorStopped` once ``run`` has ended.
        """
        if self._phase in (_STOPPED, _CRASHED):
            raise ActorStopped(self._name, "has ended; it cannot spawn")
        if self._nursery is not None:
            self._nursery.start_soon(fn, *args)
            return
        if self._pending is None:
            self._pending = []
        self._pending.append((fn, args))

    def note_error(self, error: BaseException) -> None:
        """Record an error the actor answered (rather than crashed on) for ``statistics()``."""
        self._last_error = ErrorInfo.of(error)

    def common_statistics(self) -> dict[str, Any]:
        """The fields of :class:`ActorStatistics` as keyword arguments, for a subclass's own
        record: ``return ChainStatistics(**self.common_statistics(), head_block=...)``."""
        nursery = self._nursery
        limit = self._limit
        entry = self._entry
        return {
            "name": self._name,
            "phase": _PHASES[self._phase],
            "restarts": entry.restarts if entry is not None else 0,
            "mailbox_depth": len(self._mailbox),
            "handled": self._handled,
            "mailbox_size": self._mailbox.capacity,
            "last_error": self._last_error,
            "background_tasks": len(nursery.child_tasks) if nursery is not None else 0,
            "in_flight": cast(int, limit.max_value) - limit.value if limit is not None else 0,
        }

    def statistics(self) -> ActorStatistics:
        """This instance now, as a frozen record (cheap: no I/O, no await). Actors with facts
        of their own override it to return their subclass of :class:`ActorStatistics`."""
        return ActorStatistics(**self.common_statistics())

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run this instance: ``started()``, signal started, handle messages until stopped.

        Returns after a graceful stop; raises the actor's own exception when it crashes.
        """
        if self._phase == _NEW:
            self._phase = _RUNNING
        elif self._phase == _STOPPING_BEFORE_RUN:
            self._phase = _STOPPING
        else:
            raise RuntimeError(f"actor {self._name!r} has already run; start a new instance")
        FIELDS.set({**FIELDS.get(), "actor": self._name})  # this task's log lines name us
        try:
            await self.started()
            task_status.started()
            del task_status  # keep no reference to the starter's nursery while idle
            self._reported = True
            self._wake_waiters()
            await self._live()
        except BaseException as exc:
            error = sole_exception(exc)
            self._end(error)
            if error is exc:
                raise
            _reraise(error)
        self._end(None)

    async def _live(self) -> None:
        """The mailbox loop; opens the background nursery the first time it is needed."""
        mailbox = self._mailbox
        while True:
            if self._pending is not None and self._nursery is None:
                async with trio.open_nursery() as nursery:
                    self._nursery = nursery
                    pending, self._pending = self._pending, None
                    for fn, args in pending:
                        nursery.start_soon(fn, *args)
                    await self._live()
                    nursery.cancel_scope.cancel()
                return
            if self._phase != _RUNNING:
                break
            item = await mailbox.get()
            if item is _CLOSED:
                break
            if type(item) is not _Ask:
                await self._handle_tell(cast(MessageT, item))
            elif self._limit is None:
                await self._serve(item)
            else:
                await self._dispatch(item, self._limit)
        self._phase = _STOPPING
        mailbox.close()
        self._refuse_queued(None)
        await self.stopping()

    async def _handle_tell(self, message: MessageT) -> None:
        try:
            await self.handle(message)
        except self.answered_errors as exc:
            self.note_error(exc)
        self._handled += 1

    async def _serve(self, request: _Ask) -> None:
        """Handle one ask and answer it (in the mailbox loop, or in its own task)."""
        try:
            value = await self.handle(cast(MessageT, request.message))
        except self.answered_errors as exc:
            self.note_error(exc)
            request.fail(exc)
        except BaseException as exc:
            self._not_answered(request, exc)
            raise
        else:
            request.reply(value)
        self._handled += 1

    async def _dispatch(self, request: _Ask, limit: trio.Semaphore) -> None:
        """Serve ``request`` in its own task once a slot is free, or here if it is sequential."""
        try:
            concurrent = self.concurrent(cast(MessageT, request.message))
            if concurrent:
                await limit.acquire()  # all slots taken: the loop waits, the mailbox fills
        except BaseException as exc:
            self._not_answered(request, exc)
            raise
        if not concurrent:
            await self._serve(request)
            return
        # the first spawn queues the task: _live opens the nursery at the top of its loop
        self.spawn(self._serve_concurrently, request, limit)

    async def _serve_concurrently(self, request: _Ask, limit: trio.Semaphore) -> None:
        try:
            await self._serve(request)
        finally:
            limit.release()

    def _not_answered(self, request: _Ask, error: BaseException) -> None:
        """``error`` interrupted ``request``. A crash answers it now; a cancellation (a graceful
        stop, a crash elsewhere in the actor, a cancelled ``run``) leaves it for ``_end``, which
        knows which of those it was."""
        if isinstance(sole_exception(error), trio.Cancelled):
            if self._unanswered is None:
                self._unanswered = []
            self._unanswered.append(request)
        else:
            request.fail(self._refusal(request.message, error))

    def _refusal(self, message: object, error: BaseException | None) -> BaseException:
        if error is None or isinstance(sole_exception(error), trio.Cancelled):
            return ActorStopped(self._name, "stopped before answering")
        return ActorCrashed(self._name, type(message).__name__, error)

    def _refuse_queued(self, error: BaseException | None) -> None:
        for item in self._mailbox.drain():
            if type(item) is _Ask:
                item.fail(self._refusal(item.message, error))

    def _end(self, error: BaseException | None) -> None:
        self._mailbox.close()
        self._refuse_queued(error)
        unanswered, self._unanswered = self._unanswered, None
        for request in unanswered or ():
            request.fail(self._refusal(request.message, error))
        self._nursery = None
        self._pending = None
        if error is None or isinstance(error, trio.Cancelled):
            self._phase = _STOPPED
        else:
            self._phase = _CRASHED
            self._last_error = ErrorInfo.of(error)
        self._wake_waiters()


# --- references by name ----------------------------------------------------------------------

DEFAULT_RESTART_WAIT = 5.0
"""Seconds an ``ActorRef.tell`` waits for a restarting actor to come back."""


class ActorRef(Generic[MessageT, ReplyT]):
    """A typed reference to an actor by its registered name; it follows restarts.

    Each ``tell``/``ask`` resolves the name again in the registry, so it always reaches the
    current instance. Resolution rules:

    - name not registered (never was, or its supervisor removed it): :class:`ActorNotFound` at
      once;
    - registered but between lives (crashed, restarting, not yet accepting): wait for the new
      instance, up to ``restart_wait`` seconds for ``tell`` and within the ask's own ``timeout``
      for ``ask``, then :class:`ActorNotFound`; ``tell_nowait`` never waits;
    - registered to a supervisor, not an actor: :class:`ActorNotFound`.

    A message that reached an instance which then crashed is lost with it (as in Erlang): use
    ``ask`` when you need to know it was handled.
    """

    __slots__ = ("_registry", "name", "restart_wait")

    def __init__(
        self, registry: Registry, name: str, *, restart_wait: float = DEFAULT_RESTART_WAIT
    ) -> None:
        self._registry = registry
        self.name = name
        self.restart_wait = restart_wait

    def __repr__(self) -> str:
        return f"ActorRef({self.name!r})"

    def resolve_nowait(self) -> Actor[MessageT, ReplyT]:
        """The current instance if it accepts messages, else :class:`ActorNotFound`."""
        entry = self._registry.lookup(self.name)
        if entry is None:
            raise ActorNotFound(self.name)
        actor = self._accepting(entry)
        if actor is None:
            raise ActorNotFound(self.name, f"is {entry.state.value}, not accepting messages")
        return actor

    async def resolve(self, deadline: float) -> Actor[MessageT, ReplyT]:
        """The current instance, waiting until ``deadline`` (trio time) for a restart."""
        while True:
            entry = self._registry.lookup(self.name)
            if entry is None:
                raise ActorNotFound(self.name)
            actor = self._accepting(entry)
            if actor is not None:
                return actor
            with trio.move_on_at(deadline):
                await self._registry.wait_changed(entry)
                continue
            raise ActorNotFound(self.name, f"is {entry.state.value} and did not come back in time")

    def _accepting(self, entry: ActorEntry) -> Actor[MessageT, ReplyT] | None:
        instance = entry.instance
        if not isinstance(instance, Actor):
            if instance is not None:
                raise ActorNotFound(self.name, f"is a {entry.kind.value}, not an actor")
            return None
        if instance._mailbox.closed or entry.state not in (State.STARTING, State.RUNNING):
            return None
        return cast(Actor[MessageT, ReplyT], instance)

    async def tell(self, message: MessageT) -> None:
        actor = await self.resolve(trio.current_time() + self.restart_wait)
        await actor.tell(message)

    def tell_nowait(self, message: MessageT) -> None:
        self.resolve_nowait().tell_nowait(message)

    # The deadline is part of ask's contract (AskTimeout names the actor), hence the parameter.
    async def ask(
        self,
        message: MessageT,
        *,
        timeout: float = DEFAULT_ASK_TIMEOUT,  # noqa: ASYNC109
    ) -> ReplyT:
        start = trio.current_time()
        actor = await self.resolve(start + timeout)
        remaining = timeout - (trio.current_time() - start)
        if math.isfinite(timeout):
            remaining = max(remaining, 0.0)
        return await actor.ask(message, timeout=remaining)
