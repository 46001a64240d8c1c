"""Supervisors: restart types, strategies, intensity, backoff, start/stop order, deadlines,
nesting, dynamic children at scale, and the pure policy values behind them."""

from __future__ import annotations

import random

import pytest
import trio
import trio.lowlevel
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime import (
    Actor,
    ActorCrashed,
    ActorNotFound,
    ActorRef,
    ActorStopped,
    Backoff,
    ChildSpec,
    NameTaken,
    Restart,
    RestartIntensity,
    RestartIntensityExceeded,
    State,
    Strategy,
    Supervisor,
)

NO_BACKOFF = Backoff(initial=0.0)


class Member(Actor[str, str]):
    """Logs its start and graceful stop; "crash" raises, "end" returns from run (normal exit),
    "hang" blocks its handler forever (it then ignores request_stop)."""

    __slots__ = ("log",)

    def __init__(self, name: str, log: list[tuple[str, str]]) -> None:
        super().__init__(name)
        self.log = log

    async def started(self) -> None:
        self.log.append(("start", self.name))

    async def stopping(self) -> None:
        self.log.append(("stop", self.name))

    async def handle(self, message: str) -> str:
        if message == "crash":
            raise ValueError(f"{self.name} crashed")
        if message == "end":
            self.request_stop()
        if message == "hang":
            await trio.sleep_forever()
        return message


def member(name: str, log: list[tuple[str, str]], **kw: object) -> ChildSpec:
    def start() -> Member:
        return Member(name, log)

    return ChildSpec(name, start, **kw)  # type: ignore[arg-type]


async def settle() -> None:
    await trio.testing.wait_all_tasks_blocked()


def instance(supervisor: Supervisor, child_id: str) -> Member:
    child = supervisor.find_child(child_id)
    assert isinstance(child, Member)
    return child


# --- restart types ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("restart", "exit_message", "restarted"),
    [
        (Restart.PERMANENT, "crash", True),
        (Restart.PERMANENT, "end", True),
        (Restart.TRANSIENT, "crash", True),
        (Restart.TRANSIENT, "end", False),
        (Restart.TEMPORARY, "crash", False),
        (Restart.TEMPORARY, "end", False),
    ],
)
async def test_restart_types(restart: Restart, exit_message: str, restarted: bool) -> None:
    log: list[tuple[str, str]] = []
    supervisor = Supervisor("root", [member("a", log, restart=restart)], backoff=NO_BACKOFF)
    async with trio.open_nursery() as nursery:
        await nursery.start(supervisor.run)
        first = instance(supervisor, "a")
        first.tell_nowait(exit_message)
        await settle()
        if restarted:
            second = instance(supervisor, "a")
            assert second is not first
            assert supervisor.statistics().child_restarts == 1
            entry = supervisor.registry.lookup("a")
            assert entry is not None and entry.restarts == 1 and entry.state is State.RUNNING
        else:
            assert supervisor.find_child("a") is None
            assert supervisor.which_children() == []
            assert "a" not in supervisor.registry
            assert supervisor.statistics().child_restarts == 0
        supervisor.request_stop()


# --- strategies, start order and stop order ---------------------------------------------------


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        (Strategy.ONE_FOR_ONE, [("start", "b")]),
        (
            Strategy.ONE_FOR_ALL,
            [("stop", "c"), ("stop", "a"), ("start", "a"), ("start", "b"), ("start", "c")],
        ),
        (Strategy.REST_FOR_ONE, [("stop", "c"), ("start", "b"), ("start", "c")]),
    ],
)
async def test_strategies(strategy: Strategy, expected: list[tuple[str, str]]) -> None:
    log: list[tuple[str, str]] = []
    specs = [member(name, log) for name in "abc"]
    supervisor = Supervisor("root", specs, strategy=strategy, backoff=NO_BACKOFF)
    async with trio.open_nursery() as nursery:
        await nursery.start(supervisor.run)
        assert log == [("start", "a"), ("start", "b"), ("start", "c")]
        before = {name: instance(supervisor, name) for name in "abc"}
        log.clear()
        before["b"].tell_nowait("crash")
        await settle()
        assert log == expected
        restarted = {name for name in "abc" if instance(supervisor, name) is not before[name]}
        assert restarted == {name for kind, name in expected if kind == "start"}
        assert [c.id for c in supervisor.which_children()] == ["a", "b", "c"]  # order kept
        log.clear()
        supervisor.request_stop()
    assert log == [("stop", "c"), ("stop", "b"), ("stop", "a")]


async def test_temporary_siblings_stopped_by_one_for_all_are_not_restarted() -> None:
    log: list[tuple[str, str]] = []
    specs = [member("a", log), member("t", log, restart=Restart.TEMPORARY), member("c", log)]
    supervisor = Supervisor("root", specs, strategy=Strategy.ONE_FOR_ALL, backoff=NO_BACKOFF)
    async with trio.open_nursery() as nursery:
        await nursery.start(supervisor.run)
        instance(supervisor, "c").tell_nowait("crash")
        await settle()
        assert [c.id for c in supervisor.which_children()] == ["a", "c"]
        assert "t" not in supervisor.registry
        supervisor.request_stop()


async def test_children_start_in_order_each_awaited(
    autojump_clock: trio.testing.MockClock,
) -> None:
    order: list[str] = []

    class Slow(Actor[str, None]):
        __slots__ = ()

        async def started(self) -> None:
            order.append(f"begin {self.name}")
            await trio.sleep(1)
            order.append(f"ready {self.name}")

        async def handle(self, message: str) -> None:
            return None

    def slow(name: str) -> ChildSpec:
        return ChildSpec(name, lambda: Slow(name))

    supervisor = Supervisor("root", [slow("a"), slow("b")])
    async with trio.open_nursery() as nursery:
        await nursery.start(supervisor.run)
        assert order == ["begin a", "ready a", "begin b", "ready b"]
        assert supervisor.healthy()
        supervisor.request_stop()


# --- shutdown deadlines -----------------------------------------------------------------------


async def test_a_child_that_ignores_request_stop_is_cancelled_after_its_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[tuple[str, str]] = []
    specs = [member("polite", log, shutdown=10.0), member("stubborn", log, shutdown=2.5)]
    supervisor = Supervisor("root", specs)
    async with trio.open_nursery() as nursery:
        await nursery.start(supervisor.run)
        instance(supervisor, "stubborn").tell_nowait("hang")
        await settle()
        began = trio.current_time()
        supervisor.request_stop()
        assert not supervisor.healthy()
    assert trio.current_time() - began == pytest.approx(2.5)  # polite stopped at once
    assert log[-1] == ("stop", "polite")  # stubborn never reached stopping()
    assert ("stop", "stubborn") not in log


async def test_stop_child_honours_the_deadline(autojump_clock: trio.testing.MockClock) -> None:
    log: list[tuple[str, str]] = []
    supervisor = Supervisor("root")
    async with trio.open_nursery() as nursery:
        await nursery.start(supervisor.run)
        child = await supervisor.start_child(member("x", log, shutdown=4.0))
        assert isinstance(child, Member)
        child.tell_nowait("hang")
        began = trio.current_time()
        await supervisor.stop_child("x")
        assert trio.current_time() - began == pytest.approx(4.0)
        assert supervisor.which_children() == []
        supervisor.request_stop()


# --- intensity --------------------------------------------------------------------------------


async def test_exceeding_the_intensity_stops_the_children_and_fails_the_supervisor(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[tuple[str, str]] = []
    supervisor = Supervisor(
        "root",
        [member("a", log), member("b", log)],
        intensity=RestartIntensity(max_restarts=2, period_seconds=10),
        backoff=NO_BACKOFF,
    )
    ref: ActorRef[str, str] = ActorRef(supervisor.registry, "b")
    with pytest.RaisesGroup(RestartIntensityExceeded) as caught:
        async with trio.open_nursery() as nursery:
            await nursery.start(supervisor.run)
            for _ in range(2):
                with pytest.raises(ActorCrashed):
                    await ref.ask("crash")
            assert supervisor.healthy()
            with pytest.raises(ActorCrashed):
                await ref.ask("crash")  # the third within 10 s
            await trio.sleep(1000)  # the supervisor's failure cancels us before this ends
            pytest.fail("the supervisor did not fail")
    error = caught.value.exceptions[0]
    assert isinstance(error, RestartIntensityExceeded)
    assert isinstance(error.last_error, ValueError) and error.child == "b"
    assert ("stop", "a") in log  # the healthy sibling was stopped gracefully
    assert not supervisor.healthy()
    assert supervisor.statistics().phase == "failed"
    root = supervisor.registry.snapshot()[0]
    assert root.state == "failed" and root.children == ()
    assert root.last_error is not None and root.last_error.type == "RestartIntensityExceeded"


def intensity_model(crash_times: list[float], max_restarts: int, period: float) -> int | None:
    """Independent model: the index of the crash that fails the supervisor, or None."""
    for i, now in enumerate(crash_times):
        recent = [t for t in crash_times[: i + 1] if now - t <= period]
        if len(recent) > max_restarts:
            return i
    return None


@settings(max_examples=60, deadline=None)
@given(
    gaps=st.lists(st.integers(min_value=0, max_value=6), min_size=1, max_size=12),
    max_restarts=st.integers(min_value=0, max_value=4),
    period=st.integers(min_value=1, max_value=10),
)
def test_intensity_matches_a_pure_model(gaps: list[int], max_restarts: int, period: int) -> None:
    """Crash a permanent child after each gap; compare restarts and failure with the model."""
    crash_times: list[float] = []
    now = 0.0
    for gap in gaps:
        now += gap
        crash_times.append(now)
    fails_at = intensity_model(crash_times, max_restarts, float(period))

    async def scenario() -> tuple[int, bool]:
        supervisor = Supervisor(
            "root",
            [member("w", [])],
            intensity=RestartIntensity(max_restarts, float(period)),
            backoff=NO_BACKOFF,
        )
        ref: ActorRef[str, str] = ActorRef(supervisor.registry, "w", restart_wait=0)
        failed = False

        async def supervise(task_status: trio.TaskStatus[None]) -> None:
            nonlocal failed
            try:
                await supervisor.run(task_status=task_status)
            except RestartIntensityExceeded:
                failed = True

        async with trio.open_nursery() as nursery:
            await nursery.start(supervise)
            for gap in gaps:
                await trio.sleep(gap)
                try:
                    await ref.ask("crash")
                except ActorCrashed:
                    pass
                except ActorNotFound:
                    break
                await trio.testing.wait_all_tasks_blocked()
            supervisor.request_stop()
        return supervisor.statistics().child_restarts, failed

    restarts, failed = trio.run(scenario, clock=trio.testing.MockClock(autojump_threshold=0))
    assert failed == (fails_at is not None)
    assert restarts == (fails_at if fails_at is not None else len(gaps))


@given(
    history=st.lists(st.floats(min_value=0, max_value=100), max_size=10),
    max_restarts=st.integers(min_value=0, max_value=5),
    period=st.floats(min_value=0.1, max_value=50),
)
def test_restart_intensity_admit_is_the_model(
    history: list[float], max_restarts: int, period: float
) -> None:
    policy = RestartIntensity(max_restarts, period)
    times = sorted(history)
    now = times[-1] if times else 0.0
    allowed, kept = policy.admit(tuple(times[:-1]), now)
    assert kept[-1] == now and all(now - t <= period for t in kept)
    assert allowed == (len(kept) <= max_restarts)


def test_policy_values_validate() -> None:
    with pytest.raises(ValueError):
        RestartIntensity(-1, 5)
    with pytest.raises(ValueError):
        RestartIntensity(1, 0)
    with pytest.raises(ValueError):
        Backoff(initial=2, maximum=1)
    with pytest.raises(ValueError):
        Backoff(jitter=1.5)
    with pytest.raises(ValueError):
        Backoff(multiplier=0.5)


# --- backoff ----------------------------------------------------------------------------------


@given(
    initial=st.floats(min_value=0, max_value=10),
    extra=st.floats(min_value=0, max_value=100),
    multiplier=st.floats(min_value=1, max_value=10),
    jitter=st.floats(min_value=0, max_value=1),
    attempt=st.integers(min_value=0, max_value=5000),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_backoff_delay_bounds(
    initial: float, extra: float, multiplier: float, jitter: float, attempt: int, seed: int
) -> None:
    backoff = Backoff(
        initial=initial, maximum=initial + extra, multiplier=multiplier, jitter=jitter
    )
    base = backoff.base(attempt)
    delay = backoff.delay(attempt, random.Random(seed))
    assert 0 <= delay <= base <= backoff.maximum
    assert delay >= base * (1 - jitter) - 1e-12
    assert backoff.base(attempt + 1) >= base
    if attempt == 1:
        assert base == initial


async def test_restarts_back_off_exponentially(autojump_clock: trio.testing.MockClock) -> None:
    log: list[tuple[str, str]] = []
    supervisor = Supervisor(
        "root",
        [member("w", log)],
        intensity=RestartIntensity(10, 100),
        backoff=Backoff(initial=1.0, maximum=3.0, multiplier=2.0, jitter=0.0),
    )
    ref: ActorRef[str, str] = ActorRef(supervisor.registry, "w")
    async with trio.open_nursery() as nursery:
        await nursery.start(supervisor.run)
        waits = []
        for _ in range(4):
            with pytest.raises(ActorCrashed):
                await ref.ask("crash")
            began = trio.current_time()
            assert await ref.ask("ping") == "ping"
            waits.append(trio.current_time() - began)
        assert waits == pytest.approx([1.0, 2.0, 3.0, 3.0])
        supervisor.request_stop()


# --- nesting, failures at start, health -------------------------------------------------------


async def test_a_child_supervisor_exceeding_its_intensity_is_restarted_by_its_parent() -> None:
    log: list[tuple[str, str]] = []

    def jobs() -> Supervisor:
        return Supervisor(
            "jobs",
            [member("job", log)],
            intensity=RestartIntensity(max_restarts=0, period_seconds=5),
        )

    root = Supervisor("root", [member("chain", log), ChildSpec("jobs", jobs)], backoff=NO_BACKOFF)
    async with trio.open_nursery() as nursery:
        await nursery.start(root.run)
        first_jobs = root.find_child("jobs")
        chain = root.find_child("chain")
        ref: ActorRef[str, str] = ActorRef(root.registry, "job")
        with pytest.raises(ActorCrashed):
            await ref.ask("crash")
        await settle()
        assert root.find_child("jobs") is not first_jobs
        assert root.find_child("chain") is chain  # one_for_one: the sibling is untouched
        assert await ref.ask("ping") == "ping"  # a fresh job under the fresh supervisor
        entry = root.registry.lookup("jobs")
        assert entry is not None and entry.restarts == 1 and entry.state is State.RUNNING
        assert entry.last_error is not None
        assert entry.last_error.type == "RestartIntensityExceeded"
        assert root.statistics().child_restarts == 1 and root.healthy()
        root.request_stop()
    assert log[-2:] == [("stop", "job"), ("stop", "chain")]  # reverse order, depth first


async def test_a_child_failing_to_start_fails_the_starting_supervisor() -> None:
    log: list[tuple[str, str]] = []

    class Broken(Actor[str, None]):
        __slots__ = ()

        async def started(self) -> None:
            raise ConnectionError("login node unreachable")

        async def handle(self, message: str) -> None:
            return None

    supervisor = Supervisor(
        "root",
        [member("a", log), member("b", log), ChildSpec("broken", lambda: Broken("broken"))],
    )
    assert not supervisor.healthy()
    with pytest.raises(ConnectionError, match="unreachable"):
        await supervisor.run()
    assert log == [("start", "a"), ("start", "b"), ("stop", "b"), ("stop", "a")]
    assert len(supervisor.registry) == 1  # only the root's final entry
    assert not supervisor.healthy()


async def test_a_crash_inside_an_actor_nursery_reaches_the_supervisor_unwrapped() -> None:
    class Flaky(Actor[str, None]):
        __slots__ = ()

        async def started(self) -> None:
            self.spawn(self._link)

        async def _link(self) -> None:
            await trio.lowlevel.checkpoint()
            raise BrokenPipeError("websocket closed")

        async def handle(self, message: str) -> None:
            return None

    supervisor = Supervisor(
        "root",
        [ChildSpec("flaky", lambda: Flaky("flaky"))],
        backoff=Backoff(initial=10.0, maximum=10.0, jitter=0.0),
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(supervisor.run)
        await settle()  # crashed; now backing off for 10 s
        entry = supervisor.registry.lookup("flaky")
        assert entry is not None and entry.state is State.RESTARTING
        assert entry.last_error is not None
        assert entry.last_error.type == "BrokenPipeError"  # not ExceptionGroup
        assert entry.last_error.message == "websocket closed"
        supervisor.request_stop()


async def test_keyboard_interrupt_in_a_child_is_not_swallowed() -> None:
    class Interrupted(Actor[str, None]):
        __slots__ = ()

        async def handle(self, message: str) -> None:
            raise KeyboardInterrupt

    child = Interrupted("x")
    child.tell_nowait("now")
    supervisor = Supervisor("root", [ChildSpec("x", lambda: child)])
    with pytest.raises(KeyboardInterrupt):
        await supervisor.run()


async def test_healthy_follows_the_life_cycle() -> None:
    supervisor = Supervisor("root", [member("a", [])])
    assert not supervisor.healthy()
    async with trio.open_nursery() as nursery:
        await nursery.start(supervisor.run)
        assert supervisor.healthy()
        supervisor.request_stop()
        assert not supervisor.healthy()
    assert not supervisor.healthy()
    assert supervisor.statistics().phase == "stopped"
    with pytest.raises(RuntimeError, match="already run"):
        await supervisor.run()


# --- dynamic children -------------------------------------------------------------------------


async def test_dynamic_children() -> None:
    log: list[tuple[str, str]] = []
    supervisor = Supervisor("jobs")
    with pytest.raises(ActorStopped):
        await supervisor.start_child(member("early", log))
    async with trio.open_nursery() as nursery:
        await nursery.start(supervisor.run)
        child = await supervisor.start_child(member("job-1", log, restart=Restart.TRANSIENT))
        assert isinstance(child, Member) and log == [("start", "job-1")]
        with pytest.raises(NameTaken):
            await supervisor.start_child(member("job-1", log))
        supervisor.start_child_nowait(member("job-2", log, restart=Restart.TEMPORARY))
        await settle()
        assert supervisor.count_children() == type(supervisor.count_children())(
            specs=2, active=2, supervisors=0, workers=2
        )
        infos = supervisor.which_children()
        assert [(i.id, i.kind, i.state, i.restart) for i in infos] == [
            ("job-1", "actor", "running", "transient"),
            ("job-2", "actor", "running", "temporary"),
        ]
        supervisor.stop_child_nowait("job-1")
        await supervisor.stop_child("job-2")
        await settle()
        assert supervisor.which_children() == []
        assert ("stop", "job-1") in log and ("stop", "job-2") in log
        with pytest.raises(ActorNotFound):
            await supervisor.stop_child("job-1")
        supervisor.request_stop()


async def test_a_dynamic_child_failing_to_start_raises_to_the_caller() -> None:
    def broken() -> Member:
        raise RuntimeError("no checkpoint")

    supervisor = Supervisor("jobs")
    async with trio.open_nursery() as nursery:
        await nursery.start(supervisor.run)
        with pytest.raises(RuntimeError, match="no checkpoint"):
            await supervisor.start_child(ChildSpec("job", broken))
        assert supervisor.which_children() == []
        assert supervisor.healthy()
        supervisor.request_stop()


async def test_ten_thousand_dynamic_children() -> None:
    count = 10_000
    log: list[tuple[str, str]] = []
    supervisor = Supervisor("jobs")

    def spec(index: int) -> ChildSpec:
        name = f"job-{index:05d}"
        return ChildSpec(name, lambda: Member(name, log), restart=Restart.TRANSIENT)

    async with trio.open_nursery() as nursery:  # its pace: `python -m bench actors`
        await nursery.start(supervisor.run)
        for index in range(count):
            await supervisor.start_child(spec(index))
        assert supervisor.count_children().active == count
        assert len(supervisor.registry.snapshot()[0].children) == count
        for index in range(0, count, 2):
            await supervisor.stop_child(f"job-{index:05d}")
        assert supervisor.count_children().specs == count // 2
        supervisor.request_stop()
    assert sum(1 for kind, _ in log if kind == "stop") == count
    assert len(supervisor.registry) == 1


def test_child_ids_must_be_unique() -> None:
    log: list[tuple[str, str]] = []
    with pytest.raises(ValueError, match="unique"):
        Supervisor("root", [member("a", log), member("a", log)])


def test_restart_rules() -> None:
    table: dict[tuple[Restart, bool], bool] = {
        (Restart.PERMANENT, True): True,
        (Restart.PERMANENT, False): True,
        (Restart.TRANSIENT, True): True,
        (Restart.TRANSIENT, False): False,
        (Restart.TEMPORARY, True): False,
        (Restart.TEMPORARY, False): False,
    }
    for (restart, crashed), expected in table.items():
        assert restart.restarts_after(crashed=crashed) is expected


async def test_a_cancelled_child_supervisor_leaves_no_stale_names(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The parent cancels a nested supervisor whose own child outlives its deadline; the
    nested tree's names are released, so the restarted subtree registers them again."""
    log: list[tuple[str, str]] = []

    def jobs() -> Supervisor:
        return Supervisor("jobs", [member("stubborn", log, shutdown=60.0)])

    root = Supervisor(
        "root",
        [member("chain", log), ChildSpec("jobs", jobs, shutdown=1.0)],
        strategy=Strategy.ONE_FOR_ALL,
        backoff=NO_BACKOFF,
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(root.run)
        stubborn = root.registry.whereis("stubborn")
        assert isinstance(stubborn, Member)
        stubborn.tell_nowait("hang")
        began = trio.current_time()
        with pytest.raises(ActorCrashed):
            await ActorRef[str, str](root.registry, "chain").ask("crash")
        await trio.sleep(1.5)  # jobs' 1 s deadline, not stubborn's 60 s, bounds the restart
        assert trio.current_time() - began == pytest.approx(1.5)
        assert await ActorRef[str, str](root.registry, "stubborn").ask("ping") == "ping"
        fresh = root.registry.whereis("stubborn")
        assert isinstance(fresh, Member) and fresh is not stubborn
        assert [c.state for c in root.which_children()] == ["running", "running"]
        assert root.statistics().child_restarts == 1 and root.healthy()
        root.request_stop()
