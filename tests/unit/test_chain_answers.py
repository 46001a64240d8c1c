"""Whatever a node answers outside the ABI (receipts, fee facts, JSON-RPC errors), the chain
adapter raises its own errors and nothing else (issue 11)."""

from __future__ import annotations

from typing import Any

import pytest

from actors.chain.errors import ChainValueError
from actors.chain.fees import fees_from_node
from actors.chain.rpc import RpcError, _answer
from actors.chain.transactions import _receipt

RECEIPT: dict[str, Any] = {
    "transactionHash": "0x" + "22" * 32,
    "blockNumber": "0x10",
    "status": "0x1",
    "gasUsed": "0x5208",
    "logs": [{"address": "0x" + "11" * 20, "topics": [], "data": "0x"}],
}


def test_a_receipt_decodes() -> None:
    receipt = _receipt(RECEIPT, 7)
    assert (receipt.block_number, receipt.status, receipt.gas_used, receipt.nonce) == (
        16,
        True,
        21000,
        7,
    )
    assert receipt.logs == tuple(RECEIPT["logs"])
    assert _receipt({**RECEIPT, "status": "0x0", "logs": None}, 7).logs == ()


@pytest.mark.parametrize(
    "changes",
    [
        {"blockNumber": None},  # a KeyError / ValueError before
        {"blockNumber": 16},
        {"gasUsed": "lots"},
        {"status": ["0x1"]},
        {"transactionHash": 5},
        {"logs": {"0": {}}},  # a mapping: dict() of its keys raised before
        {"logs": ["not a log"]},
    ],
)
def test_a_receipt_that_does_not_decode_is_the_chain_adapters_error(
    changes: dict[str, Any],
) -> None:
    with pytest.raises(ChainValueError, match="receipt"):
        _receipt({**RECEIPT, **changes}, 7)


@pytest.mark.parametrize("block", [{"baseFeePerGas": "high"}, {"baseFeePerGas": 7}, ["0x1"], 3])
def test_fee_facts_that_do_not_decode_are_the_chain_adapters_error(block: Any) -> None:
    with pytest.raises(ChainValueError):
        fees_from_node(block, gas_price=10, priority_fee=None, mode="auto")


@pytest.mark.parametrize("code", ["x", None, [1], 1e400, True, "-32000"])
def test_a_json_rpc_error_with_an_odd_code_is_still_an_rpc_error(code: object) -> None:
    with pytest.raises(RpcError) as caught:
        _answer("eth_call", {"error": {"code": code, "message": "boom"}})
    assert (caught.value.code, caught.value.message) == (-32603, "boom")
