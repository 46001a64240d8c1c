"""The chain adapter's ABI layer: selectors, topics, struct round trips, claim logs (pure)."""

from __future__ import annotations

from typing import Any

import pytest
from eth_abi.abi import decode, encode
from hypothesis import given
from hypothesis import strategies as st

from actors.chain.abi import (
    decode_claim,
    definition_from_abi,
    definition_to_abi,
    grid_abi,
    hardware_to_abi,
    hex_bytes,
    job_from_abi,
    labels_to_abi,
    load_abi,
    log_list,
    prices_to_abi,
    provider_from_abi,
    quantity,
)
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
    Prices,
)

DEFINITION = (
    "(uint64,uint64,uint64,uint64,string,uint8,(string,string)[],((string,string),bytes2)[])"
)
JOB = (
    f"(bytes32,uint8,address,address,{DEFINITION},(uint256,uint256,uint256,bool),"
    "(uint256,uint256,uint256,uint256,uint256,uint256),bytes32,bool,string,int64)"
)
PROVIDER = (
    "(address,(uint64,uint64[],uint64[],uint64[]),(uint256,uint256,uint256),(string,string)[],bool)"
)
CUSTOMER_ADDR = "0x" + "ab" * 20
PROVIDER_ADDR = "0x" + "cd" * 20
JOB_ID = "0x" + "0f" * 32

SAMPLE = JobDefinition(
    gpus=2,
    mem_per_cpu=4096,
    cpus_per_task=8,
    ntasks=3,
    batch_location_hash="c3VwZXI",
    storage_type=0,
    uses=(Label("os", "linux"), Label("arch", "amd64")),
    affinity=(
        Affinity(Label("cpu", "zen"), "=="),
        Affinity(Label("gpus", "4"), ">="),
        Affinity(Label("zone", "eu"), "="),
    ),
)


@pytest.mark.parametrize(
    ("contract", "function", "selector"),
    [
        ("MetaScheduler", "claimNextJob", "5d3a7180"),
        ("MetaScheduler", "claimNextCancellingJob", "5e1b2d65"),
        ("MetaScheduler", "claimNextTopUpJob", "ebd4bf00"),
        ("MetaScheduler", "providerSetJobStatus", "e1c0fdd4"),
        ("MetaScheduler", "refuseJob", "1f92a63f"),
        ("MetaScheduler", "enableRequestNewJob", "4c6dad12"),
        ("MetaScheduler", "jobs", "7c8fce23"),
        ("MetaScheduler", "providerJobQueues", "e2eaf3e7"),
        ("MetaScheduler", "providerManager", "13151ec9"),
        ("JobRepository", "get", "8eaa6ac0"),
        ("ProviderJobQueues", "hasNextClaimableJob", "6502e50b"),
        ("ProviderJobQueues", "hasCancellingJob", "20a5f919"),
        ("ProviderJobQueues", "hasTopUpJob", "c7070e2c"),
        ("ProviderJobQueues", "getClaimableJobQueueSize", "79490261"),
        ("ProviderManager", "register", "94f9b055"),
        ("ProviderManager", "getProvider", "55f21eb7"),
        ("ProviderManager", "isWaitingForApproval", "220f0e4c"),
        ("ProviderManager", "isValidForScheduling", "21457c7e"),
        ("ProviderManager", "isBanned", "97f735d5"),
    ],
)
def test_function_selectors_match_the_wire(contract: str, function: str, selector: str) -> None:
    assert grid_abi().function(contract, function).selector.hex() == selector


def test_claim_event_topics_match_the_wire() -> None:
    abi = grid_abi()
    assert abi.event("MetaScheduler", "ClaimJobEvent").topic_hex == (
        "0xc8d7c7c2914e1aa1462fe7999f8a18a0f1043d7d94ab692c3ac9af846f1be8c7"
    )
    assert abi.event("MetaScheduler", "ClaimNextCancellingJobEvent").topic_hex == (
        "0x290fa751f58fe2a1f5758b401eb3110dbbb71b68540282856c0dcdcc7011e07d"
    )
    assert abi.event("MetaScheduler", "ClaimNextTopUpJobEvent").topic_hex == (
        "0xa42f2b4a7ee7f91857a4c98fc71fc48546a284d5db48dd77b7ab81030a494470"
    )


def test_struct_tuples_are_the_canonical_ones_of_the_wire() -> None:
    abi = grid_abi()
    assert abi.function("JobRepository", "get").outputs == (JOB,)
    assert abi.function("ProviderManager", "getProvider").outputs == (PROVIDER,)
    assert abi.function("MetaScheduler", "requestNewJob").inputs[0] == DEFINITION
    assert load_abi("MetaScheduler")  # read as package data


labels = st.tuples(st.text(max_size=12), st.text(max_size=12)).map(lambda kv: Label(*kv))
definitions = st.builds(
    JobDefinition,
    gpus=st.integers(0, 2**64 - 1),
    mem_per_cpu=st.integers(0, 2**64 - 1),
    cpus_per_task=st.integers(0, 2**64 - 1),
    ntasks=st.integers(0, 2**64 - 1),
    batch_location_hash=st.text(max_size=40),
    storage_type=st.integers(0, 255),
    uses=st.lists(labels, max_size=3).map(tuple),
    affinity=st.lists(
        st.builds(
            Affinity,
            label=labels,
            op=st.sampled_from(["=", "==", "in", ">", "<", ">=", "<=", "!="]),
        ),
        max_size=3,
    ).map(tuple),
)


@given(definition=definitions)
def test_job_definitions_survive_the_abi(definition: JobDefinition) -> None:
    data = encode([DEFINITION], [definition_to_abi(definition)])
    (raw,) = decode([DEFINITION], data)
    assert definition_from_abi(raw) == definition


def test_operators_travel_as_nul_padded_bytes2() -> None:
    raw = definition_to_abi(SAMPLE)
    assert [op for _, op in raw[7]] == [b"==", b">=", b"=\x00"]
    with pytest.raises(ValueError, match="at most 2 bytes"):
        definition_to_abi(
            JobDefinition(0, 0, 0, 0, "", affinity=(Affinity(Label("a", "b"), "==="),))
        )


def job_tuple(status: int = 2, name: bytes = b"my job".ljust(32, b"\0")) -> tuple[Any, ...]:
    return (
        bytes.fromhex(JOB_ID[2:]),
        status,
        CUSTOMER_ADDR,
        PROVIDER_ADDR,
        definition_to_abi(SAMPLE),
        (10**20, 3 * 10**18, 0, True),
        (1_700_000_000, 1_700_000_060, 1_700_000_600, 0, 42, 0),
        name,
        True,
        "boom",
        -256,
    )


def test_a_job_decodes_from_what_jobs_get_returns() -> None:
    get = grid_abi().function("JobRepository", "get")
    (raw,) = get.decode(encode([JOB], [job_tuple()]))
    job = job_from_abi(raw)
    assert job.job_id == JOB_ID
    assert job.status is JobStatus.SCHEDULED
    assert job.customer == CUSTOMER_ADDR and job.provider == PROVIDER_ADDR
    assert job.definition == SAMPLE
    assert (job.max_cost, job.final_cost) == (10**20, 3 * 10**18)
    assert (job.start, job.end) == (1_700_000_060, 1_700_000_600)
    assert job.job_name == "my job"
    assert job.has_cancel_request is True
    assert (job.last_error, job.exit_code) == ("boom", -256)


def test_a_provider_decodes_and_an_unknown_one_is_none() -> None:
    hardware = Hardware(nodes=2, gpus_per_node=(0, 4), cpus_per_node=(8, 16), mem_per_node=(1, 2))
    prices = Prices(gpu_per_min=3, cpu_per_min=2, mem_per_min=1)
    labels = (Label("arch", "amd64"), Label("os", "linux"))
    raw_provider = (
        PROVIDER_ADDR,
        hardware_to_abi(hardware),
        prices_to_abi(prices),
        labels_to_abi(labels),
        True,
    )
    get = grid_abi().function("ProviderManager", "getProvider")
    (raw,) = get.decode(encode([PROVIDER], [raw_provider]))
    provider = provider_from_abi(raw)
    assert provider is not None
    assert provider.address == PROVIDER_ADDR
    assert (provider.hardware, provider.prices, provider.labels) == (hardware, prices, labels)
    assert provider.is_banned is True
    zero: tuple[Any, ...] = ("0x" + "00" * 20, (0, [], [], []), (0, 0, 0), [], False)
    (raw,) = get.decode(encode([PROVIDER], [zero]))
    assert provider_from_abi(raw) is None


def test_register_calldata_round_trips() -> None:
    register = grid_abi().function("ProviderManager", "register")
    hardware = Hardware(nodes=1, gpus_per_node=(1,), cpus_per_node=(4,), mem_per_node=(8000,))
    prices = Prices(gpu_per_min=10**19, cpu_per_min=10**18, mem_per_min=8 * 10**13)
    data = register.encode(
        hardware_to_abi(hardware), prices_to_abi(prices), labels_to_abi(SAMPLE.uses)
    )
    assert data[:4].hex() == "94f9b055"
    hw, pr, lb = decode(list(register.inputs), data[4:])
    assert hw == (1, (1,), (4,), (8000,)) and pr == (10**19, 10**18, 8 * 10**13)
    assert lb == (("os", "linux"), ("arch", "amd64"))


def log_of(event: str, types: list[str], values: list[Any], block: int = 17) -> dict[str, Any]:
    topic = grid_abi().event("MetaScheduler", event).topic_hex
    return {
        "address": "0x" + "11" * 20,
        "topics": [topic],
        "data": "0x" + encode(types, values).hex(),
        "blockNumber": hex(block),
        "transactionHash": "0x" + "22" * 32,
        "logIndex": "0x0",
    }


def test_claim_logs_decode_into_grid_types_for_this_provider_only() -> None:
    job_log = log_of(
        "ClaimJobEvent",
        ["address", "address", "bytes32", "uint64", DEFINITION],
        [CUSTOMER_ADDR, PROVIDER_ADDR, bytes.fromhex(JOB_ID[2:]), 96, definition_to_abi(SAMPLE)],
    )
    assert decode_claim(job_log, provider=PROVIDER_ADDR.upper().replace("X", "x")) == ClaimedJob(
        job_id=JOB_ID,
        customer=CUSTOMER_ADDR,
        provider=PROVIDER_ADDR,
        max_duration_minute=96,
        definition=SAMPLE,
        block_number=17,
    )
    assert decode_claim(job_log, provider=CUSTOMER_ADDR) is None  # another provider's claim
    cancel_log = log_of(
        "ClaimNextCancellingJobEvent",
        ["address", "address", "bytes32"],
        [CUSTOMER_ADDR, PROVIDER_ADDR, bytes.fromhex(JOB_ID[2:])],
    )
    assert decode_claim(cancel_log) == ClaimedCancel(JOB_ID, CUSTOMER_ADDR, PROVIDER_ADDR, 17)
    top_up_log = log_of(
        "ClaimNextTopUpJobEvent",
        ["bytes32", "address", "uint64"],
        [bytes.fromhex(JOB_ID[2:]), PROVIDER_ADDR, 30],
        block=99,
    )
    assert decode_claim(top_up_log, provider=PROVIDER_ADDR) == ClaimedTopUp(
        JOB_ID, PROVIDER_ADDR, 30, 99
    )


def test_other_logs_are_ignored_and_malformed_claims_are_reported() -> None:
    refused = log_of(
        "JobRefusedEvent",
        ["bytes32", "address", "address"],
        [b"\x01" * 32, PROVIDER_ADDR, CUSTOMER_ADDR],
    )
    assert decode_claim(refused) is None
    assert decode_claim({"topics": [], "data": "0x"}) is None
    broken = log_of("ClaimNextTopUpJobEvent", ["bytes32"], [b"\x01" * 32])
    with pytest.raises(ChainValueError, match="malformed ClaimNextTopUpJobEvent"):
        decode_claim(broken)


# --- whatever a node answers, decoding raises ChainValueError and nothing else ----------------

TOP_UP = log_of(
    "ClaimNextTopUpJobEvent",
    ["bytes32", "address", "uint64"],
    [bytes.fromhex(JOB_ID[2:]), PROVIDER_ADDR, 30],
)


@pytest.mark.parametrize(
    "log",
    [
        {**TOP_UP, "topics": TOP_UP["topics"][0]},  # a string, not a list: was a TypeError
        {**TOP_UP, "topics": [17]},  # a number for a topic
        {**TOP_UP, "topics": {"0": TOP_UP["topics"][0]}},  # a mapping: was a KeyError
        {**TOP_UP, "topics": [TOP_UP["topics"][0][:-1]]},  # odd hex
        {**TOP_UP, "data": 5},
        {**TOP_UP, "data": None},
        {**TOP_UP, "data": TOP_UP["data"] + "zz"},
        {**TOP_UP, "data": TOP_UP["data"][:-64]},  # eth_abi's InsufficientDataBytes
        {**TOP_UP, "data": "0x" + "ff" * 96},  # eth_abi's NonEmptyPaddingBytes
        {**TOP_UP, "blockNumber": 17},
        {**TOP_UP, "blockNumber": "0x"},
        {**TOP_UP, "blockNumber": "0x" + "f" * 65},
        ["not", "a", "log"],
    ],
)
def test_malformed_logs_are_the_chain_adapters_error(log: Any) -> None:
    with pytest.raises(ChainValueError):
        decode_claim(log)


def test_a_pending_log_has_block_zero() -> None:
    claim = decode_claim({**TOP_UP, "blockNumber": None})
    assert isinstance(claim, ClaimedTopUp) and claim.block_number == 0


def test_an_unknown_job_status_is_the_chain_adapters_error() -> None:
    get = grid_abi().function("JobRepository", "get")
    (raw,) = get.decode(encode([JOB], [job_tuple(status=200)]))
    with pytest.raises(ChainValueError, match="a Job tuple: ValueError: 200"):
        job_from_abi(raw)


@pytest.mark.parametrize(
    "result", [None, 12, "", "0x0", "0xzz", "0x" + "00" * 31, "0x" + "ff" * 32, ["0x00"]]
)
def test_return_data_that_does_not_decode_is_the_chain_adapters_error(result: object) -> None:
    get = grid_abi().function("JobRepository", "get")
    with pytest.raises(ChainValueError, match="return data of get"):
        get.decode_result(result)
    enabled = grid_abi().function("MetaScheduler", "enableRequestNewJob")
    with pytest.raises(ChainValueError):
        enabled.decode_result(result if result != "0x" + "00" * 31 else "0x" + "02".rjust(64, "0"))


def test_arguments_eth_abi_cannot_encode_are_the_chain_adapters_error() -> None:
    status = grid_abi().function("MetaScheduler", "providerSetJobStatus")
    with pytest.raises(ChainValueError, match="encoding a call of providerSetJobStatus"):
        status.encode(b"\x01" * 32, 3, -1, "", 0)  # a negative uint64
    with pytest.raises(ChainValueError):
        status.encode(b"\x01" * 32, 3, 0, "", 2**70)  # beyond int64


def test_answer_values_are_checked_for_type_and_form() -> None:
    assert quantity("0x1a", "n") == 26
    assert hex_bytes("0x00ff", "d") == b"\x00\xff"
    assert log_list(None, "logs") == []
    assert log_list([{"a": 1}], "logs") == [{"a": 1}]
    for bad in ("26", "0x", "0x-1", " 0x1", "0x1\n", 26, None, "0x" + "1" * 65, "0x\uff11"):
        with pytest.raises(ChainValueError, match="n: expected"):
            quantity(bad, "n")
    for bad in ("00ff", "0x0", "0xgg", b"\x00", None, "0x00\n"):
        with pytest.raises(ChainValueError, match="d: expected"):
            hex_bytes(bad, "d")
    for bad in ({"a": 1}, "logs", [1], [[]], 3):
        with pytest.raises(ChainValueError, match="logs: expected"):
            log_list(bad, "logs")
