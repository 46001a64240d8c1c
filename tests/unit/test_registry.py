"""The registry: names, parents, states, restarts, errors, and the snapshot tree."""

from __future__ import annotations

import msgspec
import pytest
import trio
import trio.testing

from runtime import (
    Actor,
    ActorCrashed,
    ActorNode,
    ActorNotFound,
    ActorRef,
    ActorStatistics,
    Backoff,
    ChildSpec,
    ErrorInfo,
    NameTaken,
    Registry,
    Restart,
    State,
    Supervisor,
)


class PhasedStatistics(ActorStatistics, frozen=True, kw_only=True):
    job_phase: str

    def facts(self) -> dict[str, str]:
        return {"phase": self.job_phase}


class Phased(Actor[str, str]):
    """Reports its phase in its own statistics record; "crash" crashes it."""

    __slots__ = ("phase",)

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.phase = "claimed"

    def statistics(self) -> PhasedStatistics:
        return PhasedStatistics(**self.common_statistics(), job_phase=self.phase)

    async def handle(self, message: str) -> str:
        if message == "crash":
            raise RuntimeError("rpc connection reset")
        self.phase = message
        return message


class FakeClock:
    """A settable clock for uptimes."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def phased(name: str, restart: Restart = Restart.PERMANENT) -> ChildSpec:
    return ChildSpec(name, lambda: Phased(name), restart=restart)


async def test_snapshot_is_a_tree_of_plain_data() -> None:
    clock = FakeClock()
    registry = Registry(clock=clock)

    def jobs() -> Supervisor:
        return Supervisor("jobs", [phased("job-0x01", Restart.TRANSIENT)])

    root = Supervisor(
        "root",
        [phased("chain"), ChildSpec("jobs", jobs), phased("reaper")],
        registry=registry,
        backoff=Backoff(initial=0.0),
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(root.run)
        ref: ActorRef[str, str] = ActorRef(registry, "job-0x01")
        await ref.ask("submitted")
        with pytest.raises(ActorCrashed):
            await ActorRef[str, str](registry, "chain").ask("crash")
        await trio.testing.wait_all_tasks_blocked()
        clock.now += 12.5
        (tree,) = registry.snapshot()
        assert isinstance(tree, ActorNode)
        assert (tree.name, tree.kind, tree.state) == ("root", "supervisor", "running")
        assert tree.info == {"strategy": "one_for_one", "children": "3"}
        assert [c.name for c in tree.children] == ["chain", "jobs", "reaper"]
        chain, jobs_node, reaper = tree.children
        assert chain.restarts == 1 and chain.state == "running"
        assert chain.last_error == ErrorInfo(type="RuntimeError", message="rpc connection reset")
        assert reaper.restarts == 0 and reaper.last_error is None
        assert reaper.uptime_seconds == pytest.approx(12.5)
        assert jobs_node.kind == "supervisor" and len(jobs_node.children) == 1
        job = jobs_node.children[0]
        assert (job.name, job.kind, job.state, job.handled, job.mailbox_depth) == (
            "job-0x01",
            "actor",
            "running",
            1,
            0,
        )
        assert job.info == {"phase": "submitted"}
        # plain data all the way down: it encodes to JSON and back unchanged
        assert msgspec.json.decode(msgspec.json.encode(tree), type=ActorNode) == tree
        assert registry.snapshot_of("jobs") == jobs_node
        with pytest.raises(ActorNotFound):
            registry.snapshot_of("nobody")
        root.request_stop()
    (final,) = registry.snapshot()
    assert final.state == "stopped" and final.children == ()
    assert len(registry) == 1


async def test_whereis_tracks_the_current_instance_and_parents() -> None:
    registry = Registry()
    root = Supervisor("root", [phased("chain")], registry=registry, backoff=Backoff(initial=0))
    async with trio.open_nursery() as nursery:
        await nursery.start(root.run)
        first = registry.whereis("chain")
        assert isinstance(first, Phased)
        entry = registry.lookup("chain")
        assert entry is not None and entry.parent is registry.lookup("root")
        assert registry.whereis("root") is root
        with pytest.raises(ActorCrashed):
            await first.ask("crash")
        await trio.testing.wait_all_tasks_blocked()
        second = registry.whereis("chain")
        assert second is not first and isinstance(second, Phased)
        assert registry.lookup("chain") is entry  # the same entry across restarts
        assert entry.restarts == 1
        root.request_stop()
    assert registry.whereis("chain") is None
    assert "chain" not in registry


async def test_names_are_unique_across_the_tree() -> None:
    registry = Registry()
    root = Supervisor("root", registry=registry)
    async with trio.open_nursery() as nursery:
        await nursery.start(root.run)
        await root.start_child(phased("job"))
        with pytest.raises(NameTaken):
            await root.start_child(ChildSpec("other-id", lambda: Phased("job")))
        assert [c.id for c in root.which_children()] == ["job"]
        root.request_stop()


def test_state_changes_and_unregister_without_a_supervisor() -> None:
    clock = FakeClock()
    registry = Registry(clock=clock)
    parent = registry.register(Supervisor("root"))
    child = registry.register(Phased("worker"), parent=parent)
    assert child.state is State.STARTING and parent.children == {"worker": child}
    registry.set_state(child, State.RUNNING)
    assert child.started_at == 1000.0
    registry.set_state(child, State.FAILED, error=KeyError("job"))
    registry.set_state(child, State.RESTARTING)
    registry.set_state(child, State.RESTARTING)  # still the same restart
    assert child.restarts == 1
    assert child.last_error == ErrorInfo(type="KeyError", message="'job'")
    registry.unregister(parent)  # takes the subtree with it
    assert len(registry) == 0 and child.instance is None


async def test_wait_changed_wakes_on_the_next_change() -> None:
    registry = Registry()
    entry = registry.register(Phased("worker"))
    woke: list[State] = []

    async def waiter() -> None:
        await registry.wait_changed(entry)
        woke.append(entry.state)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter)
        await trio.testing.wait_all_tasks_blocked()
        assert woke == []
        registry.set_state(entry, State.RUNNING)
    assert woke == [State.RUNNING]


async def test_snapshot_stays_cheap_with_ten_thousand_children() -> None:
    registry = Registry()
    root = Supervisor("root", registry=registry)
    async with trio.open_nursery() as nursery:
        await nursery.start(root.run)
        for index in range(10_000):
            root.start_child_nowait(phased(f"job-{index:05d}", Restart.TEMPORARY))
        await trio.testing.wait_all_tasks_blocked()
        (tree,) = registry.snapshot()  # its time is a figure of bench/README.md, not a test's
        assert len(tree.children) == 10_000
        assert all(child.state == "running" for child in tree.children)
        root.request_stop()
