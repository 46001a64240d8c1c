"""The local EVM chain: anvil on 127.0.0.1:8545, HTTP and WebSocket JSON-RPC on the same port.

The direct binary is started (not the npm node wrapper), so the recorded pid is the chain's.
Default settings: automine (one block per transaction), chain id 31337, the ten accounts of the
default mnemonic pre-funded.  The chain starts empty at every ``up``.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import httpx

from testbed import layout as lay
from testbed.layout import Layout
from testbed.processes import ProcessRecord, start, wait_until

RPC_URL = f"http://{lay.HOST}:{lay.ANVIL_PORT}"
WS_URL = f"ws://{lay.HOST}:{lay.ANVIL_PORT}"


HISTORY_STATES = 256
"""Block states anvil keeps (in memory: ``--prune-history``). By default anvil keeps every block's
state and spills the older ones to ``~/.foundry/anvil/tmp``, never deleting them: a day of tests
here left 82 GB there, and mining slowed down as they piled up. Calls at recent blocks (the
supervisor replays a reverted transaction's block) keep working."""


def anvil_argv(
    binary: Path, *, host: str = lay.HOST, port: int = lay.ANVIL_PORT, silent: bool = False
) -> list[str]:
    """The command line of a testbed anvil (the testbed's own, or a test's private one)."""
    argv = [str(binary), "--host", host, "--port", str(port)]
    argv += ["--prune-history", str(HISTORY_STATES)]
    return [*argv, "--silent"] if silent else argv


class RpcError(Exception):
    """A JSON-RPC call failed (transport or error answer)."""


def start_anvil(layout: Layout, binary: Path) -> ProcessRecord:
    """Start anvil (without waiting for it)."""
    return start(
        "anvil",
        anvil_argv(binary),
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
def private_anvil(binary: Path, *, timeout: float = 10.0) -> Iterator[PrivateAnvil]:
    """A fresh, silent anvil of one's own on a free loopback port (tests that need a chain but
    not the testbed's), answering ``eth_chainId`` when the block is entered, stopped after it."""
    with socket.socket() as probe:
        probe.bind((lay.HOST, 0))
        port = int(probe.getsockname()[1])
    process = subprocess.Popen(
        anvil_argv(binary, port=port, silent=True),
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
