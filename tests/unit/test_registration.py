"""Registration rules: what the cluster registers, and when it registers again."""

from __future__ import annotations

import random

import trio

from actors.chain.client import Approval
from actors.chain.messages import GetProvider, ProviderApproval
from actors.grid import Hardware, Label, Prices, Provider
from actors.registration import RegistrationActor, hardware_of, needs_register, registration_for
from actors.slurm.messages import Discover, Health, HealthCheck, Node
from runtime import Actor, Backoff, ChildSpec, Supervisor

PRICES = Prices(gpu_per_min=8, cpu_per_min=9, mem_per_min=1)


def node(name: str, cpus: int = 8, memory: int = 4096, gpus: int = 0) -> Node:
    return Node(name=name, cpus=cpus, memory_mb=memory, gpus=gpus, state="IDLE", responding=True)


def test_hardware_lists_nodes_in_a_stable_order() -> None:
    hardware = hardware_of([node("n2", cpus=4), node("n1", gpus=2), node("n3", memory=100)])
    assert hardware == Hardware(
        nodes=3, gpus_per_node=(2, 0, 0), cpus_per_node=(8, 4, 8), mem_per_node=(4096, 4096, 100)
    )


def test_labels_are_normalised_and_sorted() -> None:
    _, _, labels = registration_for([node("n1")], PRICES, {"Zone": "EU West", "arch": "x86_64"})
    assert labels == (Label("arch", "x86_64"), Label("zone", "eu-west"))


def registered(**changes: object) -> Provider:
    hardware, prices, labels = registration_for([node("n1"), node("n2")], PRICES, {"name": "a"})
    fields: dict[str, object] = dict(
        address="0x" + "22" * 20, hardware=hardware, prices=prices, labels=labels, is_banned=False
    )
    fields.update(changes)
    return Provider(**fields)  # type: ignore[arg-type]


def test_same_registration_is_not_sent_again() -> None:
    hardware, prices, labels = registration_for([node("n2"), node("n1")], PRICES, {"NAME": "A"})
    assert not needs_register(registered(), hardware, prices, labels)


def test_unknown_provider_registers() -> None:
    hardware, prices, labels = registration_for([node("n1")], PRICES, {})
    assert needs_register(None, hardware, prices, labels)


def test_any_difference_registers_again() -> None:
    hardware, prices, labels = registration_for([node("n1"), node("n2")], PRICES, {"name": "a"})
    cheaper = Prices(gpu_per_min=8, cpu_per_min=8, mem_per_min=1)
    assert needs_register(registered(prices=cheaper), hardware, prices, labels)
    assert needs_register(registered(labels=(Label("name", "b"),)), hardware, prices, labels)
    smaller = hardware_of([node("n1", cpus=4), node("n2")])
    assert needs_register(registered(hardware=smaller), hardware, prices, labels)


# --- the actor's backoff jitter ----------------------------------------------------------------


class CountingRandom(random.Random):
    """A seeded RNG that counts its draws (the jitter source the actor was given)."""

    def __init__(self) -> None:
        super().__init__(7)
        self.draws = 0

    def random(self) -> float:
        self.draws += 1
        return super().random()


class FlakySlurm(Actor[object, object]):
    """Fails the first ``failures`` health checks; discovers one node."""

    def __init__(self, failures: int) -> None:
        super().__init__("slurm")
        self.failures = failures

    async def handle(self, message: object) -> object:
        if isinstance(message, HealthCheck):
            self.failures -= 1
            return Health(ok=self.failures < 0, detail="down", latency_seconds=0.0)
        assert isinstance(message, Discover)
        return [node("n1")]


class WaitingChain(Actor[object, object]):
    """Already holds this registration; its approval is always waiting (``asked`` is set once
    the approval was asked for, that is after every health check)."""

    def __init__(self, asked: trio.Event) -> None:
        super().__init__("chain")
        self.asked = asked

    async def handle(self, message: object) -> object:
        if isinstance(message, GetProvider):
            return registered(labels=(), hardware=hardware_of([node("n1")]))
        assert isinstance(message, ProviderApproval)
        self.asked.set()
        return Approval.WAITING


async def test_every_backoff_draws_its_jitter_from_the_actors_one_rng() -> None:
    rng = CountingRandom()
    registration = RegistrationActor(
        prices=PRICES, labels={}, backoff=Backoff(initial=0.001, maximum=0.002), rng=rng
    )
    asked = trio.Event()
    specs = [
        ChildSpec("slurm", lambda: FlakySlurm(failures=3)),
        ChildSpec("chain", lambda: WaitingChain(asked)),
        ChildSpec("registration", lambda: registration),
    ]
    root = Supervisor("root", specs)
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            await nursery.start(root.run)
            await asked.wait()
            root.request_stop()
    assert rng.draws == 3  # one per failed health check, all from the same generator
