"""The built one-file binary on its own (no testbed): version, config check, systemd protocol.

Every test runs ``dist/grid-supervisor`` (built once, see ``binary.py``), never the sources. The
systemd tests bind a real ``NOTIFY_SOCKET`` datagram socket and pass ``WATCHDOG_USEC`` and
``WATCHDOG_PID`` exactly as systemd does for a ``Type=notify`` unit whose main PID is the process
it started: for a PyInstaller one-file binary that is the bootloader, while the notifications come
from its Python child (deploy/grid-supervisor.service: ``NotifyAccess=all``, ``KillMode=mixed``).
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.binary import REPO, built_binary


@pytest.fixture(scope="module")
def binary() -> Path:
    return built_binary()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def key_files(folder: Path) -> dict[str, Path]:
    """A real wallet key, SSH key and known-hosts file, as an operator would have them."""
    folder.mkdir(parents=True, exist_ok=True)
    wallet = folder / "wallet.key"
    wallet.write_text("0x" + os.urandom(32).hex() + "\n")
    wallet.chmod(0o600)
    ssh_key = folder / "ssh_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(ssh_key)], check=True)
    host_key = folder / "host_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key)], check=True)
    known_hosts = folder / "known_hosts"
    known_hosts.write_text("[127.0.0.1]:22 " + Path(f"{host_key}.pub").read_text())
    return {"wallet": wallet, "ssh_key": ssh_key, "known_hosts": known_hosts}


def offline_config(folder: Path, callback_port: int) -> Path:
    """A complete configuration whose chain, sbatch service and login node do not answer: the
    tree still comes up (the adapters connect lazily and retry), which is all these tests need."""
    keys = key_files(folder / "keys")
    dead = free_port()
    config = {
        "wallet": {"privateKeyFile": str(keys["wallet"])},
        "chain": {
            "rpcEndpoint": f"http://127.0.0.1:{dead}",
            "metaschedulerAddress": "0x5FC8d32690cc91D4c39d9d3abcBD16989F875707",
        },
        "sbatch": {"endpoint": f"127.0.0.1:{dead}", "tls": {"enable": False}},
        "slurm": {
            "ssh": {
                "address": f"127.0.0.1:{dead}",
                "adminUser": "root",
                "privateKeyFile": str(keys["ssh_key"]),
                "knownHostsFile": str(keys["known_hosts"]),
            },
            "partition": "grid",
        },
        "grpc": {
            "listenAddress": f"127.0.0.1:{callback_port}",
            "publicAddress": f"127.0.0.1:{callback_port}",
        },
        "state": {"folder": str(folder / "state")},
        "log": {"level": "info"},
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


# --- version and configuration ---------------------------------------------------------------


def test_version_and_start_time(binary: Path) -> None:
    timings = []
    for _ in range(3):
        began = time.monotonic()
        done = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True)
        timings.append(time.monotonic() - began)
        assert done.stdout.strip() == f"grid-supervisor {version('grid-supervisor')}"
    size_mb = binary.stat().st_size / 1e6
    print(f"binary: {size_mb:.1f} MB, --version in {min(timings):.2f}-{max(timings):.2f} s")
    assert size_mb < 120
    assert min(timings) < 10  # one-file: unpack to $TMPDIR, start Python


def test_config_check_of_the_example_with_real_key_files(binary: Path, tmp_path: Path) -> None:
    keys = key_files(tmp_path / "keys")
    text = (REPO / "config" / "example.yaml").read_text()
    text = text.replace("/etc/grid-supervisor/wallet.key", str(keys["wallet"]))
    text = text.replace("/etc/grid-supervisor/ssh_key", str(keys["ssh_key"]))
    text = text.replace("/etc/grid-supervisor/known_hosts", str(keys["known_hosts"]))
    text = text.replace("/var/lib/grid-supervisor", str(tmp_path / "state"))
    example = tmp_path / "config.yaml"
    example.write_text(text)
    done = subprocess.run(
        [binary, "config", "check", str(example)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    # The provider address is derived from the key (eth_account and its data inside the binary).
    assert re.search(r"0x[0-9a-fA-F]{40}", done.stdout + done.stderr)

    # A broken key file is refused with exit 2, and the key's bytes are never echoed.
    secret = "ab" * 31  # 62 hex digits: not a key
    keys["wallet"].write_text(secret)
    bad = subprocess.run(
        [binary, "config", "check", str(example)], capture_output=True, text=True, check=False
    )
    assert bad.returncode == 2
    assert "wallet" in bad.stderr
    assert secret not in bad.stdout + bad.stderr


# --- systemd: READY, WATCHDOG, STOPPING ---------------------------------------------------------


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, Path]]:
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(0.2)
    yield sock, path
    sock.close()


class Datagrams:
    """What the daemon sent to the notify socket, with arrival times."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.seen: list[tuple[float, str]] = []

    def until(self, text: str, timeout: float) -> list[tuple[float, str]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.seen.append((time.monotonic(), self.sock.recv(4096).decode()))
            except TimeoutError:
                continue
            if text in self.seen[-1][1]:
                return self.seen
        raise AssertionError(f"no {text!r} within {timeout} s; got {[d for _, d in self.seen]}")

    def drain(self, seconds: float) -> list[tuple[float, str]]:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                self.seen.append((time.monotonic(), self.sock.recv(4096).decode()))
            except TimeoutError:
                continue
        return self.seen

    def pings(self) -> list[float]:
        return [at for at, text in self.seen if "WATCHDOG=1" in text]


def start_binary(
    binary: Path, config: Path, notify: Path, tmpdir: Path, **env: str
) -> subprocess.Popen[bytes]:
    tmpdir.mkdir(exist_ok=True)
    environ = dict(os.environ, NOTIFY_SOCKET=str(notify), TMPDIR=str(tmpdir), **env)
    return subprocess.Popen(
        [binary, "run", "--config", str(config), "--stop-deadline", "20"],
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop(process: subprocess.Popen[bytes]) -> str:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    out, _ = process.communicate(timeout=30)
    return out.decode(errors="replace")


def test_ready_watchdog_stopping_under_a_real_notify_socket(
    binary: Path, tmp_path: Path, notify_socket: tuple[socket.socket, Path]
) -> None:
    sock, path = notify_socket
    config = offline_config(tmp_path, free_port())
    tmpdir = tmp_path / "tmp"
    process = start_binary(binary, config, path, tmpdir, WATCHDOG_USEC="1000000")
    received = Datagrams(sock)
    try:
        received.until("READY=1", timeout=60)
        assert any("STATUS=" in text for _, text in received.seen)
        # The PyInstaller child sends; the bootloader is unpacked under our TMPDIR.
        assert [p.name for p in tmpdir.iterdir() if p.name.startswith("_MEI")]
        received.drain(3.0)
        pings = received.pings()
        assert len(pings) >= 5, f"too few WATCHDOG=1 in 3 s: {received.seen}"
        gaps = [b - a for a, b in itertools.pairwise(pings)]
        # Every half interval (0.5 s): never a whole interval (1 s) without one, or systemd
        # would kill the service.
        assert max(gaps) < 0.9, gaps
        process.send_signal(signal.SIGTERM)  # what KillMode=mixed sends: to the bootloader only
        received.until("STOPPING=1", timeout=30)
        stopping_at = next(at for at, text in received.seen if "STOPPING=1" in text)
        assert process.wait(timeout=40) == 0
        received.drain(0.5)
        late = [at for at in received.pings() if at > stopping_at + 0.1]
        assert not late, "WATCHDOG=1 after STOPPING=1"
    finally:
        output = stop(process)
    assert "supervision tree 'root' is up" in output
    # The bootloader removed its unpacked folder: a clean stop leaves nothing under TMPDIR.
    assert not list(tmpdir.iterdir()), list(tmpdir.iterdir())


def test_watchdog_of_the_bootloader_pid_is_honoured_and_another_pid_is_not(
    binary: Path, tmp_path: Path, notify_socket: tuple[socket.socket, Path]
) -> None:
    sock, path = notify_socket
    config = offline_config(tmp_path, free_port())
    # A PID that is neither ours nor our bootloader's: systemd means another process; no pings.
    process = start_binary(
        binary, config, path, tmp_path / "tmp", WATCHDOG_USEC="200000", WATCHDOG_PID="1"
    )
    received = Datagrams(sock)
    try:
        received.until("READY=1", timeout=60)
        received.drain(1.0)
        assert received.pings() == []
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=40) == 0
    finally:
        stop(process)

    # WATCHDOG_PID naming the bootloader (the PID systemd started): pings.
    sock2 = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path2 = tmp_path / "notify2.sock"
    sock2.bind(str(path2))
    sock2.settimeout(0.2)
    environ: dict[str, Any] = dict(
        os.environ, NOTIFY_SOCKET=str(path2), WATCHDOG_USEC="200000", TMPDIR=str(tmp_path / "tmp")
    )
    # Exec through a shell that knows its own PID: exactly how systemd sets it before exec.
    process = subprocess.Popen(
        ["sh", "-c", 'WATCHDOG_PID=$$ exec "$0" run --config "$1"', str(binary), str(config)],
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    second = Datagrams(sock2)
    try:
        second.until("READY=1", timeout=60)
        second.until("WATCHDOG=1", timeout=5)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=40) == 0
    finally:
        stop(process)
        sock2.close()


def test_a_tree_that_cannot_start_sends_no_ready_and_exits_1(
    binary: Path, tmp_path: Path, notify_socket: tuple[socket.socket, Path]
) -> None:
    sock, path = notify_socket
    with socket.socket() as taken:  # the callback address is held by another process
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        config = offline_config(tmp_path, int(taken.getsockname()[1]))
        process = start_binary(binary, config, path, tmp_path / "tmp", WATCHDOG_USEC="200000")
        try:
            assert process.wait(timeout=60) == 1
        finally:
            output = stop(process)
    received = Datagrams(sock)
    received.drain(0.5)
    texts = [text for _, text in received.seen]
    assert not any("READY=1" in text for text in texts), texts
    assert received.pings() == []
    assert any("STATUS=failed" in text for text in texts), texts
    assert "cannot listen" in output


def test_the_unit_file_is_valid_and_fits_the_process_pair(binary: Path, tmp_path: Path) -> None:
    unit = (REPO / "deploy" / "grid-supervisor.service").read_text()
    settings: dict[str, str] = {}
    for line in unit.splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            settings[key.strip()] = value.strip()
    assert settings["Type"] == "notify"
    assert settings["NotifyAccess"] == "all"  # notifications come from the bootloader's child
    assert settings["KillMode"] == "mixed"  # SIGTERM to the bootloader only, forwarded once
    assert settings["Restart"] == "on-failure"
    found = re.search(r"--stop-deadline (\d+)", settings["ExecStart"])
    assert found is not None
    deadline = float(found.group(1))
    assert float(settings["TimeoutStopSec"]) > deadline
    assert int(settings["WatchdogSec"]) >= 10
    assert settings["ProtectSystem"] == "strict" and settings["NoNewPrivileges"] == "yes"
    assert settings["StateDirectory"] == "grid-supervisor"
    assert settings["PrivateTmp"] == "yes"  # where the bootloader unpacks
    # systemd's own checker, with the binary at the path the unit names.
    folder = tmp_path / "units"
    folder.mkdir()
    for name in (
        "grid-supervisor.service",
        "grid-supervisor-report-flush.service",
        "grid-supervisor-report-flush.timer",
    ):
        text = (REPO / "deploy" / name).read_text()
        (folder / name).write_text(text.replace("/usr/local/bin/grid-supervisor", str(binary)))
    verify = shutil.which("systemd-analyze")
    assert verify is not None, "systemd-analyze (package systemd) is needed to check the units"
    done = subprocess.run(
        [verify, "verify", *sorted(str(p) for p in folder.iterdir())],
        capture_output=True,
        text=True,
        check=False,
        cwd=folder,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "grid-supervisor" not in done.stdout + done.stderr, done.stdout + done.stderr
