"""The one-file binary: its size and how long it takes to start.

``python -m bench binary [RUNS]`` measures ``dist/grid-supervisor`` (build it first with
``just build``):

- size on disk;
- ``--version``: the wall time of the whole process pair (the bootloader unpacks the bundle into
  ``$TMPDIR/_MEI…``, starts Python, imports ``cli.main``; then removes the folder);
- ``run`` to ``READY=1``: from exec to the systemd readiness datagram, with a configuration whose
  chain, sbatch service and login node do not answer (the tree comes up anyway; the adapters
  connect lazily), so it measures start-up alone.

Each figure is the minimum and the median of RUNS (default 5) runs.
"""

from __future__ import annotations

import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
BINARY = REPO / "dist" / "grid-supervisor"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _config(folder: Path) -> Path:
    wallet = folder / "wallet.key"
    wallet.write_text("0x" + "11" * 32)
    key = folder / "ssh_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    dead, callbacks = _free_port(), _free_port()
    config = {
        "wallet": {"privateKeyFile": str(wallet)},
        "chain": {
            "rpcEndpoint": f"http://127.0.0.1:{dead}",
            "metaschedulerAddress": "0x5FC8d32690cc91D4c39d9d3abcBD16989F875707",
        },
        "sbatch": {"endpoint": f"127.0.0.1:{dead}", "tls": {"enable": False}},
        "slurm": {
            "ssh": {
                "address": f"127.0.0.1:{dead}",
                "adminUser": "root",
                "privateKeyFile": str(key),
                "disableHostKeyCheck": True,
            },
            "partition": "grid",
        },
        "grpc": {
            "listenAddress": f"127.0.0.1:{callbacks}",
            "publicAddress": f"127.0.0.1:{callbacks}",
        },
        "state": {"folder": str(folder / "state")},
        "log": {"level": "warning"},
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _version_seconds() -> float:
    began = time.perf_counter()
    subprocess.run([BINARY, "--version"], check=True, capture_output=True)
    return time.perf_counter() - began


def _ready_seconds(config: Path, folder: Path) -> float:
    notify = folder / "notify.sock"
    notify.unlink(missing_ok=True)
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(notify))
        sock.settimeout(60)
        env = dict(os.environ, NOTIFY_SOCKET=str(notify))
        began = time.perf_counter()
        process = subprocess.Popen(
            [BINARY, "run", "--config", str(config)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            while b"READY=1" not in sock.recv(4096):
                pass
            ready = time.perf_counter() - began
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)
    return ready


def _figure(values: list[float]) -> str:
    return f"min {min(values):.2f} s, median {statistics.median(values):.2f} s"


def main(argv: Sequence[str]) -> int:
    runs = int(argv[0]) if argv else 5
    if not BINARY.exists():
        print(f"no {BINARY}: run `just build` first", file=sys.stderr)
        return 1
    print(f"binary: {BINARY.relative_to(REPO)}, {BINARY.stat().st_size / 1e6:.1f} MB")
    print(f"--version ({runs} runs): {_figure([_version_seconds() for _ in range(runs)])}")
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        config = _config(folder)
        ready = [_ready_seconds(config, folder) for _ in range(runs)]
    print(f"run until READY=1 ({runs} runs): {_figure(ready)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
