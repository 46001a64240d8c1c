"""Supervisors: restart failed children the way Erlang/OTP does.

A :class:`Supervisor` runs children described by :class:`ChildSpec` values (an id, a factory
``start`` returning a *fresh* child, a :class:`~runtime.policy.Restart` type and a shutdown
deadline). Children are anything :class:`~runtime.registry.Supervisable`: actors and other
supervisors, so supervisors nest into trees.

Rules, as in OTP:

- **Start order.** Children start one after another, each one's ``task_status.started()``
  awaited before the next. If a child fails to start while its supervisor is starting, the
  supervisor stops those already started and fails with that child's exception.
- **Stop order.** On shutdown, children stop in reverse start order. Each is asked to stop
  (``request_stop()``) and given ``shutdown`` seconds; one still running then is cancelled.
  Dynamic children (below) started last, so they stop first, and all at once, as OTP's
  ``simple_one_for_one`` stops its children: each is asked to stop at the same moment and
  cancelled once its own deadline has passed, so stopping ten thousand jobs takes as long as
  the slowest, not as long as all of them one after another.
- **Restart types.** ``PERMANENT`` children are always restarted, ``TRANSIENT`` ones only after a
  crash (an exception), ``TEMPORARY`` ones never. A crash reaches the supervisor as the child's
  own exception (single-exception groups from the child's nurseries are unwrapped);
  ``Cancelled``, ``KeyboardInterrupt`` and other ``BaseException``\\ s are never swallowed.
- **Strategies.** ``ONE_FOR_ONE`` restarts the child alone; ``ONE_FOR_ALL`` stops every other
  child (reverse order) and restarts all (start order); ``REST_FOR_ONE`` does the same for the
  child and those started after it. Temporary children stopped that way are not restarted.
- **Intensity.** More than ``intensity.max_restarts`` restarts within ``period_seconds`` and the
  supervisor stops its children and raises :class:`RestartIntensityExceeded` (its parent
  decides). A child that fails while being *re*started counts as another crash.
- **Backoff.** Each restart waits ``backoff.delay(attempt)``, ``attempt`` being the child's
  restarts within the intensity period. ``ONE_FOR_ONE`` waits in the restarted child's own task,
  so one flapping child never delays the others.

Dynamic children (one actor per job, thousands of them): :meth:`Supervisor.start_child`,
:meth:`Supervisor.start_child_nowait`, :meth:`Supervisor.stop_child`,
:meth:`Supervisor.stop_child_nowait`, :meth:`Supervisor.which_children`,
:meth:`Supervisor.count_children`. Each child costs one trio task; the bookkeeping is O(1) per
start, exit and stop.

:meth:`Supervisor.healthy` is what a systemd watchdog asks: False before it runs, once it has
failed, and while it shuts down. :meth:`Supervisor.wait_running` waits for the end of its start
(every static child started); :meth:`Supervisor.statistics` is its frozen record.
"""

from __future__ import annotations

import logging
import random
from collections import deque
from collections.abc import Callable, Sequence
from typing import ClassVar

import msgspec
import trio

from runtime.actor import _reraise, sole_exception
from runtime.errors import ActorNotFound, ActorStopped, NameTaken, RestartIntensityExceeded
from runtime.policy import Backoff, Restart, RestartIntensity, Strategy
from runtime.registry import ActorEntry, Kind, Registry, State, Supervisable
from runtime.statistics import Statistics

__all__ = [
    "ChildCounts",
    "ChildInfo",
    "ChildSpec",
    "Supervisor",
    "SupervisorStatistics",
]

log = logging.getLogger(__name__)


class ChildSpec(msgspec.Struct, frozen=True):
    """How a supervisor runs one child.

    ``start`` is a zero-argument factory returning a *fresh* child on every call (an ``Actor``
    or a ``Supervisor``): a restart never reuses an instance. ``shutdown`` is the seconds a
    child gets to stop after ``request_stop()`` before it is cancelled (``math.inf``: wait).
    """

    id: str
    start: Callable[[], Supervisable]
    restart: Restart = Restart.PERMANENT
    shutdown: float = 5.0


class ChildInfo(msgspec.Struct, frozen=True):
    """One child as :meth:`Supervisor.which_children` reports it."""

    id: str
    name: str | None  # None until its first instance exists
    kind: str | None
    state: str
    restart: str
    restarts: int


class ChildCounts(msgspec.Struct, frozen=True):
    """:meth:`Supervisor.count_children`, as OTP's ``count_children``."""

    specs: int
    active: int
    supervisors: int
    workers: int


class SupervisorStatistics(Statistics, frozen=True):
    """A point-in-time view of one supervisor.

    ``restarts`` (the common part) counts the restarts of this supervisor by its own parent;
    ``child_restarts`` the restarts it made of its children. ``mailbox_depth`` and ``handled``
    are the child exits waiting and handled.
    """

    strategy: str
    children: int
    active: int
    child_restarts: int
    healthy: bool

    def facts(self) -> dict[str, str]:
        return {"strategy": self.strategy, "children": str(self.children)}


class _Child:
    """A supervisor's record of one child id, across its incarnations.

    It doubles as the ``task_status`` handed to the child's ``run``: ``started()`` marks the
    child running in the registry and forwards to whoever awaits the start.
    """

    __slots__ = (
        "_starter",
        "alive",
        "awaited",
        "done",
        "dynamic",
        "entry",
        "generation",
        "instance",
        "owner",
        "recent",
        "scope",
        "spec",
        "stopping",
    )

    def __init__(self, owner: Supervisor, spec: ChildSpec) -> None:
        self.owner = owner
        self.spec = spec
        self.entry: ActorEntry | None = None
        self.instance: Supervisable | None = None  # the current incarnation, once created
        self.scope: trio.CancelScope | None = None
        self.alive = False  # a task runs (or is scheduled to run) this child
        self.awaited = False  # a start_child() caller waits: start failures go to it
        self.dynamic = False  # started by start_child(_nowait), not one of the specs
        self.stopping = False  # the supervisor is stopping it on purpose
        self.generation = 0
        self.done: trio.Event | None = None  # created by whoever waits for the task's end
        self.recent: tuple[float, ...] = ()  # this child's restart times within the period
        self._starter: trio.TaskStatus[None] | None = None

    def started(self, value: None = None) -> None:
        """The child's ``task_status.started()``."""
        if self.entry is not None:
            self.owner.registry.set_state(self.entry, State.RUNNING)
        starter, self._starter = self._starter, None
        if starter is not None:
            starter.started()

    @property
    def state(self) -> State:
        if self.entry is not None:
            return self.entry.state
        return State.STOPPING if self.stopping else State.STARTING


_NEW, _STARTING, _RUNNING, _STOPPING, _STOPPED, _FAILED = range(6)
_PHASES = ("new", "starting", "running", "stopping", "stopped", "failed")


class Supervisor:
    """Runs and restarts children; itself a child of another supervisor, or the root.

    The root creates the :class:`Registry` (or uses ``registry``) and registers itself; nested
    supervisors receive theirs from their parent through ``attach``. ``rng`` draws the backoff
    jitter (pass ``random.Random(seed)`` for reproducible tests).
    """

    kind: ClassVar[Kind] = Kind.SUPERVISOR

    def __init__(
        self,
        name: str,
        children: Sequence[ChildSpec] = (),
        *,
        strategy: Strategy = Strategy.ONE_FOR_ONE,
        intensity: RestartIntensity | None = None,
        backoff: Backoff | None = None,
        registry: Registry | None = None,
        rng: random.Random | None = None,
    ) -> None:
        ids = [spec.id for spec in children]
        if len(set(ids)) != len(ids):
            raise ValueError(f"supervisor {name!r}: child ids must be unique, got {ids}")
        self._name = name
        self._specs = tuple(children)
        self.strategy = strategy
        self.intensity = intensity if intensity is not None else RestartIntensity()
        self.backoff = backoff if backoff is not None else Backoff()
        self._registry = registry
        self._rng = rng if rng is not None else random.Random()
        self._entry: ActorEntry | None = None
        self._is_root = False
        self._children: dict[str, _Child] = {}
        self._exits: deque[tuple[_Child, int, BaseException | None]] = deque()
        self._wakeup = trio.lowlevel.ParkingLot()
        self._nursery: trio.Nursery | None = None
        self._work_scope: trio.CancelScope | None = None
        self._phase = _NEW
        self._stop_requested = False
        self._failure: RestartIntensityExceeded | None = None
        self._history: tuple[float, ...] = ()
        self._restarts = 0
        self._exits_handled = 0
        self._up: trio.Event | None = None  # created by the first wait_running()

    def __repr__(self) -> str:
        return f"<Supervisor {self._name!r} {_PHASES[self._phase]} {len(self._children)} children>"

    @property
    def name(self) -> str:
        return self._name

    @property
    def registry(self) -> Registry:
        """The tree's registry (created here, on first use, when this is the root)."""
        if self._registry is None:
            self._registry = Registry()
        return self._registry

    # --- the Supervisable protocol ---------------------------------------------------------

    def attach(self, registry: Registry, entry: ActorEntry) -> None:
        self._registry = registry
        self._entry = entry

    def request_stop(self) -> None:
        """Stop gracefully: children in reverse order, each within its deadline. Never blocks."""
        self._stop_requested = True
        self._wakeup.unpark_all()
        self._wake_waiters()
        if self._work_scope is not None:
            self._work_scope.cancel()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Start the children in order, signal started, supervise until asked to stop.

        Returns after a graceful stop. Raises :class:`RestartIntensityExceeded` when restarts
        exceed the intensity, or a child's own exception when it fails to start.
        """
        if self._phase != _NEW:
            raise RuntimeError(f"supervisor {self._name!r} has already run; make a new one")
        self._phase = _STARTING
        registry = self.registry
        if self._entry is None:
            self._is_root = True
            self._entry = self._register_root(registry)
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                try:
                    for spec in self._specs:
                        await self._start(spec, nursery, awaited=True)
                except BaseException:
                    await self._stop_all()
                    raise
                self._phase = _RUNNING
                self._wake_waiters()
                if self._is_root:
                    registry.set_state(self._entry, State.RUNNING)
                task_status.started()
                del task_status
                await self._supervise()
                self._phase = _STOPPING
                if self._is_root:
                    registry.set_state(self._entry, State.STOPPING)
                await self._stop_all()
        except BaseException as exc:
            error = sole_exception(exc)
            self._end(error)
            if error is exc:
                raise
            _reraise(error)
        self._end(self._failure)
        if self._failure is not None:
            raise self._failure

    async def wait_running(self) -> None:
        """Wait until this supervisor runs: every static child has started, dynamic children
        may be added. Returns at once if it already does.

        Raises :class:`ActorStopped` if it fails to start, stops or is asked to stop instead (or
        has since): it will not take dynamic children then.
        """
        if self._phase in (_NEW, _STARTING) and not self._stop_requested:
            if self._up is None:
                self._up = trio.Event()
            await self._up.wait()
        else:
            await trio.lowlevel.checkpoint()
        if self._phase != _RUNNING or self._stop_requested:
            raise ActorStopped(self._name, f"is {_PHASES[self._phase]}, not running")

    def _wake_waiters(self) -> None:
        up, self._up = self._up, None
        if up is not None:
            up.set()

    # --- dynamic children ----------------------------------------------------------------

    async def start_child(self, spec: ChildSpec) -> Supervisable:
        """Start a new child and wait until it has started; returns its instance.

        A child that fails to start is forgotten and its exception is raised here. Raises
        :class:`NameTaken` for a duplicate id, :class:`ActorStopped` unless running.
        """
        record = await self._start(spec, self._running_nursery(), awaited=True, dynamic=True)
        assert record.instance is not None
        return record.instance

    def start_child_nowait(self, spec: ChildSpec) -> None:
        """Schedule a new child's start and return at once. A failure to start is a crash
        like any other (restarted or not according to ``spec.restart``)."""
        nursery = self._running_nursery()
        record = self._add(spec)
        record.alive = True
        record.dynamic = True
        nursery.start_soon(self._run_child, record, 0.0)

    async def stop_child(self, child_id: str) -> None:
        """Stop a child (``request_stop``, then cancel after its deadline) and forget it.

        Raises :class:`ActorNotFound` when no child has that id.
        """
        record = self._child(child_id)
        await self._halt(record)
        self._remove(record)

    def stop_child_nowait(self, child_id: str) -> None:
        """Ask a child to stop and return at once; its deadline is enforced in the background."""
        record = self._child(child_id)
        nursery = self._running_nursery()
        self._begin_halt(record)
        nursery.start_soon(self._stop_and_remove, record)

    def find_child(self, child_id: str) -> Supervisable | None:
        """The current instance of a child (None if unknown or between incarnations)."""
        record = self._children.get(child_id)
        return record.instance if record is not None and record.alive else None

    def which_children(self) -> list[ChildInfo]:
        """Every child in start order."""
        return [
            ChildInfo(
                id=child_id,
                name=record.entry.name if record.entry is not None else None,
                kind=record.entry.kind.value if record.entry is not None else None,
                state=record.state.value,
                restart=record.spec.restart.value,
                restarts=record.entry.restarts if record.entry is not None else 0,
            )
            for child_id, record in self._children.items()
        ]

    def count_children(self) -> ChildCounts:
        active = supervisors = 0
        for record in self._children.values():
            if record.alive and record.state is State.RUNNING:
                active += 1
            if record.entry is not None and record.entry.kind is Kind.SUPERVISOR:
                supervisors += 1
        specs = len(self._children)
        return ChildCounts(
            specs=specs, active=active, supervisors=supervisors, workers=specs - supervisors
        )

    # --- health ------------------------------------------------------------------------

    def healthy(self) -> bool:
        """True while running normally; False before, when failed, or while shutting down."""
        return self._phase == _RUNNING and not self._stop_requested and self._failure is None

    def statistics(self) -> SupervisorStatistics:
        """This supervisor now, as a frozen record (one pass over its children)."""
        counts = self.count_children()
        return SupervisorStatistics(
            name=self._name,
            phase=_PHASES[self._phase],
            restarts=self._entry.restarts if self._entry is not None else 0,
            mailbox_depth=len(self._exits),
            handled=self._exits_handled,
            strategy=self.strategy.value,
            children=counts.specs,
            active=counts.active,
            child_restarts=self._restarts,
            healthy=self.healthy(),
        )

    # --- starting ------------------------------------------------------------------------

    def _register_root(self, registry: Registry) -> ActorEntry:
        entry = registry.lookup(self._name)
        ended = (State.STOPPED, State.FAILED)
        if entry is not None and entry.parent is None and entry.state in ended:
            registry.rebind(entry, self)  # a new run of a root that ended before
            return entry
        return registry.register(self)

    def _running_nursery(self) -> trio.Nursery:
        if self._phase != _RUNNING or self._stop_requested or self._nursery is None:
            raise ActorStopped(self._name, f"is {_PHASES[self._phase]}, not running")
        return self._nursery

    def _add(self, spec: ChildSpec) -> _Child:
        if spec.id in self._children:
            raise NameTaken(spec.id, f"supervisor {self._name!r}")
        record = self._children[spec.id] = _Child(self, spec)
        return record

    def _child(self, child_id: str) -> _Child:
        record = self._children.get(child_id)
        if record is None:
            raise ActorNotFound(child_id, f"is not a child of supervisor {self._name!r}")
        return record

    async def _start(
        self, spec: ChildSpec, nursery: trio.Nursery, *, awaited: bool, dynamic: bool = False
    ) -> _Child:
        record = self._add(spec)
        record.alive = True
        record.awaited = awaited
        record.dynamic = dynamic
        try:
            await nursery.start(self._run_child, record, 0.0)
        finally:
            record.awaited = False
        return record

    def _bind(self, record: _Child, instance: Supervisable) -> None:
        registry = self.registry
        if record.entry is None:
            record.entry = registry.register(instance, parent=self._entry)
        else:
            registry.rebind(record.entry, instance)
        record.instance = instance
        instance.attach(registry, record.entry)

    async def _run_child(
        self,
        record: _Child,
        delay: float,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """The task of one child incarnation: (back off,) create it, run it, report its end."""
        if task_status is not trio.TASK_STATUS_IGNORED:
            record._starter = task_status
        del task_status
        record.generation += 1
        generation = record.generation
        record.instance = None
        error: BaseException | None = None
        try:
            try:
                with trio.CancelScope() as scope:
                    record.scope = scope
                    if not record.stopping:
                        if delay > 0:
                            await trio.sleep(delay)
                        instance = record.spec.start()
                        self._bind(record, instance)
                        await instance.run(task_status=record)
            except* Exception as group:
                error = sole_exception(group)
        except BaseException:
            # Cancelled or KeyboardInterrupt: this supervisor (or a start_child caller, or a
            # group restart cut short by request_stop) is being torn down: forget the child so
            # no stale name stays registered, and never swallow the exception.
            record._starter = None
            self._remove(record)
            self._task_ended(record)
            raise
        self._task_ended(record)
        starter = record._starter
        if starter is not None:  # it ended before it reported started
            record._starter = None
            if record.awaited:  # start_child() / initial start: the caller gets the error
                self._remove(record)
                if error is None:
                    error = ActorStopped(record.spec.id, "ended before it started")
                raise error
            starter.started()  # a group restart waits: let it go on, the exit is queued below
        self._child_exited(record, generation, error)

    def _task_ended(self, record: _Child) -> None:
        record.alive = False
        record.scope = None
        done, record.done = record.done, None
        if done is not None:
            done.set()

    def _child_exited(self, record: _Child, generation: int, error: BaseException | None) -> None:
        entry = record.entry
        supervising = self._phase in (_STARTING, _RUNNING) and not self._stop_requested
        if record.stopping or not supervising:
            if entry is not None and record.stopping:
                self.registry.set_state(entry, State.STOPPED, error=error)
            return
        if entry is not None:
            self.registry.set_state(entry, State.FAILED if error else State.STOPPED, error=error)
        if error is not None:
            log.warning(
                "supervisor %r: child %r crashed: %s: %s",
                self._name,
                record.spec.id,
                type(error).__name__,
                error,
            )
        self._exits.append((record, generation, error))
        self._wakeup.unpark_all()

    # --- supervising -----------------------------------------------------------------------

    async def _supervise(self) -> None:
        """Handle child exits one at a time until asked to stop or the intensity is exceeded."""
        while not self._stop_requested:
            if not self._exits:
                await self._wakeup.park()
                continue
            record, generation, error = self._exits.popleft()
            self._exits_handled += 1
            if record.generation != generation or self._children.get(record.spec.id) is not record:
                continue  # an exit of an incarnation already replaced or removed
            with trio.CancelScope() as self._work_scope:
                await self._on_exit(record, error)
            self._work_scope = None
            if self._failure is not None:
                return

    async def _on_exit(self, record: _Child, error: BaseException | None) -> None:
        spec = record.spec
        if not spec.restart.restarts_after(crashed=error is not None):
            self._remove(record)
            return
        now = trio.current_time()
        allowed, self._history = self.intensity.admit(self._history, now)
        if not allowed:
            self._failure = RestartIntensityExceeded(
                self._name,
                spec.id,
                self.intensity.max_restarts,
                self.intensity.period_seconds,
                error,
            )
            log.error("%s", self._failure)
            return
        self._restarts += 1
        threshold = now - self.intensity.period_seconds
        record.recent = (*(t for t in record.recent if t >= threshold), now)
        delay = self.backoff.delay(len(record.recent), self._rng)
        if self.strategy is Strategy.ONE_FOR_ONE:
            self._mark_restarting(record)
            assert self._nursery is not None
            record.alive = True
            self._nursery.start_soon(self._run_child, record, delay)
        else:
            await self._restart_group(record, delay)

    def _mark_restarting(self, record: _Child) -> None:
        record.stopping = False
        if record.entry is not None:
            self.registry.set_state(record.entry, State.RESTARTING)

    async def _restart_group(self, failed: _Child, delay: float) -> None:
        """ONE_FOR_ALL / REST_FOR_ONE: stop the group (reverse order), restart it (in order)."""
        records = list(self._children.values())
        group = (
            records if self.strategy is Strategy.ONE_FOR_ALL else records[records.index(failed) :]
        )
        for record in reversed(group):
            if record is not failed:
                await self._halt(record)
        survivors: list[_Child] = []
        for record in group:
            if record is not failed and record.spec.restart is Restart.TEMPORARY:
                self._remove(record)
            else:
                self._mark_restarting(record)
                survivors.append(record)
        if delay > 0:
            await trio.sleep(delay)
        assert self._nursery is not None
        for record in survivors:
            if self._children.get(record.spec.id) is not record:
                continue  # stop_child() took it away meanwhile
            record.alive = True
            await self._nursery.start(self._run_child, record, 0.0)
            if not record.alive:
                break  # it failed to start: its exit is queued and will be handled next

    # --- stopping ------------------------------------------------------------------------

    def _begin_halt(self, record: _Child) -> None:
        if record.stopping or not record.alive:
            return
        record.stopping = True
        if record.entry is not None:
            self.registry.set_state(record.entry, State.STOPPING)
        instance = record.instance
        if instance is None:
            if record.scope is not None:  # backing off, or not yet created: nothing to ask
                record.scope.cancel()
        else:
            instance.request_stop()

    async def _halt(self, record: _Child) -> None:
        """Stop one child: ``request_stop()``, wait up to its deadline, then cancel it."""
        if not record.alive:
            return
        self._begin_halt(record)
        if record.done is None:
            record.done = trio.Event()
        done = record.done
        with trio.move_on_after(record.spec.shutdown):
            await done.wait()
        if record.alive:
            log.warning(
                "supervisor %r: child %r ignored its %g s shutdown deadline; cancelling it",
                self._name,
                record.spec.id,
                record.spec.shutdown,
            )
            if record.scope is not None:
                record.scope.cancel()
            await done.wait()

    async def _stop_and_remove(self, record: _Child) -> None:
        await self._halt(record)
        self._remove(record)

    async def _stop_all(self) -> None:
        """Stop every child, then forget them all: the dynamic ones first, all at once, each
        within its own deadline (as ``simple_one_for_one``); then the static ones in reverse
        start order."""
        records = list(self._children.values())
        dynamic = [record for record in records if record.dynamic]
        if dynamic:
            async with trio.open_nursery() as nursery:
                for record in dynamic:
                    self._begin_halt(record)  # every request_stop() at the same moment
                for record in dynamic:
                    nursery.start_soon(self._halt, record)
            for record in dynamic:
                self._remove(record)
        for record in reversed(records):
            if not record.dynamic:
                await self._halt(record)
                self._remove(record)

    def _remove(self, record: _Child) -> None:
        if self._children.get(record.spec.id) is record:
            del self._children[record.spec.id]
        if record.entry is not None:
            self.registry.unregister(record.entry)

    def _end(self, error: BaseException | None) -> None:
        self._nursery = None
        for record in list(self._children.values()):  # left behind only by a cancellation
            self._remove(record)
        failed = error is not None and not isinstance(error, trio.Cancelled)
        self._phase = _FAILED if failed else _STOPPED
        self._wake_waiters()
        if self._is_root and self._entry is not None:
            self.registry.set_state(
                self._entry, State.FAILED if failed else State.STOPPED, error=error
            )
