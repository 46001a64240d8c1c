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
- :func:`quantity`, :func:`hex_bytes` and :func:`log_list` read the JSON values of an answer
  (``"0x1a"``, ``"0x..."`` data, a list of log objects).

Whatever a node answers, decoding raises :class:`~actors.chain.errors.ChainValueError` and
nothing else: eth_abi's own exceptions, a JSON value of the wrong type (a number where hex text
belongs, topics that are not a list), a job status the grid does not know. :data:`DECODE_ERRORS`
is the table that maps the codec's exceptions at each decoding step.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, Final, TypeAlias

from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_abi.exceptions import DecodingError, EncodingError
from eth_utils.crypto import keccak

from actors.chain.errors import ChainValueError
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
from runtime.errors import ErrorTable, map_exceptions

__all__ = [
    "CLAIM_EVENTS",
    "CONTRACTS",
    "DECODE_ERRORS",
    "ENCODE_ERRORS",
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
    "hex_bytes",
    "job_from_abi",
    "job_id_bytes",
    "labels_to_abi",
    "load_abi",
    "log_list",
    "prices_to_abi",
    "provider_from_abi",
    "quantity",
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

DECODE_ERRORS: Final[ErrorTable] = {
    DecodingError: ChainValueError,  # eth_abi: too short, bad padding, a pointer out of range
    ValueError: ChainValueError,  # an unknown enum value, a bad address, undecodable UTF-8
    TypeError: ChainValueError,  # a decoded value of another shape than the ABI says
    OverflowError: ChainValueError,
}
"""What each decoding step (return data, a log's data, the tuples made from them) turns into
ours: everything an RPC node can make the codec raise becomes a ChainValueError."""

ENCODE_ERRORS: Final[ErrorTable] = {EncodingError: ChainValueError}
"""eth_abi's refusals to encode an argument (a negative or too large integer, a string where
bytes belong) become ours too, before anything is sent."""


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
        with map_exceptions(ENCODE_ERRORS, f"encoding a call of {self.name}"):
            return self.selector + abi_encode(list(self.inputs), list(args))

    def decode(self, data: bytes) -> tuple[Any, ...]:
        """The decoded return values (a tuple, one entry per output)."""
        with map_exceptions(DECODE_ERRORS, f"the return data of {self.name}"):
            return tuple(abi_decode(list(self.outputs), data))

    def decode_result(self, result: object) -> tuple[Any, ...]:
        """The decoded return values of an ``eth_call`` answer (``"0x..."`` hex text)."""
        return self.decode(hex_bytes(result, f"the return data of {self.name}"))


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
        with map_exceptions(DECODE_ERRORS, f"malformed {self.name} log"):
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
    with map_exceptions(DECODE_ERRORS, "a JobDefinition tuple"):
        return _definition(raw)


def _definition(raw: Sequence[Any]) -> JobDefinition:
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
    """The ``Job`` tuple returned by ``IJobRepository.get`` as an :class:`OnChainJob` (a status
    the grid does not know is a ChainValueError, as any other shape the ABI does not give)."""
    with map_exceptions(DECODE_ERRORS, "a Job tuple"):
        return _job(raw)


def _job(raw: Sequence[Any]) -> OnChainJob:
    jid, status, customer, provider, definition, cost, times, name, cancel, error, code = raw
    max_cost, final_cost, _pending_top_up, _delegate = cost
    _submit, start, end, _cancel_ts, _block, _panic_ts = times
    return OnChainJob(
        job_id=job_id(bytes(jid)),
        status=JobStatus(int(status)),
        customer=address(str(customer)),
        provider=address(str(provider)),
        definition=_definition(definition),
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
    with map_exceptions(DECODE_ERRORS, "a Provider tuple"):
        return _provider(raw)


def _provider(raw: Sequence[Any]) -> Provider | None:
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

_HEX_DATA = re.compile(r"0x(?:[0-9a-fA-F]{2})*")
_QUANTITY = re.compile(r"0x[0-9a-fA-F]{1,64}")


def hex_bytes(value: object, what: str) -> bytes:
    """The bytes of ``"0x..."`` hex text in an answer (``what`` names it in the error)."""
    if not isinstance(value, str) or not _HEX_DATA.fullmatch(value):
        raise ChainValueError(f"{what}: expected 0x-prefixed hex bytes, got {_shown(value)}")
    return bytes.fromhex(value[2:])


def quantity(value: object, what: str) -> int:
    """The number of a JSON-RPC quantity (``"0x1a"``: hex, at most 256 bits)."""
    if not isinstance(value, str) or not _QUANTITY.fullmatch(value):
        raise ChainValueError(f"{what}: expected a 0x-prefixed hex quantity, got {_shown(value)}")
    return int(value, 16)


def log_list(value: object, what: str) -> list[dict[str, Any]]:
    """The log objects of an answer (``eth_getLogs``, a receipt's ``logs``); None is none."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(log, dict) for log in value):
        raise ChainValueError(f"{what}: expected a list of log objects, got {_shown(value)}")
    return [dict(log) for log in value]


def _shown(value: object) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:60]}{'...' if len(text) > 60 else ''}"


def decode_claim(log: Mapping[str, Any], *, provider: str | None = None) -> Claimed | None:
    """One JSON-RPC log object as a claim, or None.

    None when the log is not one of :data:`CLAIM_EVENTS` of the MetaScheduler ABI, or when
    ``provider`` is given and the claim is for another provider (every parameter is non-indexed,
    so this filter is client-side). ``block_number`` comes from the log (0 while pending). The
    caller checks the emitting address. Raises ChainValueError for a log that is not a JSON-RPC
    log object or a claim event whose data does not decode.
    """
    if not isinstance(log, Mapping):
        raise ChainValueError(f"a log: expected a log object, got {_shown(log)}")
    topics = log.get("topics") or []
    if not isinstance(topics, list):
        raise ChainValueError(f"a log's topics: expected a list, got {_shown(topics)}")
    if not topics:
        return None
    event = grid_abi().event_by_topic("MetaScheduler", hex_bytes(topics[0], "a log's topic"))
    if event is None or event.name not in CLAIM_EVENTS:
        return None
    fields = event.decode_data(hex_bytes(log.get("data", "0x"), f"a {event.name} log's data"))
    pending = log.get("blockNumber") is None
    block = 0 if pending else quantity(log.get("blockNumber"), f"a {event.name} log's block")
    with map_exceptions(DECODE_ERRORS, f"malformed {event.name} log"):
        claimed = _claimed(event.name, fields, block)
    if provider is not None and claimed.provider != address(provider):
        return None
    return claimed


def _claimed(name: str, fields: Mapping[str, Any], block: int) -> Claimed:
    if name == "ClaimJobEvent":
        return ClaimedJob(
            job_id=job_id(bytes(fields["jobId"])),
            customer=address(str(fields["customerAddr"])),
            provider=address(str(fields["providerAddr"])),
            max_duration_minute=int(fields["maxDurationMinute"]),
            definition=_definition(fields["jobDefinition"]),
            block_number=block,
        )
    if name == "ClaimNextCancellingJobEvent":
        return ClaimedCancel(
            job_id=job_id(bytes(fields["jobId"])),
            customer=address(str(fields["customerAddr"])),
            provider=address(str(fields["providerAddr"])),
            block_number=block,
        )
    return ClaimedTopUp(
        job_id=job_id(bytes(fields["_jobId"])),
        provider=address(str(fields["_providerAddr"])),
        extra_minutes=int(fields["maxDurationMinute"]),
        block_number=block,
    )
