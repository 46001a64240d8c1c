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
