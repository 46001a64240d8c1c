"""What a transaction pays and how much gas it may burn (pure: no I/O).

The grid's chains differ: DeepSquare's own chain is an Avalanche/SKALE-style EVM where the Go
supervisor sends legacy (type-0) transactions priced with ``eth_gasPrice`` under a fixed gas limit
of 20,000,000, while a London-or-later node takes EIP-1559 (type-2) transactions. Two settings
choose (``chain.fees`` and ``chain.gasLimit`` in the configuration):

**Fee mode** (:data:`FeeMode`):

- ``auto`` (default): EIP-1559 when the node's latest block carries ``baseFeePerGas``, legacy
  otherwise;
- ``legacy``: always a type-0 transaction at ``eth_gasPrice`` (a London node takes those too);
- ``eip1559``: always type 2; a node whose latest block has no base fee cannot take it, and
  :class:`FeeModeUnsupported` says so before anything is signed.

EIP-1559 fees: the tip is ``eth_maxPriorityFeePerGas`` (or ``gasPrice - baseFee`` on a node
without that method) and ``maxFeePerGas = 2 * baseFee + tip`` (room for the base fee to double).

**Replacement.** A transaction resent under the same nonce must outbid the one the node holds:
geth and its forks want 10% more on each price field, some others 12.5%. :func:`bump_fees` raises
each field by at least 12.5% (legacy: ``gasPrice``; EIP-1559: both the tip and the max fee) or to
what the node asks now, if that is more.

**Gas limit** (:func:`gas_limit_for`): by default the simulation's ``eth_estimateGas`` plus a
margin (:func:`gas_with_margin`); or a fixed number, as the Go supervisor sends. A fixed limit is
a ceiling: the transaction pays for the gas it burns, but it enters a block only while that much
gas is still free in it (so a 20 M limit waits once a 30 M block is a third full), the wallet
must hold ``limit * price`` to send it, and a node whose block gas limit is lower refuses it. A
call whose estimate exceeds the fixed limit would run out of gas: :class:`GasLimitTooLow` says
so before anything is signed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal, TypeAlias

import msgspec

from actors.chain.abi import quantity
from actors.chain.errors import ChainError, ChainValueError

__all__ = [
    "BUMP_DIVISOR",
    "FEE_MODES",
    "DynamicFees",
    "FeeMode",
    "FeeModeUnsupported",
    "Fees",
    "GasLimitTooLow",
    "LegacyFees",
    "bump_fee",
    "bump_fees",
    "fees_from_node",
    "gas_limit_for",
    "gas_with_margin",
]

FeeMode: TypeAlias = Literal["auto", "legacy", "eip1559"]
FEE_MODES: tuple[FeeMode, ...] = ("auto", "legacy", "eip1559")


class LegacyFees(msgspec.Struct, frozen=True):
    """A type-0 transaction's price: ``gasPrice`` in wei."""

    gas_price: int


class DynamicFees(msgspec.Struct, frozen=True):
    """An EIP-1559 (type-2) transaction's price in wei."""

    max_fee: int
    max_priority_fee: int


Fees: TypeAlias = LegacyFees | DynamicFees


class FeeModeUnsupported(ChainError):
    """The configured fee mode does not fit the node (nothing was signed or sent)."""


class GasLimitTooLow(ChainError):
    """The fixed gas limit is below what the call needs (nothing was signed or sent)."""

    def __init__(self, label: str, estimate: int, limit: int) -> None:
        super().__init__(
            f"{label or 'the transaction'} needs about {estimate} gas, more than the fixed "
            f"chain.gasLimit of {limit}: raise chain.gasLimit or set it to estimate"
        )
        self.estimate = estimate
        self.limit = limit


BUMP_DIVISOR = 8
"""A replacement raises each fee by at least 1/8 (12.5%); geth needs 10%, others 12.5%."""


def bump_fee(value: int) -> int:
    """``value`` raised by 12.5%, rounded up, and by at least 1 wei."""
    return value + max(1, -(-value // BUMP_DIVISOR))


def bump_fees(old: Fees, current: Fees | None = None) -> Fees:
    """The fees of a replacement for a transaction sent at ``old`` (of the same type as ``old``).

    Every price field rises by at least 12.5% over ``old``; if the node now asks more
    (``current``, the same kind) that is taken instead. For EIP-1559 the max fee always covers
    the tip.
    """
    if isinstance(old, LegacyFees):
        floor = current.gas_price if isinstance(current, LegacyFees) else 0
        return LegacyFees(gas_price=max(bump_fee(old.gas_price), floor))
    priority = bump_fee(old.max_priority_fee)
    max_fee = bump_fee(old.max_fee)
    if isinstance(current, DynamicFees):
        priority = max(priority, current.max_priority_fee)
        max_fee = max(max_fee, current.max_fee)
    return DynamicFees(max_fee=max(max_fee, priority), max_priority_fee=priority)


def fees_from_node(
    latest_block: Mapping[str, Any] | None,
    *,
    gas_price: int,
    priority_fee: int | None,
    mode: FeeMode = "auto",
) -> Fees:
    """Fees for a new transaction from what the node reports, in fee ``mode`` (module docstring).

    ``latest_block`` may be None in ``legacy`` mode (the block is not needed then).
    Raises FeeModeUnsupported for ``eip1559`` on a node without a base fee.
    """
    if mode == "legacy":
        return LegacyFees(gas_price=gas_price)
    if latest_block is not None and not isinstance(latest_block, Mapping):
        raise ChainValueError(f"eth_getBlockByNumber: expected a block, got {latest_block!r:.80}")
    base_hex = latest_block.get("baseFeePerGas") if latest_block is not None else None
    if base_hex is None:
        if mode == "eip1559":
            raise FeeModeUnsupported(
                "chain.fees is eip1559, but the node's latest block has no baseFeePerGas (a "
                "chain without EIP-1559, which refuses type-2 transactions): set chain.fees to "
                "legacy or auto"
            )
        return LegacyFees(gas_price=gas_price)
    base = quantity(base_hex, "the latest block's baseFeePerGas")
    tip = priority_fee if priority_fee is not None else max(gas_price - base, 0)
    return DynamicFees(max_fee=2 * base + tip, max_priority_fee=tip)


def gas_with_margin(estimate: int, *, margin: float = 0.25, extra: int = 10_000) -> int:
    """The gas limit for an estimate: ``estimate * (1 + margin) + extra`` (rounded up)."""
    return math.ceil(estimate * (1 + margin)) + extra


def gas_limit_for(estimate: int, *, fixed: int | None, margin: float, label: str = "") -> int:
    """The gas limit of a transaction whose simulation estimated ``estimate``: ``fixed`` when
    set (GasLimitTooLow if the estimate exceeds it), else the estimate with ``margin``."""
    if fixed is None:
        return gas_with_margin(estimate, margin=margin)
    if estimate > fixed:
        raise GasLimitTooLow(label, estimate, fixed)
    return fixed
