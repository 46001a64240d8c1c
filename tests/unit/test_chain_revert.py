"""Revert data decoded to named ContractErrors: every error of wire-interfaces 1.10."""

from __future__ import annotations

from typing import Any

import pytest
from eth_abi.abi import encode

from actors.chain.revert import (
    ContractError,
    decode_revert,
    error_selectors,
    revert_data,
)

CUSTOMER = "0x" + "ab" * 20
PROVIDER = "0x" + "cd" * 20

# selector (from wire-interfaces.md 1.10), name, argument types, arguments, decoded arguments
ERRORS: list[tuple[str, str, list[str], list[Any], tuple[Any, ...]]] = [
    ("03eb8b54", "InsufficientFunds", ["uint256", "uint256"], [5, 10**20], (5, 10**20)),
    ("d208e590", "InvalidJobDefinition", [], [], ()),
    ("8c6824c2", "JobHotStatusOnly", ["uint8"], [5], (5,)),
    ("2fef82f8", "InvalidTransition", ["uint8", "uint8"], [2, 5], (2, 5)),
    ("2a856fc9", "SameStatusError", [], [], ()),
    ("ed3e2aad", "RunningScheduledStatusOnly", ["uint8"], [1], (1,)),
    ("090713fe", "MetaScheduledScheduledStatusOnly", ["uint8"], [3], (3,)),
    ("14475eb7", "RunningColdStatusOnly", ["uint8"], [0], (0,)),
    (
        "89423319",
        "CustomerOnly",
        ["address", "address"],
        [PROVIDER, CUSTOMER],
        (PROVIDER, CUSTOMER),
    ),
    (
        "32e3065c",
        "JobProviderOnly",
        ["address", "address"],
        [CUSTOMER, PROVIDER],
        (CUSTOMER, PROVIDER),
    ),
    ("7897ef6d", "CustomerMetaSchedulerProviderOnly", [], [], ()),
    ("ef341f6d", "ProviderNotJoined", [], [], ()),
    ("9003b68a", "RemainingTimeAboveLimit", ["uint256", "uint256"], [90, 60], (90, 60)),
    ("42f99019", "NoSpendingAuthority", [], [], ()),
    ("3abe75b3", "NewJobRequestDisabled", [], [], ()),
    ("71c8f460", "InvalidJob", [], [], ()),
    ("97736927", "NoJob", [], [], ()),
    ("e01ba5fa", "InvalidNodesCount", [], [], ()),
    ("a24a13a6", "ArrayLengthMismatch", [], [], ()),
    ("785f1be0", "InvalidTotalMem", [], [], ()),
    ("5b23e576", "InvalidTotalCpus", [], [], ()),
    ("3a43ca41", "NoProvider", [], [], ()),
    ("2a9126eb", "WaitingApprovalOnly", [], [], ()),
    ("7064572b", "Banned", [], [], ()),
    ("bdb90210", "AlreadyDone", [], [], ()),
    ("3db2a12a", "Empty", [], [], ()),
    ("b4120f14", "OutOfBounds", [], [], ()),
    ("08c379a0", "Error", ["string"], ["not allowed"], ("not allowed",)),
    ("4e487b71", "Panic", ["uint256"], [0x11], (0x11,)),
]


@pytest.mark.parametrize(("selector", "name", "types", "args", "decoded"), ERRORS)
def test_every_error_decodes_by_name(
    selector: str, name: str, types: list[str], args: list[Any], decoded: tuple[Any, ...]
) -> None:
    data = bytes.fromhex(selector) + encode(types, args)
    assert error_selectors()[bytes.fromhex(selector)]["name"] == name  # our ABIs know it
    error = decode_revert(data)
    assert isinstance(error, ContractError)
    assert (error.name, error.error_args) == (name, decoded)
    assert error.data == data and error.tx_hash == ""


def test_panic_codes_are_explained() -> None:
    assert decode_revert(bytes.fromhex("4e487b71") + encode(["uint256"], [0x12])).panic_reason == (
        "division or modulo by zero"
    )
    assert decode_revert(bytes.fromhex("4e487b71") + encode(["uint256"], [0x99])).panic_reason == (
        "unknown panic code 0x99"
    )
    assert decode_revert(bytes.fromhex("97736927")).panic_reason is None


def test_unknown_empty_and_malformed_reverts_keep_the_raw_data() -> None:
    unknown = decode_revert(bytes.fromhex("deadbeef") + b"\x01" * 32, tx_hash="0xabc")
    assert unknown.name == "?" and unknown.error_args == ("0xdeadbeef" + "01" * 32,)
    assert unknown.tx_hash == "0xabc" and "mined in 0xabc" in str(unknown)
    empty = decode_revert(b"")
    assert empty.name == "" and str(empty) == "reverted without data"
    short = decode_revert(bytes.fromhex("2fef82f8") + b"\x00" * 5)  # truncated arguments
    assert short.name == "InvalidTransition" and short.error_args == ("0x2fef82f8" + "00" * 5,)
    assert str(decode_revert(bytes.fromhex("2fef82f8") + encode(["uint8", "uint8"], [2, 5]))) == (
        "InvalidTransition(2, 5)"
    )


def test_revert_data_is_found_in_every_shape_nodes_use() -> None:
    data = "0x97736927"
    assert revert_data({"code": 3, "message": "execution reverted", "data": data}) == bytes.fromhex(
        "97736927"
    )
    assert revert_data({"code": -32000, "message": "x", "data": {"data": data}}) == bytes.fromhex(
        "97736927"
    )
    assert revert_data({"code": -32015, "message": "VM", "data": {"result": data}}) == (
        bytes.fromhex("97736927")
    )
    assert revert_data({"code": -32000, "message": "execution reverted"}) == b""
    assert revert_data({"code": -32000, "message": "nonce too low"}) is None
    assert revert_data({"code": -32602, "message": "invalid params", "data": "not hex"}) is None
