"""A small synchronous EVM client for testbed tooling (the supervisor has its own, in actors/).

- ``Chain``: JSON-RPC over HTTP (httpx). ``send`` signs an EIP-1559 transaction with a ``Wallet``
  (nonce from the node, gas estimated, fees from the latest base fee; a legacy ``gasPrice`` one on
  a chain without a base fee) and waits for its receipt; ``call`` runs ``eth_call``.
- ``Contract``: a deployed contract seen through its ABI: ``call(fn, *args)`` decodes the outputs
  with eth_abi, ``transact(wallet, fn, *args)`` returns the receipt, ``events(receipt, name)``
  decodes that event's logs.
- Reverts are decoded against every error of every ABI the chain has seen (plus the built-in
  ``Error(string)`` and ``Panic(uint256)``) and raised as ``ContractRevert(name, args)``. Estimating
  gas simulates the transaction, so a reverting transaction is reported before it is sent.

Exceptions: ``EvmError`` and its subclasses only; httpx and eth_* errors are mapped at the boundary.
Private keys stay inside ``Wallet`` and never appear in a repr or an error message.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from types import TracebackType
from typing import Any

import httpx
from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_account import Account
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

Abi = list[dict[str, Any]]
Receipt = dict[str, Any]

RECEIPT_POLL_S = 0.05
RECEIPT_TIMEOUT_S = 30.0
BUILTIN_ERRORS: Abi = [
    {"type": "error", "name": "Error", "inputs": [{"name": "message", "type": "string"}]},
    {"type": "error", "name": "Panic", "inputs": [{"name": "code", "type": "uint256"}]},
]


class EvmError(Exception):
    """Anything that went wrong talking to the chain."""


class RpcError(EvmError):
    """The node answered a JSON-RPC error (or could not be reached: code -1)."""

    def __init__(self, method: str, code: int, message: str) -> None:
        super().__init__(f"{method}: [{code}] {message}")
        self.method = method
        self.code = code
        self.message = message


class ContractRevert(EvmError):
    """A call or transaction reverted with custom error ``name`` and decoded ``error_args``.

    ``name`` is ``Error``/``Panic`` for the built-ins, ``""`` for an empty revert and ``"?"`` for
    an unknown selector (then ``error_args`` holds the raw data as hex). ``exc.args`` is
    ``(name, error_args)``; ``data`` is the raw revert data.
    """

    def __init__(self, name: str, error_args: tuple[Any, ...], data: bytes = b"") -> None:
        super().__init__(name, error_args)
        self.name = name
        self.error_args = error_args
        self.data = data

    def __str__(self) -> str:
        if not self.name:
            return "reverted without data"
        return f"{self.name}{self.error_args!r}"


class TransactionFailed(EvmError):
    """A mined transaction has status 0 (and no revert reason could be recovered)."""


# ------------------------------------------------------------------------------------ ABI texts


def canonical_type(param: dict[str, Any]) -> str:
    """The canonical ABI type of a parameter: tuples are spelled out, ``(a,b)[]``."""
    kind = str(param["type"])
    if kind.startswith("tuple"):
        inner = ",".join(canonical_type(c) for c in param["components"])
        return f"({inner}){kind[len('tuple') :]}"
    return kind


def signature(item: dict[str, Any]) -> str:
    """``name(type,...)`` of a function, event or error ABI item."""
    return f"{item['name']}({','.join(canonical_type(p) for p in item.get('inputs', []))})"


def selector(item: dict[str, Any]) -> bytes:
    """The 4-byte selector of a function or error (the first 4 bytes of the topic of an event)."""
    return keccak(text=signature(item))[:4]


def topic0(item: dict[str, Any]) -> bytes:
    return keccak(text=signature(item))


def role_id(name: str) -> bytes:
    """An AccessControl role id: keccak256 of its name."""
    return keccak(text=name)


def _types(params: Sequence[dict[str, Any]]) -> list[str]:
    return [canonical_type(p) for p in params]


def encode_values(params: Sequence[dict[str, Any]], values: Sequence[Any]) -> bytes:
    try:
        return bytes(abi_encode(_types(params), list(values)))
    except Exception as exc:  # eth_abi's encoding errors, mapped at this boundary
        raise EvmError(f"cannot encode {values!r} as {_types(params)}: {exc}") from exc


def decode_values(params: Sequence[dict[str, Any]], data: bytes) -> tuple[Any, ...]:
    """ABI-decode ``data`` as ``params``; addresses come back checksummed, at any depth."""
    try:
        values = abi_decode(_types(params), data)
    except Exception as exc:  # eth_abi's decoding errors, mapped at this boundary
        raise EvmError(f"cannot decode 0x{data.hex()} as {_types(params)}: {exc}") from exc
    return tuple(_checksummed(p, v) for p, v in zip(params, values, strict=True))


def _checksummed(param: dict[str, Any], value: Any) -> Any:
    kind = str(param["type"])
    if kind.endswith("]"):
        element = {**param, "type": kind[: kind.rindex("[")]}
        return tuple(_checksummed(element, v) for v in value)
    if kind == "address":
        return to_checksum_address(value)
    if kind == "tuple":
        return tuple(_checksummed(c, v) for c, v in zip(param["components"], value, strict=True))
    return value


class ErrorBook:
    """Selector -> error ABI item, gathered from every ABI the client has seen."""

    def __init__(self) -> None:
        self._errors: dict[bytes, dict[str, Any]] = {}
        self.learn(BUILTIN_ERRORS)

    def learn(self, abi: Iterable[dict[str, Any]]) -> None:
        for item in abi:
            if item.get("type") == "error":
                self._errors.setdefault(selector(item), item)

    def decode(self, data: bytes) -> ContractRevert:
        if not data:
            return ContractRevert("", (), data)
        item = self._errors.get(data[:4])
        if item is None:
            return ContractRevert("?", ("0x" + data.hex(),), data)
        try:
            args = decode_values(item["inputs"], data[4:])
        except EvmError:  # malformed revert data: keep the raw bytes
            return ContractRevert(str(item["name"]), ("0x" + data.hex(),), data)
        return ContractRevert(str(item["name"]), args, data)


# ---------------------------------------------------------------------------------------- wallet


class Wallet:
    """A private key that signs transactions; only its address is ever shown."""

    def __init__(self, private_key: str) -> None:
        try:
            self._account = Account.from_key(private_key)
        except Exception as exc:
            raise EvmError("invalid private key") from exc
        self.address: str = to_checksum_address(self._account.address)

    def __repr__(self) -> str:
        return f"Wallet({self.address})"

    def sign(self, transaction: dict[str, Any]) -> bytes:
        signed = self._account.sign_transaction(transaction)
        return bytes(signed.raw_transaction)


# ----------------------------------------------------------------------------------------- chain


class Chain:
    """A JSON-RPC connection to one node. Use as a context manager (or call ``close``)."""

    def __init__(self, rpc_url: str, *, timeout_s: float = 10.0) -> None:
        self.rpc_url = rpc_url
        self.errors = ErrorBook()
        # Building a TLS context costs ~35 ms: only do it for https endpoints.
        self._http = httpx.Client(timeout=timeout_s, verify=rpc_url.startswith("https:"))
        self._next_id = 0
        self._chain_id: int | None = None

    def __enter__(self) -> Chain:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def request(self, method: str, params: Sequence[Any] = ()) -> Any:
        """One JSON-RPC call; a revert in the answer raises ``ContractRevert``."""
        self._next_id += 1
        body = {"jsonrpc": "2.0", "id": self._next_id, "method": method, "params": list(params)}
        try:
            response = self._http.post(self.rpc_url, json=body)
            response.raise_for_status()
            answer = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise RpcError(method, -1, f"{type(exc).__name__}: {exc}") from exc
        if not isinstance(answer, dict):
            raise RpcError(method, -1, f"not a JSON-RPC answer: {answer!r:.200}")
        error = answer.get("error")
        if error is None:
            return answer.get("result")
        data = error.get("data")
        if isinstance(data, str) and data.startswith("0x"):
            raise self.errors.decode(bytes.fromhex(data[2:]))
        if "revert" in str(error.get("message", "")):
            raise self.errors.decode(b"")
        raise RpcError(method, int(error.get("code", 0)), str(error.get("message", "")))

    @property
    def chain_id(self) -> int:
        if self._chain_id is None:
            self._chain_id = int(self.request("eth_chainId"), 16)
        return self._chain_id

    def block_number(self) -> int:
        return int(self.request("eth_blockNumber"), 16)

    def balance(self, address: str) -> int:
        return int(self.request("eth_getBalance", [address, "latest"]), 16)

    def call(self, to: str, data: bytes, *, sender: str | None = None) -> bytes:
        """``eth_call`` at the latest block; returns the raw output."""
        params: dict[str, Any] = {"to": to, "data": "0x" + data.hex()}
        if sender is not None:
            params["from"] = sender
        result = self.request("eth_call", [params, "latest"])
        return bytes.fromhex(str(result)[2:])

    def send(
        self,
        wallet: Wallet,
        to: str | None,
        data: bytes,
        *,
        value: int = 0,
        sending: Callable[[], None] | None = None,
    ) -> Receipt:
        """Sign and send an EIP-1559 transaction (legacy on a chain without a base fee), wait for
        its receipt, return it (status 1).
        ``sending`` is called right before the signed transaction leaves (benchmarks time it)."""
        simulated: dict[str, Any] = {"from": wallet.address, "data": "0x" + data.hex()}
        if to is not None:
            simulated["to"] = to
        if value:
            simulated["value"] = hex(value)
        gas = int(self.request("eth_estimateGas", [simulated]), 16)
        nonce = int(self.request("eth_getTransactionCount", [wallet.address, "pending"]), 16)
        latest = self.request("eth_getBlockByNumber", ["latest", False])
        transaction: dict[str, Any] = {
            "chainId": self.chain_id,
            "nonce": nonce,
            "gas": gas * 13 // 10 + 21_000,
            "data": data,
            "value": value,
        }
        if latest.get("baseFeePerGas") is None:  # a chain without EIP-1559: legacy gasPrice
            transaction["gasPrice"] = int(self.request("eth_gasPrice"), 16)
        else:
            tip = int(self.request("eth_maxPriorityFeePerGas"), 16)
            transaction["type"] = 2
            transaction["maxFeePerGas"] = 2 * int(latest["baseFeePerGas"], 16) + tip
            transaction["maxPriorityFeePerGas"] = tip
        if to is not None:
            transaction["to"] = to
        try:
            raw = wallet.sign(transaction)
        except Exception as exc:
            raise EvmError(f"could not sign a transaction from {wallet.address}") from exc
        if sending is not None:
            sending()
        tx_hash = str(self.request("eth_sendRawTransaction", ["0x" + raw.hex()]))
        receipt = self.wait_for_receipt(tx_hash)
        if int(receipt["status"], 16) != 1:
            raise TransactionFailed(f"transaction {tx_hash} failed (status 0)")
        return receipt

    def wait_for_receipt(self, tx_hash: str, *, timeout_s: float = RECEIPT_TIMEOUT_S) -> Receipt:
        deadline = time.monotonic() + timeout_s
        while True:
            receipt = self.request("eth_getTransactionReceipt", [tx_hash])
            if receipt is not None:
                return dict(receipt)
            if time.monotonic() > deadline:
                raise EvmError(f"no receipt for {tx_hash} after {timeout_s} s")
            time.sleep(RECEIPT_POLL_S)

    def deploy(self, wallet: Wallet, abi: Abi, bytecode: str, *args: Any) -> str:
        """Deploy a contract; returns its checksummed address."""
        self.errors.learn(abi)
        constructor: dict[str, Any] = next(
            (i for i in abi if i.get("type") == "constructor"), {"inputs": []}
        )
        data = bytes.fromhex(bytecode.removeprefix("0x"))
        data += encode_values(constructor["inputs"], args)
        receipt = self.send(wallet, None, data)
        return to_checksum_address(receipt["contractAddress"])

    def contract(self, address: str, abi: Abi) -> Contract:
        return Contract(self, address, abi)


class Contract:
    """A deployed contract and its ABI (function names must be unique: no overloads)."""

    def __init__(self, chain: Chain, address: str, abi: Abi) -> None:
        self.chain = chain
        self.address = to_checksum_address(address)
        self.abi = abi
        chain.errors.learn(abi)
        self._functions = {str(i["name"]): i for i in abi if i.get("type") == "function"}
        self._events = {str(i["name"]): i for i in abi if i.get("type") == "event"}

    def __repr__(self) -> str:
        return f"Contract({self.address})"

    def encode(self, function: str, *args: Any) -> bytes:
        item = self._function(function)
        return selector(item) + encode_values(item["inputs"], args)

    def call(self, function: str, *args: Any, sender: str | None = None) -> Any:
        """Run a function with ``eth_call``; one output is returned bare, several as a tuple."""
        item = self._function(function)
        raw = self.chain.call(self.address, self.encode(function, *args), sender=sender)
        values = decode_values(item["outputs"], raw)
        return values[0] if len(values) == 1 else tuple(values)

    def transact(
        self, wallet: Wallet, function: str, *args: Any, sending: Callable[[], None] | None = None
    ) -> Receipt:
        return self.chain.send(wallet, self.address, self.encode(function, *args), sending=sending)

    def events(self, receipt: Receipt, name: str) -> list[dict[str, Any]]:
        """The ``name`` events this contract emitted in ``receipt``, as parameter-name dicts."""
        item = self._events.get(name)
        if item is None:
            raise EvmError(f"{self.address} has no event {name}")
        topic = "0x" + topic0(item).hex()
        found = []
        for log in receipt.get("logs", []):
            if to_checksum_address(log["address"]) != self.address or not log["topics"]:
                continue
            if str(log["topics"][0]).lower() != topic:
                continue
            found.append(decode_log(item, log))
        return found

    def _function(self, name: str) -> dict[str, Any]:
        item = self._functions.get(name)
        if item is None:
            raise EvmError(f"{self.address} has no function {name}")
        return item


def decode_log(event: dict[str, Any], log: dict[str, Any]) -> dict[str, Any]:
    """Decode one log of ``event``: indexed parameters from the topics, the rest from the data."""
    inputs = event["inputs"]
    plain = [p for p in inputs if not p.get("indexed")]
    values = iter(decode_values(plain, bytes.fromhex(str(log["data"])[2:])))
    topics = iter(log["topics"][1:])
    decoded: dict[str, Any] = {}
    for param in inputs:
        if param.get("indexed"):
            raw = bytes.fromhex(str(next(topics))[2:])
            decoded[param["name"]] = decode_values([param], raw)[0]
        else:
            decoded[param["name"]] = next(values)
    return decoded
