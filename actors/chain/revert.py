"""Why the chain said no: revert data decoded to a named :class:`ContractError`. Pure.

The chain adapter has one small, flat exception hierarchy rooted at :class:`ChainError`; the
transport leaves live in :mod:`actors.chain.rpc`, the contract's refusal lives here:

- :class:`ContractError` ``(name, args)``: a call or transaction reverted with the custom error
  ``name`` (every error of the grid's ABIs, wire-interfaces 1.10), ``Error`` (a ``require`` message)
  or ``Panic`` (a Solidity panic code; :attr:`ContractError.panic_reason` explains it). ``name`` is
  ``""`` for a revert without data and ``"?"`` for an unknown selector. ``tx_hash`` is set when a
  *mined* transaction reverted (its nonce is spent); it is empty when a simulation caught it (then
  nothing was sent).

:func:`decode_revert` turns raw revert data into a ContractError; :func:`revert_data` digs the data
out of a JSON-RPC error object, whose shape varies by node.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeAlias

from eth_abi.abi import decode as abi_decode
from eth_utils.crypto import keccak

from actors.chain.abi import Item, canonical_type, grid_abi, signature
from actors.chain.errors import ChainError

__all__ = [
    "BUILTIN_ERRORS",
    "PANIC_REASONS",
    "ChainError",
    "ContractError",
    "ErrorArg",
    "decode_revert",
    "error_selectors",
    "revert_data",
]

ErrorArg: TypeAlias = int | str | bool
"""A decoded error argument as plain data: numbers, lowercase addresses, hex for bytes."""

BUILTIN_ERRORS: tuple[Item, ...] = (
    {"type": "error", "name": "Error", "inputs": [{"name": "message", "type": "string"}]},
    {"type": "error", "name": "Panic", "inputs": [{"name": "code", "type": "uint256"}]},
)

PANIC_REASONS: Mapping[int, str] = {
    0x00: "generic compiler panic",
    0x01: "assertion failed",
    0x11: "arithmetic overflow or underflow",
    0x12: "division or modulo by zero",
    0x21: "conversion to an invalid enum value",
    0x22: "incorrectly encoded storage byte array",
    0x31: "pop on an empty array",
    0x32: "array index out of bounds",
    0x41: "too much memory allocated",
    0x51: "call to an uninitialised internal function",
}
"""Solidity's panic codes (``Panic(uint256)``)."""


class ContractError(ChainError):
    """The contract refused: it reverted with error ``name`` and decoded arguments ``args``."""

    def __init__(
        self, name: str, args: tuple[ErrorArg, ...] = (), *, data: bytes = b"", tx_hash: str = ""
    ) -> None:
        super().__init__(name, args)
        self.name = name
        self.error_args = args
        self.data = data
        self.tx_hash = tx_hash

    @property
    def panic_reason(self) -> str | None:
        """What a ``Panic`` means, or None for any other error."""
        if self.name != "Panic" or not self.error_args:
            return None
        code = int(self.error_args[0])
        return PANIC_REASONS.get(code, f"unknown panic code {code:#x}")

    def __str__(self) -> str:
        if not self.name:
            text = "reverted without data"
        elif self.name == "?":
            text = f"reverted with an unknown error {self.data[:4].hex()}"
        else:
            text = f"{self.name}{self.error_args!r}"
        if self.tx_hash:
            text += f" (mined in {self.tx_hash})"
        return text


def _error_book() -> dict[bytes, Item]:
    book = dict(grid_abi().errors)
    for item in BUILTIN_ERRORS:
        book.setdefault(keccak(text=signature(item))[:4], item)
    return book


_BOOK: dict[bytes, Item] | None = None


def error_selectors() -> dict[bytes, Item]:
    """Selector -> error ABI item: every error of the grid's ABIs plus Error and Panic."""
    global _BOOK
    if _BOOK is None:
        _BOOK = _error_book()
    return _BOOK


def _plain(kind: str, value: Any) -> Any:
    """An eth_abi value as plain data: lowercase addresses, hex bytes, tuples kept."""
    if kind.endswith("]"):
        inner = kind[: kind.rindex("[")]
        return tuple(_plain(inner, v) for v in value)
    if kind == "address":
        return str(value).lower()
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return value


def decode_revert(data: bytes, *, tx_hash: str = "") -> ContractError:
    """The :class:`ContractError` for raw revert data (never raises)."""
    if not data:
        return ContractError("", (), data=data, tx_hash=tx_hash)
    item = error_selectors().get(data[:4])
    if item is None:
        return ContractError("?", ("0x" + data.hex(),), data=data, tx_hash=tx_hash)
    types = [canonical_type(p) for p in item.get("inputs", [])]
    try:
        values = abi_decode(types, data[4:])
    except Exception:  # malformed data under a known selector: keep the raw bytes
        return ContractError(str(item["name"]), ("0x" + data.hex(),), data=data, tx_hash=tx_hash)
    args = tuple(_plain(t, v) for t, v in zip(types, values, strict=True))
    return ContractError(str(item["name"]), args, data=data, tx_hash=tx_hash)


def _hex(value: object) -> bytes | None:
    if isinstance(value, str) and value.startswith("0x"):
        try:
            return bytes.fromhex(value[2:])
        except ValueError:
            return None
    return None


def revert_data(error: Mapping[str, Any]) -> bytes | None:
    """The revert data inside a JSON-RPC error object, or None if it is not a revert.

    Nodes disagree on the shape: anvil and geth put ``0x...`` in ``error.data``; some nest it in
    ``error.data.data`` or ``error.data.result``. A revert without data (``execution reverted``
    and no data) gives ``b""``.
    """
    data = error.get("data")
    found = _hex(data)
    if found is None and isinstance(data, Mapping):
        found = _hex(data.get("data")) or _hex(data.get("result"))
    if found is not None:
        return found
    message = str(error.get("message", "")).lower()
    if "revert" in message:
        return b""
    return None
