"""The committed ABIs (contracts/abi/*.json) expose the meta-scheduler's public surface exactly.

Expected selectors and topics are typed in from shared/reference/wire-interfaces.md sections 1.4,
1.5, 1.6 and 1.10; the actual ones are keccak256 of the canonical signatures read from the JSON.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from eth_utils.crypto import keccak

ABI_DIR = Path(__file__).resolve().parents[2] / "contracts" / "abi"

# Section 1.4 (MetaScheduler, including OpenZeppelin AccessControl).
METASCHEDULER_FUNCTIONS = {
    "5d3a7180": "claimNextJob",
    "5e1b2d65": "claimNextCancellingJob",
    "ebd4bf00": "claimNextTopUpJob",
    "e1c0fdd4": "providerSetJobStatus",
    "1f92a63f": "refuseJob",
    "d9943788": "requestNewJob",
    "d1cee546": "metaSchedule",
    "5fae1450": "cancelJob",
    "2fecc4f6": "topUpJob",
    "69ee1bf9": "topUpJobDelegate",
    "329af326": "setDelegateSpendingAuthority",
    "54b4a0d2": "panicJob",
    "18263c59": "timeoutJob",
    "4c6dad12": "enableRequestNewJob",
    "0bba4dc5": "setEnableRequestNewJob",
    "d77836ce": "withdrawAdmin",
    "7c8fce23": "jobs",
    "e2eaf3e7": "providerJobQueues",
    "13151ec9": "providerManager",
    "72de5b2f": "constants",
    "a06d083c": "credit",
    "e052888c": "METASCHEDULER_ROLE",
    "a217fddf": "DEFAULT_ADMIN_ROLE",
    "2f2ff15d": "grantRole",
    "d547741f": "revokeRole",
    "36568abe": "renounceRole",
    "91d14854": "hasRole",
    "248a9ca3": "getRoleAdmin",
    "01ffc9a7": "supportsInterface",
}

# Section 1.5.
JOB_REPOSITORY_FUNCTIONS = {
    "8eaa6ac0": "get",
    "89a33883": "getByCustomer",
    "d651fd61": "create",
    "9a1e0218": "update",
    "e1908676": "setJobStatus",
    "b7090331": "setCost",
    "6d20cb17": "setTime",
    "fbae3f97": "setDefinition",
    "49c70dfa": "setCustomerAddr",
    "5aae4bbd": "setProviderAddr",
    "2074ba14": "setJobName",
    "8e4de1ca": "setHasCancelRequest",
    "b613a721": "setLastError",
    "6bfbf785": "setExitCode",
}
PROVIDER_JOB_QUEUES_FUNCTIONS = {
    "6502e50b": "hasNextClaimableJob",
    "20a5f919": "hasCancellingJob",
    "c7070e2c": "hasTopUpJob",
    "79490261": "getClaimableJobQueueSize",
    "4c2a0b7b": "getCancellingJobQueueSize",
    "c3345ca3": "getTopUpJobQueueSize",
}
PROVIDER_MANAGER_FUNCTIONS = {
    "94f9b055": "register",
    "55f21eb7": "getProvider",
    "f77dd4c0": "getWaitingForApprovalProvider",
    "e5500e40": "getProviderHardware",
    "106859b6": "getProviderPrices",
    "95473b2b": "getLabels",
    "6830cdc4": "getJobCount",
    "97f735d5": "isBanned",
    "220f0e4c": "isWaitingForApproval",
    "21457c7e": "isValidForScheduling",
    "daea85c5": "approve",
    "97c3ccd8": "ban",
    "b9f14557": "unban",
    "29092d0e": "remove",
    "3f6edb5f": "incJobCount",
}
TOOLS_FUNCTIONS = {
    "b42f5513": "checkNewJobStatus",
    "3df1c0ff": "convertCreditToDuration",
    "b22d1f1f": "convertDurationToCredit",
    "1b8732be": "getRemainingTime",
    "ff75c979": "isJobHot",
    "85521276": "isJobCold",
    "6e404ce0": "isDelegateTopable",
    "ceb9b3cb": "isJobDefinitionValid",
}

# Section 1.6: (contract, event name, full topic0 or "prefix…suffix" as the reference abbreviates).
EVENTS = [
    (
        "MetaScheduler",
        "ClaimJobEvent",
        "c8d7c7c2914e1aa1462fe7999f8a18a0f1043d7d94ab692c3ac9af846f1be8c7",
    ),
    (
        "MetaScheduler",
        "ClaimNextCancellingJobEvent",
        "290fa751f58fe2a1f5758b401eb3110dbbb71b68540282856c0dcdcc7011e07d",
    ),
    (
        "MetaScheduler",
        "ClaimNextTopUpJobEvent",
        "a42f2b4a7ee7f91857a4c98fc71fc48546a284d5db48dd77b7ab81030a494470",
    ),
    (
        "MetaScheduler",
        "NewJobRequestEvent",
        "1b831e9023e41b1f2ae42f1cb9a173ca2de2eb05475bf206d3762717a826ada3",
    ),
    (
        "MetaScheduler",
        "JobRefusedEvent",
        "50d9c3fab9ef0192905beb84254b4ffb6fe086795cc23de484ec65947b6615a2",
    ),
    (
        "MetaScheduler",
        "BilledTooMuchEvent",
        "17e65314b087df225f56701d0a66a3f7d9ce0f26077307b4b765a19c60a36d44",
    ),
    (
        "JobRepository",
        "JobTransitionEvent",
        "0bba917f0a1e0fc0d51a75273e7088a4dfecb010699e60ac9c58526429f6c37f",
    ),
    (
        "JobRepository",
        "JobCreated",
        "f07e304c87358b8d65d0eb3d3228fa675e734586d63e7af58cdf2c58eec729ab",
    ),
    ("ProviderManager", "ProviderWaitingForApproval", "499ee8b6…e343"),
    ("ProviderManager", "ProviderApproved", "ee9f2f9f…31e7"),
    ("ProviderManager", "ProviderRemoved", "1589f855…b1d9"),
    ("ProviderManager", "ProviderBanChanged", "fb129c89…fc7d"),
]

# Section 1.10.
ERRORS = {
    "03eb8b54": "InsufficientFunds",
    "d208e590": "InvalidJobDefinition",
    "8c6824c2": "JobHotStatusOnly",
    "2fef82f8": "InvalidTransition",
    "2a856fc9": "SameStatusError",
    "ed3e2aad": "RunningScheduledStatusOnly",
    "090713fe": "MetaScheduledScheduledStatusOnly",
    "14475eb7": "RunningColdStatusOnly",
    "89423319": "CustomerOnly",
    "32e3065c": "JobProviderOnly",
    "7897ef6d": "CustomerMetaSchedulerProviderOnly",
    "ef341f6d": "ProviderNotJoined",
    "9003b68a": "RemainingTimeAboveLimit",
    "42f99019": "NoSpendingAuthority",
    "3abe75b3": "NewJobRequestDisabled",
    "71c8f460": "InvalidJob",
    "97736927": "NoJob",
    "e01ba5fa": "InvalidNodesCount",
    "a24a13a6": "ArrayLengthMismatch",
    "785f1be0": "InvalidTotalMem",
    "5b23e576": "InvalidTotalCpus",
    "3a43ca41": "NoProvider",
    "2a9126eb": "WaitingApprovalOnly",
    "7064572b": "Banned",
    "bdb90210": "AlreadyDone",
    "3db2a12a": "Empty",
    "b4120f14": "OutOfBounds",
}
GRID_CONTRACTS = ["MetaScheduler", "JobRepository", "ProviderJobQueues", "ProviderManager"]

# Section 1.3: the canonical tuples of the records the supervisor decodes.
LABEL = "(string,string)"
JOB_DEFINITION = f"(uint64,uint64,uint64,uint64,string,uint8,{LABEL}[],({LABEL},bytes2)[])"
JOB = (
    f"(bytes32,uint8,address,address,{JOB_DEFINITION},(uint256,uint256,uint256,bool),"
    "(uint256,uint256,uint256,uint256,uint256,uint256),bytes32,bool,string,int64)"
)
PROVIDER = f"(address,(uint64,uint64[],uint64[],uint64[]),(uint256,uint256,uint256),{LABEL}[],bool)"


def load(name: str) -> list[dict[str, Any]]:
    abi: list[dict[str, Any]] = json.loads((ABI_DIR / f"{name}.json").read_text())
    return abi


def canonical(param: dict[str, Any]) -> str:
    kind = str(param["type"])
    if kind.startswith("tuple"):
        return "(" + ",".join(canonical(c) for c in param["components"]) + ")" + kind[5:]
    return kind


def signature(item: dict[str, Any]) -> str:
    return str(item["name"]) + "(" + ",".join(canonical(p) for p in item["inputs"]) + ")"


def hashes(abi: list[dict[str, Any]], kind: str) -> dict[str, str]:
    """Name -> keccak256(signature) hex of every ``kind`` item (functions: unique names)."""
    found = {}
    for item in abi:
        if item["type"] == kind:
            assert item["name"] not in found, f"overloaded {item['name']}"
            found[item["name"]] = keccak(text=signature(item)).hex()
    return found


@pytest.mark.parametrize(
    ("contract", "expected"),
    [
        ("MetaScheduler", METASCHEDULER_FUNCTIONS),
        ("JobRepository", JOB_REPOSITORY_FUNCTIONS),
        ("ProviderJobQueues", PROVIDER_JOB_QUEUES_FUNCTIONS),
        ("ProviderManager", PROVIDER_MANAGER_FUNCTIONS),
        ("Tools", TOOLS_FUNCTIONS),
    ],
)
def test_function_selectors(contract: str, expected: dict[str, str]) -> None:
    actual = {name: digest[:8] for name, digest in hashes(load(contract), "function").items()}
    for sel, name in expected.items():
        assert actual.get(name) == sel, f"{contract}.{name}"


@pytest.mark.parametrize(("contract", "event", "topic"), EVENTS)
def test_event_topics(contract: str, event: str, topic: str) -> None:
    actual = hashes(load(contract), "event").get(event)
    assert actual is not None, f"{contract} lacks {event}"
    if "…" in topic:
        head, tail = topic.split("…")
        assert actual.startswith(head) and actual.endswith(tail)
    else:
        assert actual == topic


def test_grid_events_have_no_indexed_parameters() -> None:
    for contract, event, _ in EVENTS:
        item = next(i for i in load(contract) if i["type"] == "event" and i["name"] == event)
        assert not any(p["indexed"] for p in item["inputs"]), event


@pytest.mark.parametrize("contract", GRID_CONTRACTS)
def test_every_grid_contract_can_decode_every_error(contract: str) -> None:
    actual = {name: digest[:8] for name, digest in hashes(load(contract), "error").items()}
    for sel, name in ERRORS.items():
        assert actual.get(name) == sel, f"{contract}: {name}"


def test_tools_declares_its_transition_errors() -> None:
    actual = {name: digest[:8] for name, digest in hashes(load("Tools"), "error").items()}
    assert actual["InvalidTransition"] == "2fef82f8"
    assert actual["SameStatusError"] == "2a856fc9"


def test_records_have_the_reference_tuples() -> None:
    def output_of(contract: str, function: str) -> str:
        item = next(i for i in load(contract) if i.get("name") == function)
        return canonical(item["outputs"][0])

    assert output_of("JobRepository", "get") == JOB
    assert output_of("ProviderManager", "getProvider") == PROVIDER
    claim = next(i for i in load("MetaScheduler") if i.get("name") == "ClaimJobEvent")
    assert canonical(claim["inputs"][4]) == JOB_DEFINITION


def test_enums_are_uint8_on_the_wire() -> None:
    def params(node: Any) -> list[dict[str, Any]]:
        found = []
        if isinstance(node, dict):
            if "internalType" in node:
                found.append(node)
            for value in node.values():
                found += params(value)
        elif isinstance(node, list):
            for value in node:
                found += params(value)
        return found

    enums = [p for name in [*GRID_CONTRACTS, "Tools"] for p in params(load(name))]
    enums = [p for p in enums if str(p["internalType"]).startswith("enum ")]
    assert enums, "expected JobStatus/StorageType parameters"
    assert all(p["type"] == "uint8" for p in enums)


def test_committed_abi_files_are_stable_text() -> None:
    for path in ABI_DIR.glob("*.json"):
        text = path.read_text()
        assert text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n", path.name
