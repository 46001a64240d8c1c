"""Actors: mailbox backpressure, tell/ask, crashes, graceful stop, background tasks, refs."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from runtime import (
    Actor,
    ActorCrashed,
    ActorNotFound,
    ActorRef,
    ActorStopped,
    AskTimeout,
    Backoff,
    ChildSpec,
    MailboxFull,
    Registry,
    Supervisor,
)


class Recorder(Actor[object, object]):
    """Replies with what it got; "boom" crashes it; "block" waits for ``gate``."""

    __slots__ = ("events", "gate", "seen")

    def __init__(self, name: str = "recorder", *, mailbox_size: int = 8) -> None:
        super().__init__(name, mailbox_size=mailbox_size)
        self.seen: list[object] = []
        self.events: list[str] = []
        self.gate = trio.Event()

    async def started(self) -> None:
        self.events.append("started")

    async def stopping(self) -> None:
        self.events.append("stopping")

    async def handle(self, message: object) -> object:
        self.seen.append(message)
        if message == "boom":
            raise ValueError("boom")
        if message == "block":
            await self.gate.wait()
        if message == "interrupt":
            raise KeyboardInterrupt
        return ("echo", message)


async def test_tell_and_ask_are_handled_in_order() -> None:
    actor = Recorder()
    async with trio.open_nursery() as nursery:
        await nursery.start(actor.run)
        assert actor.events == ["started"]
        await actor.tell(1)
        actor.tell_nowait(2)
        assert await actor.ask(3) == ("echo", 3)
        assert actor.seen == [1, 2, 3]
        stats = actor.statistics()
        assert (stats.name, stats.phase, stats.handled, stats.mailbox_depth) == (
            "recorder",
            "running",
            3,
            0,
        )
        actor.request_stop()
    assert actor.events == ["started", "stopping"]
    assert actor.statistics().phase == "stopped"


async def test_tell_blocks_when_the_mailbox_is_full_and_tell_nowait_raises(
    autojump_clock: trio.testing.MockClock,
) -> None:
    actor = Recorder(mailbox_size=2)
    async with trio.open_nursery() as nursery:
        await nursery.start(actor.run)
        actor.tell_nowait("block")  # taken at once: the actor now waits in handle()
        await trio.testing.wait_all_tasks_blocked()
        actor.tell_nowait("a")
        actor.tell_nowait("b")
        assert actor.statistics().mailbox_depth == 2
        with pytest.raises(MailboxFull, match="'recorder' is full"):
            actor.tell_nowait("c")
        with trio.move_on_after(10) as scope:
            await actor.tell("c")  # blocks: nobody reads
        assert scope.cancelled_caught
        assert actor.statistics().mailbox_depth == 2  # the cancelled tell queued nothing

        async def late_tell() -> None:
            await actor.tell("d")

        nursery.start_soon(late_tell)
        await trio.testing.wait_all_tasks_blocked()
        actor.gate.set()
        await actor.ask("sync")
        assert actor.seen == ["block", "a", "b", "d", "sync"]
        actor.request_stop()


async def test_ask_timeout_names_the_actor_and_the_message_type(
    autojump_clock: trio.testing.MockClock,
) -> None:
    actor = Recorder("slow")
    async with trio.open_nursery() as nursery:
        await nursery.start(actor.run)
        began = trio.current_time()
        with pytest.raises(AskTimeout) as caught:
            await actor.ask("block", timeout=3.0)
        assert trio.current_time() - began == pytest.approx(3.0)
        assert "'slow'" in str(caught.value) and "str" in str(caught.value)
        assert (caught.value.actor, caught.value.message_type) == ("slow", "str")
        actor.gate.set()
        actor.request_stop()


async def test_a_crash_answers_the_asker_and_every_queued_ask() -> None:
    actor = Recorder("crashy")
    outcomes: list[BaseException] = []

    async def ask(message: object) -> None:
        try:
            await actor.ask(message)
        except (ActorCrashed, ActorStopped) as exc:
            outcomes.append(exc)

    # the nursery's group holds the actor's own exception, not a nested group
    with pytest.RaisesGroup(pytest.RaisesExc(ValueError, match="boom")):
        async with trio.open_nursery() as nursery:
            await nursery.start(actor.run)
            actor.tell_nowait("block")
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(ask, "boom")
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(ask, "queued")
            await trio.testing.wait_all_tasks_blocked()
            actor.gate.set()
    assert len(outcomes) == 2
    assert all(isinstance(exc, ActorCrashed) for exc in outcomes)
    assert isinstance(outcomes[0].__cause__, ValueError)
    assert actor.seen == ["block", "boom"]  # the queued ask was never handled
    stats = actor.statistics()
    assert stats.phase == "crashed"
    assert stats.last_error is not None and stats.last_error.type == "ValueError"
    with pytest.raises(ActorStopped):
        actor.tell_nowait("late")


async def test_run_raises_the_actor_exception_itself() -> None:
    actor = Recorder()
    actor.tell_nowait("boom")
    with pytest.raises(ValueError, match="boom"):
        await actor.run()


async def test_keyboard_interrupt_is_never_swallowed() -> None:
    actor = Recorder()
    actor.tell_nowait("interrupt")
    with pytest.raises(KeyboardInterrupt):
        await actor.run()


async def test_request_stop_finishes_the_current_message_and_refuses_the_rest() -> None:
    actor = Recorder()
    refused: list[BaseException] = []

    async def ask_queued() -> None:
        try:
            await actor.ask("queued")
        except ActorStopped as exc:
            refused.append(exc)

    async with trio.open_nursery() as nursery:
        await nursery.start(actor.run)
        actor.tell_nowait("block")
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(ask_queued)
        await trio.testing.wait_all_tasks_blocked()
        actor.request_stop()
        with pytest.raises(ActorStopped):
            await actor.tell("after stop")
        assert actor.events == ["started"]  # still busy with "block"
        actor.gate.set()
    assert actor.seen == ["block"]
    assert actor.events == ["started", "stopping"]
    assert len(refused) == 1 and "stopped before answering" in str(refused[0])
    with pytest.raises(RuntimeError, match="already run"):
        await actor.run()


async def test_cancelling_an_actor_answers_its_askers_and_propagates() -> None:
    actor = Recorder()
    refused: list[BaseException] = []

    async def ask_blocked() -> None:
        try:
            await actor.ask("block")
        except ActorStopped as exc:
            refused.append(exc)

    async with trio.open_nursery() as nursery:
        with trio.CancelScope() as scope:
            nursery.start_soon(ask_blocked)
            await trio.testing.wait_all_tasks_blocked()
            scope.cancel()
            await actor.run()  # the Cancelled reaches our scope: it was not swallowed
    assert scope.cancelled_caught
    assert actor.events == ["started"]  # no stopping() after a cancellation
    assert len(refused) == 1


class Worker(Actor[str, int]):
    """Spawns a background counter in started(); "fail" makes the background task fail."""

    __slots__ = ("cancelled", "ticks", "trouble")

    def __init__(self) -> None:
        super().__init__("worker")
        self.ticks = 0
        self.cancelled = False
        self.trouble = trio.Event()

    async def started(self) -> None:
        self.spawn(self._count)

    async def _count(self) -> None:
        try:
            while True:
                await trio.sleep(1)
                self.ticks += 1
        except trio.Cancelled:
            self.cancelled = True
            raise

    async def _fail(self) -> None:
        await self.trouble.wait()
        raise OSError("connection lost")

    async def handle(self, message: str) -> int:
        if message == "fail":
            self.spawn(self._fail)
        return self.ticks


async def test_background_tasks_live_and_die_with_the_actor(
    autojump_clock: trio.testing.MockClock,
) -> None:
    worker = Worker()
    async with trio.open_nursery() as nursery:
        await nursery.start(worker.run)
        await trio.sleep(3.5)
        assert await worker.ask("ticks") == 3
        assert worker.statistics().background_tasks == 1
        worker.request_stop()
    assert worker.cancelled


async def test_a_background_failure_crashes_the_actor_with_its_own_exception(
    autojump_clock: trio.testing.MockClock,
) -> None:
    worker = Worker()
    with pytest.RaisesGroup(pytest.RaisesExc(OSError, match="connection lost")):
        async with trio.open_nursery() as nursery:
            await nursery.start(worker.run)
            await worker.ask("fail")
            worker.trouble.set()
    assert worker.cancelled
    with pytest.raises(ActorStopped):
        worker.spawn(trio.sleep_forever)


async def test_actor_ref_follows_restarts_and_reports_unknown_names(
    autojump_clock: trio.testing.MockClock,
) -> None:
    supervisor = Supervisor(
        "root",
        [ChildSpec("recorder", Recorder)],
        backoff=Backoff(initial=1.0, jitter=0.0),
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(supervisor.run)
        ref: ActorRef[object, object] = ActorRef(supervisor.registry, "recorder")
        first = supervisor.registry.whereis("recorder")
        assert await ref.ask("hello") == ("echo", "hello")
        with pytest.raises(ActorCrashed):
            await ref.ask("boom")
        with pytest.raises(ActorNotFound, match="not accepting"):
            ref.tell_nowait("during the backoff")
        assert await ref.ask("again", timeout=5.0) == ("echo", "again")  # waits ~1 s
        second = supervisor.registry.whereis("recorder")
        assert second is not first and isinstance(second, Recorder)
        assert second.seen == ["again"]
        with pytest.raises(ActorNotFound, match="not registered"):
            await ActorRef[str, str](supervisor.registry, "nobody").tell("x")
        with pytest.raises(ActorNotFound, match="supervisor, not an actor"):
            ActorRef[str, str](supervisor.registry, "root").tell_nowait("x")
        supervisor.request_stop()


async def test_actor_ref_gives_up_when_the_actor_does_not_come_back(
    autojump_clock: trio.testing.MockClock,
) -> None:
    supervisor = Supervisor(
        "root", [ChildSpec("recorder", Recorder)], backoff=Backoff(initial=5.0, jitter=0.0)
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(supervisor.run)
        ref: ActorRef[object, object] = ActorRef(supervisor.registry, "recorder", restart_wait=2)
        with pytest.raises(ActorCrashed):
            await ref.ask("boom")
        with pytest.raises(ActorNotFound, match="did not come back"):
            await ref.tell("x")
        supervisor.request_stop()


def test_refs_need_a_registry() -> None:
    actor = Recorder()
    with pytest.raises(ActorNotFound, match="not attached"):
        actor.ref("other")
    registry = Registry()
    with pytest.raises(ActorNotFound):
        ActorRef[str, str](registry, "other").tell_nowait("x")
    with pytest.raises(ValueError):
        Recorder(mailbox_size=0)


# --- concurrent asks -------------------------------------------------------------------------


class Server(Actor[str, tuple[str, str]]):
    """Serves asks concurrently, except those starting with "seq" (and every tell).

    A message containing "wait" waits for its own gate; "missing" raises LookupError (an
    answered error); "bug" raises ValueError (a crash).
    """

    __slots__ = ("began", "gates", "in_flight_at_stopping")

    answered_errors = (LookupError,)

    def __init__(self, *, concurrency: int = 2, mailbox_size: int = 8) -> None:
        super().__init__("server", mailbox_size=mailbox_size, concurrency=concurrency)
        self.began: list[str] = []
        self.gates: dict[str, trio.Event] = {}
        self.in_flight_at_stopping: int | None = None

    def gate(self, message: str) -> trio.Event:
        return self.gates.setdefault(message, trio.Event())

    def concurrent(self, message: str) -> bool:
        return not message.startswith("seq")

    async def stopping(self) -> None:
        self.in_flight_at_stopping = self.statistics().in_flight

    async def handle(self, message: str) -> tuple[str, str]:
        self.began.append(message)
        if "wait" in message:
            await self.gate(message).wait()
        if "missing" in message:
            raise LookupError(f"no such thing: {message}")
        if "bug" in message:
            raise ValueError(f"bug in {message}")
        return ("done", message)


async def ask_into(
    outcomes: dict[str, object], actor: Actor[str, tuple[str, str]], message: str
) -> None:
    """Ask and keep the reply or the exception under the message's name."""
    try:
        outcomes[message] = await actor.ask(message)
    except Exception as exc:
        outcomes[message] = exc


async def test_concurrent_asks_overlap_up_to_the_limit_then_apply_backpressure() -> None:
    server = Server(concurrency=2, mailbox_size=1)
    outcomes: dict[str, object] = {}
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        for message in ("wait-a", "wait-b", "wait-c", "wait-d"):
            nursery.start_soon(ask_into, outcomes, server, message)
            await trio.testing.wait_all_tasks_blocked()
        # a and b hold the two slots; the loop took c and waits for a slot; d is queued
        assert sorted(server.began) == ["wait-a", "wait-b"]
        stats = server.statistics()
        assert (stats.in_flight, stats.mailbox_depth, stats.handled) == (2, 1, 0)
        with pytest.raises(MailboxFull):
            server.tell_nowait("seq-e")
        server.gate("wait-b").set()
        await trio.testing.wait_all_tasks_blocked()
        assert outcomes == {"wait-b": ("done", "wait-b")}
        assert sorted(server.began) == ["wait-a", "wait-b", "wait-c"]
        stats = server.statistics()  # c took b's slot; the loop took d and waits for one
        assert (stats.in_flight, stats.mailbox_depth, stats.handled) == (2, 0, 1)
        server.gate("wait-a").set()
        await trio.testing.wait_all_tasks_blocked()
        assert sorted(server.began) == ["wait-a", "wait-b", "wait-c", "wait-d"]
        for message in ("wait-c", "wait-d"):
            server.gate(message).set()
        await trio.testing.wait_all_tasks_blocked()
        assert outcomes == {m: ("done", m) for m in ("wait-a", "wait-b", "wait-c", "wait-d")}
        stats = server.statistics()
        assert (stats.in_flight, stats.handled, stats.phase) == (0, 4, "running")
        server.request_stop()


async def test_sequential_messages_are_taken_in_mailbox_order_among_concurrent_ones() -> None:
    server = Server(concurrency=4)
    outcomes: dict[str, object] = {}
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        nursery.start_soon(ask_into, outcomes, server, "wait-a")
        await trio.testing.wait_all_tasks_blocked()
        # a sequential message does not wait for a concurrent ask taken before it...
        assert await server.ask("seq-1") == ("done", "seq-1")
        assert server.began == ["wait-a", "seq-1"]
        # ...but one in progress holds back every message behind it, concurrent or not
        nursery.start_soon(ask_into, outcomes, server, "seq-wait-2")
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(ask_into, outcomes, server, "b")
        await trio.testing.wait_all_tasks_blocked()
        await server.tell("seq-3")
        assert server.began == ["wait-a", "seq-1", "seq-wait-2"]
        server.gate("seq-wait-2").set()
        await trio.testing.wait_all_tasks_blocked()
        # b was taken first, but its own task may begin after the next message
        assert server.began[:3] == ["wait-a", "seq-1", "seq-wait-2"]
        assert sorted(server.began[3:]) == ["b", "seq-3"]
        assert outcomes == {"seq-wait-2": ("done", "seq-wait-2"), "b": ("done", "b")}
        assert "wait-a" not in outcomes  # still running all along
        server.gate("wait-a").set()
        await trio.testing.wait_all_tasks_blocked()
        assert outcomes["wait-a"] == ("done", "wait-a")
        assert server.statistics().handled == 5
        server.request_stop()


async def test_answered_errors_reach_the_asker_and_the_actor_reads_on() -> None:
    server = Server()
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        with pytest.raises(LookupError, match="no such thing: missing-1"):
            await server.ask("missing-1")  # served concurrently
        last = server.statistics().last_error
        assert last is not None and (last.type, last.message) == (
            "LookupError",
            "no such thing: missing-1",
        )
        with pytest.raises(LookupError, match="seq-missing-2"):
            await server.ask("seq-missing-2")  # the same rule in the mailbox loop
        await server.tell("seq-missing-3")  # a tell's answered error is only recorded
        assert await server.ask("ok") == ("done", "ok")
        stats = server.statistics()
        assert stats.last_error is not None and "seq-missing-3" in stats.last_error.message
        assert (stats.phase, stats.handled, stats.in_flight) == ("running", 4, 0)
        server.request_stop()
    assert server.statistics().phase == "stopped"


async def test_a_crash_in_a_concurrent_ask_fails_every_asker_with_actor_crashed() -> None:
    server = Server(concurrency=3)
    outcomes: dict[str, object] = {}
    with pytest.RaisesGroup(pytest.RaisesExc(ValueError, match="bug in wait-bug")):
        async with trio.open_nursery() as nursery:
            await nursery.start(server.run)
            # two concurrent asks in flight, a sequential one in handle(), one queued
            for message in ("wait-bug", "wait-b", "seq-wait-c", "d"):
                nursery.start_soon(ask_into, outcomes, server, message)
                await trio.testing.wait_all_tasks_blocked()
            assert server.statistics().in_flight == 2
            assert server.statistics().mailbox_depth == 1
            server.gate("wait-bug").set()
    assert sorted(outcomes) == ["d", "seq-wait-c", "wait-b", "wait-bug"]
    for message, outcome in outcomes.items():
        assert isinstance(outcome, ActorCrashed), message
        assert isinstance(outcome.__cause__, ValueError), message
    assert "d" not in server.began
    stats = server.statistics()
    assert stats.phase == "crashed"
    assert stats.last_error is not None and stats.last_error.type == "ValueError"


async def test_a_graceful_stop_cancels_concurrent_asks_after_stopping() -> None:
    server = Server(concurrency=2)
    outcomes: dict[str, object] = {}
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        for message in ("wait-a", "wait-b", "seq-c"):
            nursery.start_soon(ask_into, outcomes, server, message)
            await trio.testing.wait_all_tasks_blocked()
        assert outcomes == {"seq-c": ("done", "seq-c")}
        server.request_stop()
    assert server.in_flight_at_stopping == 2  # still running while stopping() ran
    for message in ("wait-a", "wait-b"):
        outcome = outcomes[message]
        assert isinstance(outcome, ActorStopped), message
        assert "stopped before answering" in str(outcome)
    stats = server.statistics()
    assert (stats.phase, stats.handled, stats.in_flight) == ("stopped", 1, 0)


async def test_a_concurrent_ask_times_out_and_keeps_its_slot_until_it_ends(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = Server(concurrency=1)
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        began = trio.current_time()
        with pytest.raises(AskTimeout, match="'server'"):
            await server.ask("wait-a", timeout=3.0)
        assert trio.current_time() - began == pytest.approx(3.0)
        assert server.statistics().in_flight == 1  # the work goes on without its asker
        with pytest.raises(AskTimeout):
            await server.ask("b", timeout=1.0)  # no slot for it within a second
        server.gate("wait-a").set()
        assert await server.ask("c") == ("done", "c")
        stats = server.statistics()
        assert (stats.in_flight, stats.handled) == (0, 3)  # "b" was served, late
        server.request_stop()


def test_concurrency_is_opt_in_and_never_negative() -> None:
    assert Recorder().statistics().in_flight == 0
    with pytest.raises(ValueError, match="concurrency"):
        Server(concurrency=-1)
