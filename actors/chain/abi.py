"""The meta-scheduler's ABI as the supervisor uses it: calldata in, grid types out. Pure.

The ABIs are the committed ``contracts/abi/<Name>.json`` files, read as package data with
:mod:`importlib.resources` (so they are found in a wheel or a PyInstaller build too). eth_abi is the
codec; nothing here talks to a node.

- :func:`grid_abi` loads every contract once: ``grid_abi().function("MetaScheduler",
  "claimNextJob")`` is a :class:`Function` that encodes calldata and decodes return data.
- ``*_to_abi`` / ``*_from_abi`` convert between the ABI tuples of wire-interfaces 1.3 and the
  shared types of :mod:`actors.grid` (addresses become lowercase ``0x`` strings, job ids ``0x`` +
  64 hex, ``bytes2`` operators and the ``bytes32`` job name become text).
- :func:`decode_claim` turns one raw log (a JSON-RPC log object) into a
  :class:`~actors.grid.ClaimedJob`, :class:`~actors.grid.ClaimedCancel` or
  :class:`~actors.grid.ClaimedTopUp`, or None when it is not one of the three claim events.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, TypeAlias

from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_utils.crypto import keccak

from actors.grid import (
    Affinity,
    ClaimedCancel,
    ClaimedJob,
    ClaimedTopUp,
    Hardware,
    JobDefinition,
    JobStatus,
    Label,
    OnChainJob,
    Prices,
    Provider,
    address,
    job_id,
)

__all__ = [
    "CLAIM_EVENTS",
    "CONTRACTS",
    "Claimed",
    "Event",
    "Function",
    "GridAbi",
    "Item",
    "canonical_type",
    "decode_claim",
    "definition_from_abi",
    "definition_to_abi",
    "grid_abi",
    "hardware_to_abi",
    "job_from_abi",
    "job_id_bytes",
    "labels_to_abi",
    "load_abi",
    "prices_to_abi",
    "provider_from_abi",
    "signature",
]

Item: TypeAlias = dict[str, Any]
"""One entry of a JSON ABI (a function, event, error or constructor)."""

Claimed: TypeAlias = ClaimedJob | ClaimedCancel | ClaimedTopUp
"""What a claim event for this provider becomes."""

CONTRACTS = (
    "MetaScheduler",
    "JobRepository",
    "ProviderJobQueues",
    "ProviderManager",
    "Tools",
    "Constants",
    "Credit",
)
"""The committed ABIs (``contracts/abi/<Name>.json``)."""

CLAIM_EVENTS = ("ClaimJobEvent", "ClaimNextCancellingJobEvent", "ClaimNextTopUpJobEvent")
"""The MetaScheduler events that hand work to a provider (all parameters non-indexed)."""

ZERO_ADDRESS = "0x" + "00" * 20


def load_abi(name: str) -> list[Item]:
    """The committed ABI of contract ``name``, read as package data of ``contracts``."""
    text = (resources.files("contracts") / "abi" / f"{name}.json").read_text(encoding="utf-8")
    abi: list[Item] = json.loads(text)
    return abi


def canonical_type(param: Mapping[str, Any]) -> str:
    """The canonical ABI type of a parameter, tuples spelled out: ``(string,string)[]``."""
    kind = str(param["type"])
    if kind.startswith("tuple"):
        inner = ",".join(canonical_type(c) for c in param["components"])
        return f"({inner}){kind[len('tuple') :]}"
    return kind


def signature(item: Mapping[str, Any]) -> str:
    """``name(type,...)`` of a function, event or error."""
    types = ",".join(canonical_type(p) for p in item.get("inputs", []))
    return f"{item['name']}({types})"


@dataclass(frozen=True, slots=True)
class Function:
    """One contract function: its selector and how to encode its call and decode its result."""

    contract: str
    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    selector: bytes
    view: bool

    def encode(self, *args: Any) -> bytes:
        """Calldata: the selector and the ABI-encoded arguments."""
        return self.selector + abi_encode(list(self.inputs), list(args))

    def decode(self, data: bytes) -> tuple[Any, ...]:
        """The decoded return values (a tuple, one entry per output)."""
        return tuple(abi_decode(list(self.outputs), data))


@dataclass(frozen=True, slots=True)
class Event:
    """One event: its topic0 and the types and names of its (non-indexed) parameters."""

    contract: str
    name: str
    topic0: bytes
    types: tuple[str, ...]
    names: tuple[str, ...]
    indexed: tuple[bool, ...]

    @property
    def topic_hex(self) -> str:
        return "0x" + self.topic0.hex()

    def decode_data(self, data: bytes) -> dict[str, Any]:
        """The non-indexed parameters by name (every event of ours has only those)."""
        types = [t for t, i in zip(self.types, self.indexed, strict=True) if not i]
        names = [n for n, i in zip(self.names, self.indexed, strict=True) if not i]
        return dict(zip(names, abi_decode(types, data), strict=True))


class GridAbi:
    """Every function and event of the grid's contracts, and every error they can revert with."""

    def __init__(self, abis: Mapping[str, Sequence[Item]]) -> None:
        self._functions: dict[tuple[str, str], Function] = {}
        self._events: dict[tuple[str, str], Event] = {}
        self.errors: dict[bytes, Item] = {}
        """Error selector -> ABI item, gathered from every contract."""
        for contract, abi in abis.items():
            for item in abi:
                kind = item.get("type")
                if kind == "function":
                    self._functions[contract, item["name"]] = Function(
                        contract=contract,
                        name=item["name"],
                        inputs=tuple(canonical_type(p) for p in item.get("inputs", [])),
                        outputs=tuple(canonical_type(p) for p in item.get("outputs", [])),
                        selector=keccak(text=signature(item))[:4],
                        view=item.get("stateMutability") in ("view", "pure"),
                    )
                elif kind == "event":
                    params = item.get("inputs", [])
                    self._events[contract, item["name"]] = Event(
                        contract=contract,
                        name=item["name"],
                        topic0=keccak(text=signature(item)),
                        types=tuple(canonical_type(p) for p in params),
                        names=tuple(str(p["name"]) for p in params),
                        indexed=tuple(bool(p.get("indexed")) for p in params),
                    )
                elif kind == "error":
                    self.errors.setdefault(keccak(text=signature(item))[:4], item)

    def function(self, contract: str, name: str) -> Function:
        """The function ``name`` of ``contract``; KeyError if the ABI has no such function."""
        return self._functions[contract, name]

    def event(self, contract: str, name: str) -> Event:
        return self._events[contract, name]

    def event_by_topic(self, contract: str, topic0: bytes) -> Event | None:
        for (owner, _), event in self._events.items():
            if owner == contract and event.topic0 == topic0:
                return event
        return None


@functools.cache
def grid_abi() -> GridAbi:
    """The ABIs of every grid contract, loaded once."""
    return GridAbi({name: load_abi(name) for name in CONTRACTS})


# ------------------------------------------------------------------------- ABI tuple conversions


def job_id_bytes(value: str) -> bytes:
    """The 32 raw bytes of a job id (``0x`` + 64 hex, any case)."""
    return bytes.fromhex(job_id(value)[2:])


def _text(raw: bytes) -> str:
    """NUL-padded bytes (``bytes2`` operator, ``bytes32`` job name) as text."""
    return bytes(raw).rstrip(b"\0").decode("utf-8", errors="replace")


def _op_bytes(op: str) -> bytes:
    raw = op.encode("ascii")
    if len(raw) > 2:
        raise ValueError(f"an affinity operator is at most 2 bytes: {op!r}")
    return raw.ljust(2, b"\0")


def labels_to_abi(labels: Sequence[Label]) -> list[tuple[str, str]]:
    return [(label.key, label.value) for label in labels]


def _labels_from_abi(raw: Sequence[Any]) -> tuple[Label, ...]:
    return tuple(Label(key=str(k), value=str(v)) for k, v in raw)


def definition_to_abi(d: JobDefinition) -> tuple[Any, ...]:
    """A :class:`JobDefinition` as the ABI tuple of wire-interfaces 1.3."""
    affinity = [((a.label.key, a.label.value), _op_bytes(a.op)) for a in d.affinity]
    return (
        d.gpus,
        d.mem_per_cpu,
        d.cpus_per_task,
        d.ntasks,
        d.batch_location_hash,
        d.storage_type,
        labels_to_abi(d.uses),
        affinity,
    )


def definition_from_abi(raw: Sequence[Any]) -> JobDefinition:
    gpus, mem, cpus, ntasks, location, storage, uses, affinity = raw
    return JobDefinition(
        gpus=int(gpus),
        mem_per_cpu=int(mem),
        cpus_per_task=int(cpus),
        ntasks=int(ntasks),
        batch_location_hash=str(location),
        storage_type=int(storage),
        uses=_labels_from_abi(uses),
        affinity=tuple(
            Affinity(label=Label(key=str(k), value=str(v)), op=_text(op)) for (k, v), op in affinity
        ),
    )


def job_from_abi(raw: Sequence[Any]) -> OnChainJob:
    """The ``Job`` tuple returned by ``IJobRepository.get`` as an :class:`OnChainJob`."""
    jid, status, customer, provider, definition, cost, times, name, cancel, error, code = raw
    max_cost, final_cost, _pending_top_up, _delegate = cost
    _submit, start, end, _cancel_ts, _block, _panic_ts = times
    return OnChainJob(
        job_id=job_id(bytes(jid)),
        status=JobStatus(int(status)),
        customer=address(str(customer)),
        provider=address(str(provider)),
        definition=definition_from_abi(definition),
        max_cost=int(max_cost),
        final_cost=int(final_cost),
        start=int(start),
        end=int(end),
        job_name=_text(name),
        has_cancel_request=bool(cancel),
        last_error=str(error),
        exit_code=int(code),
    )


def hardware_to_abi(h: Hardware) -> tuple[int, list[int], list[int], list[int]]:
    return (h.nodes, list(h.gpus_per_node), list(h.cpus_per_node), list(h.mem_per_node))


def prices_to_abi(p: Prices) -> tuple[int, int, int]:
    return (p.gpu_per_min, p.cpu_per_min, p.mem_per_min)


def provider_from_abi(raw: Sequence[Any]) -> Provider | None:
    """The ``Provider`` tuple of ``getProvider``; None for the all-zero record of an unknown
    (never approved, or removed) address."""
    addr, (nodes, gpus, cpus, mem), (gpu_price, cpu_price, mem_price), labels, banned = raw
    if address(str(addr)) == ZERO_ADDRESS:
        return None
    return Provider(
        address=address(str(addr)),
        hardware=Hardware(
            nodes=int(nodes),
            gpus_per_node=tuple(int(x) for x in gpus),
            cpus_per_node=tuple(int(x) for x in cpus),
            mem_per_node=tuple(int(x) for x in mem),
        ),
        prices=Prices(
            gpu_per_min=int(gpu_price), cpu_per_min=int(cpu_price), mem_per_min=int(mem_price)
        ),
        labels=_labels_from_abi(labels),
        is_banned=bool(banned),
    )


# ------------------------------------------------------------------------------------------ logs


def _hex_bytes(value: object) -> bytes:
    return bytes.fromhex(str(value).removeprefix("0x"))


def decode_claim(log: Mapping[str, Any], *, provider: str | None = None) -> Claimed | None:
    """One JSON-RPC log object as a claim, or None.

    None when the log is not one of :data:`CLAIM_EVENTS` of the MetaScheduler ABI, or when
    ``provider`` is given and the claim is for another provider (every parameter is non-indexed,
    so this filter is client-side). ``block_number`` comes from the log. The caller checks the
    emitting address. Raises ValueError for a claim event whose data does not decode.
    """
    topics = log.get("topics") or []
    if not topics:
        return None
    event = grid_abi().event_by_topic("MetaScheduler", _hex_bytes(topics[0]))
    if event is None or event.name not in CLAIM_EVENTS:
        return None
    try:
        fields = event.decode_data(_hex_bytes(log.get("data", "0x")))
    except Exception as exc:  # eth_abi raises several types for malformed data
        raise ValueError(f"malformed {event.name} log: {exc}") from exc
    block = int(str(log.get("blockNumber") or "0x0"), 16)
    claimed: Claimed
    if event.name == "ClaimJobEvent":
        claimed = ClaimedJob(
            job_id=job_id(bytes(fields["jobId"])),
            customer=address(str(fields["customerAddr"])),
            provider=address(str(fields["providerAddr"])),
            max_duration_minute=int(fields["maxDurationMinute"]),
            definition=definition_from_abi(fields["jobDefinition"]),
            block_number=block,
        )
    elif event.name == "ClaimNextCancellingJobEvent":
        claimed = ClaimedCancel(
            job_id=job_id(bytes(fields["jobId"])),
            customer=address(str(fields["customerAddr"])),
            provider=address(str(fields["providerAddr"])),
            block_number=block,
        )
    else:
        claimed = ClaimedTopUp(
            job_id=job_id(bytes(fields["_jobId"])),
            provider=address(str(fields["_providerAddr"])),
            extra_minutes=int(fields["maxDurationMinute"]),
            block_number=block,
        )
    if provider is not None and claimed.provider != address(provider):
        return None
    return claimed
