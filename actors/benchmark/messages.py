"""What the BenchmarkActor is asked, what it answers, and what it keeps in the store."""

from __future__ import annotations

import msgspec

from actors.grid import Label
from actors.slurm.messages import Node

__all__ = ["STORE_KEY", "STORE_NAMESPACE", "BenchmarkRecord", "Measure", "Measured"]

STORE_NAMESPACE = "benchmark"
STORE_KEY = "results"


class Measure(msgspec.Struct, frozen=True):
    """Give the labels of the cluster made of ``nodes``: measured now, or re-used when the last
    results were measured on the same hardware. ``on_chain`` are the labels registered before
    (the disabled mode re-uses their benchmark part). Replies :class:`Measured`."""

    nodes: tuple[Node, ...]
    on_chain: tuple[Label, ...] = ()


class Measured(msgspec.Struct, frozen=True):
    """``labels``: generated (not yet merged with the operator's); ``ran``: whether benchmark
    jobs ran; ``source``: "measured", "re-used", "disabled"; ``skipped`` and ``failed``:
    benchmark kind -> reason."""

    labels: dict[str, str]
    ran: bool
    source: str
    fingerprint: str
    skipped: dict[str, str] = {}
    failed: dict[str, str] = {}


class BenchmarkRecord(msgspec.Struct, frozen=True):
    """The last complete results (``STORE_NAMESPACE``/``STORE_KEY``) and the hardware
    fingerprint they were measured on."""

    fingerprint: str
    labels: dict[str, str]
    skipped: dict[str, str]
    measured_at: float
    seconds: float
