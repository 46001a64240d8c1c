"""Statistics records, waiting for "running", and stopping dynamic children all at once."""

from __future__ import annotations

import enum
import math

import msgspec
import pytest
import trio
import trio.testing

from runtime import (
    Actor,
    ActorCrashed,
    ActorRef,
    ActorStatistics,
    ActorStopped,
    Backoff,
    ChildSpec,
    OutcomeTally,
    Registry,
    Restart,
    Statistics,
    Supervisable,
    Supervisor,
    SupervisorStatistics,
    Timings,
)
from runtime.statistics import fact_text, outcome_counts

NO_BACKOFF = Backoff(initial=0.0)


class Echo(Actor[str, str]):
    async def handle(self, message: str) -> str:
        if message == "crash":
            raise RuntimeError("boom")
        return message


class Colour(enum.Enum):
    RED = "red"


class Inner(msgspec.Struct, frozen=True):
    sent: int
    mined: int
    note: str | None = None


class CounterStatistics(ActorStatistics, frozen=True, kw_only=True):
    counted: int
    enabled: bool
    ratio: float
    colour: Colour
    nothing: int | None
    inner: Inner
    names: tuple[str, ...]
    records: tuple[Inner, ...]


class Counter(Actor[str, str]):
    """An actor with a record of its own."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.counted = 0

    async def handle(self, message: str) -> str:
        self.counted += 1
        return message

    def statistics(self) -> CounterStatistics:
        return CounterStatistics(
            **self.common_statistics(),
            counted=self.counted,
            enabled=True,
            ratio=0.25,
            colour=Colour.RED,
            nothing=None,
            inner=Inner(sent=3, mined=2),
            names=("a", "b"),
            records=(Inner(sent=1, mined=1),),
        )


# --- records ------------------------------------------------------------------------------------


def test_fact_text_keeps_lines_short() -> None:
    assert fact_text(None) is None
    assert (fact_text(True), fact_text(False)) == ("on", "off")
    assert fact_text(1.5) == "1.5" and fact_text(7) == "7" and fact_text("x") == "x"
    assert fact_text(Colour.RED) == "red"
    assert fact_text(Inner(sent=3, mined=2)) == "sent 3, mined 2"
    assert fact_text(("a", "b")) == "a,b" and fact_text(()) == "none"
    assert fact_text((Inner(sent=1, mined=1),)) is None  # records of records: too long
    assert fact_text(object()) is None


async def test_an_actor_record_has_the_common_part_and_its_own_facts() -> None:
    registry = Registry()
    root = Supervisor("root", [ChildSpec("counter", lambda: Counter("counter"))], registry=registry)
    async with trio.open_nursery() as nursery:
        await nursery.start(root.run)
        ref: ActorRef[str, str] = ActorRef(registry, "counter")
        await ref.ask("one")
        await ref.ask("two")
        (root_stats, stats) = registry.collect()
        assert isinstance(stats, CounterStatistics)
        assert (stats.name, stats.phase, stats.handled, stats.counted) == (
            "counter",
            "running",
            2,
            2,
        )
        assert stats.facts() == {
            "counted": "2",
            "enabled": "on",
            "ratio": "0.25",
            "colour": "red",
            "inner": "sent 3, mined 2",
            "names": "a,b",
        }
        with pytest.raises(AttributeError):
            stats.counted = 5  # type: ignore[misc]  # frozen
        assert isinstance(root_stats, SupervisorStatistics)
        assert root_stats.facts() == {"strategy": "one_for_one", "children": "1"}
        (node,) = registry.snapshot()
        assert node.children[0].info == stats.facts()  # the tree shows the record's facts
        root.request_stop()


async def test_records_count_restarts_and_collect_walks_the_tree_in_order() -> None:
    registry = Registry()

    def jobs() -> Supervisor:
        return Supervisor("jobs", [ChildSpec("job-1", lambda: Echo("job-1"))])

    root = Supervisor(
        "root",
        [ChildSpec("chain", lambda: Echo("chain")), ChildSpec("jobs", jobs)],
        registry=registry,
        backoff=NO_BACKOFF,
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(root.run)
        await root.start_child(ChildSpec("reaper", lambda: Echo("reaper")))
        with pytest.raises(ActorCrashed):
            await ActorRef[str, str](registry, "chain").ask("crash")
        await trio.testing.wait_all_tasks_blocked()
        records = registry.collect()
        assert [r.name for r in records] == ["root", "chain", "jobs", "job-1", "reaper"]
        chain = records[1]
        assert isinstance(chain, ActorStatistics) and chain.restarts == 1
        assert chain.phase == "running" and chain.last_error is None  # a fresh instance
        root_stats = records[0]
        assert isinstance(root_stats, SupervisorStatistics)
        assert (root_stats.restarts, root_stats.child_restarts) == (0, 1)
        assert all(isinstance(r, Statistics) for r in records)
        root.request_stop()


def test_an_outcome_tally_counts_times_and_stays_bounded() -> None:
    tally = OutcomeTally(bounds=(0.1, 1.0), max_kinds=2)
    tally.add("sbatch", "ok", 0.05)
    tally.add("sbatch", "ok", 0.5)
    tally.add("sbatch", "lost", 3.0)
    tally.add("squeue", "ok")
    tally.add("scancel", "ok", math.nan)  # a third kind: counted as "other"
    other, sbatch, squeue = tally.snapshot()  # sorted by kind
    assert sbatch.kind == "sbatch" and sbatch.counts == (("lost", 1), ("ok", 2))
    assert sbatch.timings == Timings(bounds=(0.1, 1.0), counts=(1, 1, 1), seconds=3.55)
    assert sbatch.timings.count == 3
    assert sbatch.timings.cumulative() == [(0.1, 1), (1.0, 2), (math.inf, 3)]
    assert squeue.timings is None and squeue.count("ok") == 1 and squeue.count("lost") == 0
    assert other.kind == "other" and other.timings is not None and other.timings.seconds == 0.0
    assert outcome_counts(tally.snapshot())[("sbatch", "ok")] == 2


# --- waiting for "running" ----------------------------------------------------------------------


class SlowStart(Actor[str, str]):
    def __init__(self, name: str, gate: trio.Event) -> None:
        super().__init__(name)
        self.gate = gate

    async def started(self) -> None:
        await self.gate.wait()

    async def handle(self, message: str) -> str:
        return message


async def released(target: Supervisable, gate: trio.Event, nursery: trio.Nursery) -> list[str]:
    """Run ``target`` with a task waiting for it to be running; open ``gate`` (which holds its
    start back). The phases the waiter saw when it woke, before and after the gate opened."""
    woke: list[str] = []

    async def waiter() -> None:
        await target.wait_running()
        woke.append(target.statistics().phase)

    nursery.start_soon(waiter)
    nursery.start_soon(target.run)
    await trio.testing.wait_all_tasks_blocked()
    woke.append("gate")
    gate.set()
    await trio.testing.wait_all_tasks_blocked()
    return woke


async def test_wait_running_returns_once_an_actor_has_started() -> None:
    gate = trio.Event()
    actor = SlowStart("slow", gate)
    async with trio.open_nursery() as nursery:
        assert await released(actor, gate, nursery) == ["gate", "running"]
        await actor.wait_running()  # already running: at once
        actor.request_stop()
    with pytest.raises(ActorStopped, match="not running"):
        await actor.wait_running()


async def test_wait_running_raises_when_the_actor_ends_first() -> None:
    class Failing(Actor[str, str]):
        async def started(self) -> None:
            raise OSError("no socket")

    actor = Failing("failing")
    outcome: list[BaseException] = []

    async def waiter() -> None:
        try:
            await actor.wait_running()
        except ActorStopped as exc:
            outcome.append(exc)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter)
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(OSError, match="no socket"):
            await actor.run()
    assert len(outcome) == 1 and "crashed" in str(outcome[0])


async def test_wait_running_of_a_supervisor_waits_for_every_static_child() -> None:
    gate = trio.Event()
    supervisor = Supervisor(
        "jobs",
        [ChildSpec("a", lambda: Echo("a")), ChildSpec("slow", lambda: SlowStart("slow", gate))],
    )
    async with trio.open_nursery() as nursery:
        assert await released(supervisor, gate, nursery) == ["gate", "running"]
        supervisor.request_stop()
        with pytest.raises(ActorStopped):
            await supervisor.wait_running()  # asked to stop: it takes no new children


# --- stopping dynamic children ------------------------------------------------------------------


class Lingering(Actor[str, str]):
    """Stops gracefully only once every sibling has been asked to stop too; one stopped one
    after the other would wait for the others until its deadline cancels it."""

    def __init__(self, name: str, asked: list[str], count: int, everyone: trio.Event) -> None:
        super().__init__(name)
        self.asked = asked
        self.count = count
        self.everyone = everyone
        self.graceful = False

    def request_stop(self) -> None:
        self.asked.append(self.name)
        if len(self.asked) == self.count:
            self.everyone.set()
        super().request_stop()

    async def stopping(self) -> None:
        await self.everyone.wait()
        self.graceful = True


async def test_dynamic_children_are_asked_to_stop_all_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    count = 50
    asked: list[str] = []
    everyone = trio.Event()
    children: list[Lingering] = []
    supervisor = Supervisor("jobs", [ChildSpec("dispatcher", lambda: Echo("dispatcher"))])

    def lingering(name: str) -> ChildSpec:
        def start() -> Lingering:
            children.append(Lingering(name, asked, count, everyone))
            return children[-1]

        return ChildSpec(name, start, restart=Restart.TEMPORARY, shutdown=5.0)

    async with trio.open_nursery() as nursery:
        await nursery.start(supervisor.run)
        for index in range(count):
            supervisor.start_child_nowait(lingering(f"job-{index}"))
        await trio.testing.wait_all_tasks_blocked()
        supervisor.request_stop()
    assert supervisor.statistics().phase == "stopped"
    assert sorted(asked) == sorted(f"job-{index}" for index in range(count))
    assert len(children) == count and all(child.graceful for child in children)


class Deaf(Actor[str, str]):
    """Ignores request_stop (its stopping() never returns); notes when it is cancelled."""

    def __init__(self, name: str, cancelled_at: list[float]) -> None:
        super().__init__(name)
        self.cancelled_at = cancelled_at

    async def stopping(self) -> None:
        try:
            await trio.sleep_forever()
        finally:
            self.cancelled_at.append(trio.current_time())


def deaf(name: str, cancelled_at: list[float]) -> ChildSpec:
    def start() -> Deaf:
        return Deaf(name, cancelled_at)

    return ChildSpec(name, start, shutdown=5.0)


async def test_dynamic_children_share_one_deadline_then_static_ones_stop_in_order(
    autojump_clock: trio.testing.MockClock,
) -> None:
    cancelled_at: list[float] = []
    order: list[str] = []

    class Static(Actor[str, str]):
        async def stopping(self) -> None:
            order.append(self.name)

    supervisor = Supervisor(
        "jobs",
        [
            ChildSpec("first", lambda: Static("first")),
            ChildSpec("second", lambda: Static("second")),
        ],
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(supervisor.run)
        for index in range(10):
            await supervisor.start_child(deaf(f"deaf-{index}", cancelled_at))
        began = trio.current_time()
        supervisor.request_stop()
    # every deaf child got the same 5 s, counted from the same moment: cancelled together
    assert cancelled_at == [began + 5.0] * 10
    assert order == ["second", "first"]  # then the static children, in reverse start order
