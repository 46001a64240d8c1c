"""The local EVM chain: anvil on 127.0.0.1:8545, HTTP and WebSocket JSON-RPC on the same port.

The direct binary is started (not the npm node wrapper), so the recorded pid is the chain's.
Default settings: automine (one block per transaction), chain id 31337, the ten accounts of the
default mnemonic pre-funded.  The chain starts empty at every ``up``.

A real chain's block time: ``GRID_TESTBED_BLOCK_TIME=2 python -m testbed up`` starts anvil with
``--block-time 2`` (a block every 2 s, transactions wait for it); on a testbed already up it
switches the running anvil (:func:`set_block_time`: anvil's ``evm_setIntervalMining`` /
``evm_setAutomine``, no restart), and a plain ``testbed up`` switches it back to automine.
``bench lifecycle --block-time 2`` switches for its run and back after; :func:`block_time` says
which mode anvil is in.
A private anvil (:func:`private_anvil`) can also take a ``hardfork``: ``"berlin"`` is a chain
without EIP-1559 (no base fee, type-2 transactions refused), like the grid's legacy-priced ones;
contracts for it are compiled with ``evm_version="berlin"``
(:func:`testbed.contracts.compile_contracts`).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import httpx

from testbed import layout as lay
from testbed.layout import Layout
from testbed.processes import ProcessRecord, TestbedError, start, wait_until

RPC_URL = f"http://{lay.HOST}:{lay.ANVIL_PORT}"
WS_URL = f"ws://{lay.HOST}:{lay.ANVIL_PORT}"


HISTORY_STATES = 256
"""Block states anvil keeps (in memory: ``--prune-history``). By default anvil keeps every block's
state and spills the older ones to ``~/.foundry/anvil/tmp``, never deleting them: a day of tests
here left 82 GB there, and mining slowed down as they piled up. Calls at recent blocks (the
supervisor replays a reverted transaction's block) keep working."""


BLOCK_TIME_ENV = "GRID_TESTBED_BLOCK_TIME"
"""Seconds between blocks for the testbed's anvil (unset or empty: automine, a block per
transaction)."""


def anvil_argv(
    binary: Path,
    *,
    host: str = lay.HOST,
    port: int = lay.ANVIL_PORT,
    silent: bool = False,
    block_time: float | None = None,
    hardfork: str | None = None,
) -> list[str]:
    """The command line of a testbed anvil (the testbed's own, or a test's private one).
    ``block_time``: seconds between blocks (None: automine); ``hardfork``: anvil's EVM rules
    (None: its latest)."""
    argv = [str(binary), "--host", host, "--port", str(port)]
    argv += ["--prune-history", str(HISTORY_STATES)]
    if block_time is not None:
        argv += ["--block-time", f"{block_time:g}"]
    if hardfork is not None:
        argv += ["--hardfork", hardfork]
    return [*argv, "--silent"] if silent else argv


def block_time_from_env(environ: Mapping[str, str] | None = None) -> int | None:
    """The block time :data:`BLOCK_TIME_ENV` asks for (None: automine). Raises TestbedError
    for anything but a whole number of seconds from 1 (what a running anvil can switch to)."""
    raw = (os.environ if environ is None else environ).get(BLOCK_TIME_ENV, "").strip()
    if not raw:
        return None
    if not raw.isdigit() or int(raw) < 1:
        raise TestbedError(f"{BLOCK_TIME_ENV}={raw!r}: expected a whole number of seconds from 1")
    return int(raw)


class RpcError(Exception):
    """A JSON-RPC call failed (transport or error answer)."""


def start_anvil(layout: Layout, binary: Path) -> ProcessRecord:
    """Start anvil (without waiting for it), at the block time of :data:`BLOCK_TIME_ENV`."""
    return start(
        "anvil",
        anvil_argv(binary, block_time=block_time_from_env()),
        pids_dir=layout.pids,
        log=layout.log_file("anvil"),
    )


def rpc(method: str, *params: Any, url: str = RPC_URL, timeout: float = 5.0) -> Any:
    """One JSON-RPC call over HTTP; returns ``result``."""
    try:
        reply = httpx.post(
            url,
            json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)},
            timeout=timeout,
        ).json()
    except (httpx.HTTPError, ValueError) as exc:
        raise RpcError(f"{method}: {exc}") from exc
    if "error" in reply:
        raise RpcError(f"{method}: {reply['error']}")
    return reply["result"]


def chain_id(url: str = RPC_URL) -> int:
    return int(rpc("eth_chainId", url=url), 16)


def block_time(url: str = RPC_URL) -> float | None:
    """Seconds between the running anvil's blocks, or None while it automines."""
    if rpc("anvil_getAutomine", url=url):
        return None
    seconds = rpc("anvil_getIntervalMining", url=url)
    return float(seconds) if seconds else None


def set_block_time(seconds: float | None, url: str = RPC_URL) -> None:
    """Mine a block every ``seconds`` from now on (anvil takes whole seconds), or on every
    transaction again (None)."""
    if seconds is None:
        rpc("evm_setAutomine", True, url=url)
        return
    if seconds != int(seconds) or seconds < 1:
        raise ValueError(f"anvil's interval mining takes whole seconds from 1, not {seconds:g}")
    rpc("evm_setIntervalMining", int(seconds), url=url)


def answering(url: str = RPC_URL) -> bool:
    try:
        chain_id(url)
    except RpcError:
        return False
    return True


def wait_ready(layout: Layout, record: ProcessRecord, *, timeout: float) -> None:
    wait_until(
        answering,
        part="anvil",
        log=layout.log_file("anvil"),
        timeout=timeout,
        what=f"eth_chainId answer on {RPC_URL}",
        record=record,
    )


class PrivateAnvil(NamedTuple):
    url: str
    port: int


@contextlib.contextmanager
def private_anvil(
    binary: Path,
    *,
    timeout: float = 10.0,
    hardfork: str | None = None,
    block_time: float | None = None,
) -> Iterator[PrivateAnvil]:
    """A fresh, silent anvil of one's own on a free loopback port (tests that need a chain but
    not the testbed's), answering ``eth_chainId`` when the block is entered, stopped after it.
    ``hardfork`` and ``block_time``: see :func:`anvil_argv`."""
    with socket.socket() as probe:
        probe.bind((lay.HOST, 0))
        port = int(probe.getsockname()[1])
    process = subprocess.Popen(
        anvil_argv(binary, port=port, silent=True, hardfork=hardfork, block_time=block_time),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://{lay.HOST}:{port}"
    try:
        deadline = time.monotonic() + timeout
        while not answering(url):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RpcError(f"a private anvil on port {port} did not answer in {timeout:g} s")
            time.sleep(0.05)
        yield PrivateAnvil(url, port)
    finally:
        process.terminate()
        process.wait(timeout=10)
