"""Registration rules: what the cluster registers, and when it registers again."""

from __future__ import annotations

from actors.grid import Hardware, Label, Prices, Provider
from actors.registration import hardware_of, needs_register, registration_for
from actors.slurm.messages import Node

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
