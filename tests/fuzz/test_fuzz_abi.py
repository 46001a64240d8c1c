"""What an RPC node answers, as the chain adapter decodes it: return data, claim logs, receipts,
fee facts and JSON-RPC errors. Whatever the node sends, decoding answers a value or raises the
adapter's own error (ChainValueError, or the transport's and the contract's ChainErrors), never
eth_abi's exceptions, TypeError, KeyError or ValueError."""

from __future__ import annotations

import contextlib
from typing import Any

from eth_abi.abi import encode
from hypothesis import given
from hypothesis import strategies as st

from actors.chain.abi import (
    CLAIM_EVENTS,
    CONTRACTS,
    decode_claim,
    definition_to_abi,
    grid_abi,
    hex_bytes,
    job_from_abi,
    load_abi,
    log_list,
    provider_from_abi,
    quantity,
)
from actors.chain.errors import ChainError, ChainValueError
from actors.chain.fees import fees_from_node
from actors.chain.revert import ContractError, decode_revert, error_selectors, revert_data
from actors.chain.rpc import _answer
from actors.chain.transactions import _receipt
from actors.grid import JobDefinition, Label
from tests.fuzz.budget import fuzz

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
hex_texts = st.binary(max_size=200).map(lambda data: "0x" + data.hex())
odd_hex = st.sampled_from(["0x", "0x0", "0xzz", "", "00", "0X12", "0x12\n", "0x" + "f" * 65])
quantities = st.integers(0, 2**256 - 1).map(hex) | odd_hex | json_values

FUNCTIONS = [
    (contract, str(item["name"]))
    for contract in CONTRACTS
    for item in load_abi(contract)
    if item.get("type") == "function"
]
TOPICS = [grid_abi().event("MetaScheduler", name).topic_hex for name in CLAIM_EVENTS]
PROVIDER = "0x" + "cd" * 20
DEFINITION = JobDefinition(1, 100, 2, 3, "h", uses=(Label("os", "linux"),))
TYPES = "(uint64,uint64,uint64,uint64,string,uint8,(string,string)[],((string,string),bytes2)[])"
GOOD_JOB_DATA = encode(
    ["address", "address", "bytes32", "uint64", TYPES],
    ["0x" + "ab" * 20, PROVIDER, b"\x01" * 32, 60, definition_to_abi(DEFINITION)],
)


def mutated(data: bytes, cuts: list[tuple[int, int]]) -> bytes:
    """``data`` with some bytes overwritten (position, value) and maybe cut short."""
    buffer = bytearray(data)
    for position, value in cuts:
        if position < len(buffer):
            buffer[position] = value
        else:
            del buffer[position % (len(buffer) + 1) :]
    return bytes(buffer)


claim_data = (
    st.lists(st.tuples(st.integers(0, 1200), st.integers(0, 255)), max_size=6).map(
        lambda cuts: "0x" + mutated(GOOD_JOB_DATA, cuts).hex()
    )
    | hex_texts
    | json_values
)
logs = st.fixed_dictionaries(
    {},
    optional={
        "topics": st.lists(st.sampled_from(TOPICS) | hex_texts | json_values, max_size=3)
        | json_values,
        "data": claim_data,
        "blockNumber": quantities,
        "address": json_values,
        "removed": json_values,
    },
)


@fuzz()
@given(logs | json_values)
def test_claim_logs_decode_or_are_the_adapters_error(log: Any) -> None:
    try:
        claim = decode_claim(log, provider=PROVIDER)
    except ChainValueError:
        return
    assert claim is None or claim.provider == PROVIDER


@fuzz()
@given(st.sampled_from(FUNCTIONS), hex_texts | odd_hex | json_values)
def test_return_data_decodes_or_is_the_adapters_error(function: tuple[str, str], data: Any) -> None:
    decoded = None
    try:
        decoded = grid_abi().function(*function).decode_result(data)
    except ChainValueError:
        return
    assert isinstance(decoded, tuple)
    if function == ("JobRepository", "get"):
        with contextlib.suppress(ChainValueError):
            job_from_abi(decoded[0])
    if function == ("ProviderManager", "getProvider"):
        with contextlib.suppress(ChainValueError):
            provider_from_abi(decoded[0])


@fuzz(0.5)
@given(st.integers(0, 2**64).flatmap(lambda n: st.binary(min_size=32 * (n % 40), max_size=1400)))
def test_job_records_of_any_bytes_decode_or_are_the_adapters_error(data: bytes) -> None:
    """Random words under JobRepository.get's type: a status the grid does not know, a bytes2
    operator that is not text, an address or job id of the wrong size are all ours."""
    get = grid_abi().function("JobRepository", "get")
    try:
        (raw,) = get.decode(data)
        job = job_from_abi(raw)
    except ChainValueError:
        return
    assert job.job_id.startswith("0x") and len(job.job_id) == 66


@fuzz()
@given(st.binary(max_size=300), st.sampled_from([b"", *error_selectors()]))
def test_revert_data_always_decodes_to_a_contract_error(tail: bytes, selector: bytes) -> None:
    error = decode_revert(selector + tail)
    assert isinstance(error, ContractError)


@fuzz()
@given(json_values)
def test_json_rpc_replies_answer_or_raise_a_chain_error(reply: Any) -> None:
    with contextlib.suppress(ChainError):
        _answer("eth_call", reply)
    if isinstance(reply, dict):
        found = revert_data(reply)
        assert found is None or isinstance(found, bytes)


receipts = st.fixed_dictionaries(
    {},
    optional={
        "transactionHash": hex_texts | json_values,
        "blockNumber": quantities,
        "status": quantities,
        "gasUsed": quantities,
        "logs": st.lists(logs, max_size=2) | json_values,
    },
)


@fuzz()
@given(receipts, st.integers(0, 2**64))
def test_receipts_decode_or_are_the_adapters_error(raw: dict[str, Any], nonce: int) -> None:
    try:
        receipt = _receipt(raw, nonce)
    except ChainValueError:
        return
    assert receipt.nonce == nonce and receipt.block_number >= 0


@fuzz()
@given(
    st.none() | st.fixed_dictionaries({}, optional={"baseFeePerGas": quantities}) | json_values,
    st.integers(0, 2**256),
    st.none() | st.integers(0, 2**256),
    st.sampled_from(["auto", "legacy", "eip1559"]),
)
def test_fee_facts_decode_or_are_a_chain_error(
    block: Any, price: int, tip: int | None, mode: Any
) -> None:
    with contextlib.suppress(ChainError):
        fees_from_node(block, gas_price=price, priority_fee=tip, mode=mode)


@fuzz()
@given(json_values | quantities)
def test_answer_values_are_read_or_are_the_adapters_error(value: Any) -> None:
    for read in (quantity, hex_bytes, log_list):
        try:
            read(value, "an answer")
        except ChainValueError as error:
            assert str(error).startswith("an answer: expected")


@fuzz()
@given(
    st.binary(max_size=40),
    st.integers(-10, 300),
    st.integers(-(2**70), 2**70),
    st.text(max_size=20),
    st.integers(-(2**70), 2**70),
)
def test_a_status_call_encodes_or_is_the_adapters_error(
    job: bytes, status: int, minutes: int, error: str, exit_code: int
) -> None:
    call = grid_abi().function("MetaScheduler", "providerSetJobStatus")
    fits = (
        len(job) <= 32  # eth_abi pads a shorter bytes32
        and 0 <= status < 2**8
        and 0 <= minutes < 2**64
        and -(2**63) <= exit_code < 2**63
    )
    try:
        data = call.encode(job, status, minutes, error, exit_code)
    except ChainValueError:
        assert not fits
        return
    assert fits and data[:4] == call.selector
