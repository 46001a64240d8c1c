"""The app runner as a real process: systemd notifications, signals, ordered graceful stop."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime.control import control_request_sync

REPO = Path(__file__).resolve().parents[2]
APP_TREE = Path(__file__).with_name("app_tree.py")


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, Path]]:
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(0.2)
    yield sock, path
    sock.close()


def start(tmp_path: Path, notify: Path, *extra: str) -> subprocess.Popen[bytes]:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    env = dict(os.environ, NOTIFY_SOCKET=str(notify), WATCHDOG_USEC="200000")
    env.pop("WATCHDOG_PID", None)
    return subprocess.Popen(
        [sys.executable, str(APP_TREE), str(state), str(tmp_path / "ev"), *extra],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def datagrams(sock: socket.socket, until: bytes, timeout: float = 15.0) -> list[bytes]:
    seen: list[bytes] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            seen.append(sock.recv(4096))
        except TimeoutError:
            continue
        if until in seen[-1]:
            return seen
    raise AssertionError(f"no {until!r} within {timeout} s; got {seen}")


def test_ready_watchdog_tree_and_graceful_stop_in_reverse_order(
    tmp_path: Path, notify_socket: tuple[socket.socket, Path]
) -> None:
    sock, path = notify_socket
    process = start(tmp_path, path)
    try:
        before = datagrams(sock, b"READY=1")
        # Every child has started before READY.
        assert (tmp_path / "ev").read_text().split("\n")[:3] == [
            "started first",
            "started second",
            "started third",
        ]
        assert any(b"STATUS=" in d for d in before)
        pings = [d for d in datagrams(sock, b"WATCHDOG=1") if b"WATCHDOG=1" in d]
        assert pings
        tree = control_request_sync(tmp_path / "state" / "control.sock", "tree")
        assert [c["name"] for c in tree["children"]] == ["first", "second", "third"]
        process.send_signal(signal.SIGTERM)
        datagrams(sock, b"STOPPING=1")
        assert process.wait(timeout=30) == 0
    finally:
        process.kill()
    events = (tmp_path / "ev").read_text().split()
    stops = [events[i + 1] for i, word in enumerate(events) if word == "stopping"]
    assert stops == ["third", "second", "first"]


def test_second_signal_stops_at_once(
    tmp_path: Path, notify_socket: tuple[socket.socket, Path]
) -> None:
    sock, path = notify_socket
    process = start(tmp_path, path, "--hang")
    try:
        datagrams(sock, b"READY=1")
        process.send_signal(signal.SIGINT)
        datagrams(sock, b"STOPPING=1")
        time.sleep(0.5)
        assert process.poll() is None, "the hanging stop should still be waiting"
        began = time.monotonic()
        process.send_signal(signal.SIGINT)
        process.wait(timeout=10)
        assert time.monotonic() - began < 5
    finally:
        process.kill()
    assert "stopping third" in (tmp_path / "ev").read_text()
