"""The sd_notify protocol against a real datagram socket standing in for systemd."""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from runtime.systemd import (
    Notifier,
    format_notification,
    parse_notify_address,
    watchdog_interval,
)


class FakeSystemd:
    """A real AF_UNIX datagram socket that collects what a notifier sends."""

    def __init__(self, address: str | bytes) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.setblocking(False)

    def drain(self) -> list[bytes]:
        datagrams = []
        while True:
            try:
                datagrams.append(self.sock.recv(4096))
            except BlockingIOError:
                return datagrams


@pytest.fixture
def systemd(tmp_path: Path) -> Iterator[tuple[FakeSystemd, str]]:
    path = str(tmp_path / "notify")
    fake = FakeSystemd(path)
    yield fake, path
    fake.sock.close()


def notifier_for(path: str, **env: str) -> Notifier:
    return Notifier.from_environ({"NOTIFY_SOCKET": path, **env}, bootloader_pid=None)


# --- pure helpers --------------------------------------------------------------------------------


def test_addresses_paths_abstract_and_unsupported() -> None:
    assert parse_notify_address("/run/systemd/notify") == "/run/systemd/notify"
    assert parse_notify_address("@abc") == b"\0abc"
    assert parse_notify_address(None) is None
    assert parse_notify_address("") is None
    assert parse_notify_address("vsock:2:1234") is None


def test_datagram_format() -> None:
    assert format_notification({"READY": 1}) == b"READY=1\n"
    assert format_notification({"STATUS": "two\nlines", "MAINPID": 42}) == (
        b"STATUS=two lines\nMAINPID=42\n"
    )
    assert format_notification({"READY": True, "STOPPING": False}) == b"READY=1\nSTOPPING=0\n"
    with pytest.raises(ValueError, match="field name"):
        format_notification({"status": "lower-case keys are not systemd's"})


def test_watchdog_interval_rules() -> None:
    me, boot = 1000, 999
    assert watchdog_interval({}, pid=me, bootloader_pid=None) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}, pid=me, bootloader_pid=None) is None
    assert watchdog_interval({"WATCHDOG_USEC": "x"}, pid=me, bootloader_pid=None) is None
    assert watchdog_interval({"WATCHDOG_USEC": "5000"}, pid=me, bootloader_pid=None) == 5000
    both = {"WATCHDOG_USEC": "5000", "WATCHDOG_PID": "1000"}
    assert watchdog_interval(both, pid=me, bootloader_pid=None) == 5000
    parent = {"WATCHDOG_USEC": "5000", "WATCHDOG_PID": "999"}
    assert watchdog_interval(parent, pid=me, bootloader_pid=None) is None
    assert watchdog_interval(parent, pid=me, bootloader_pid=boot) == 5000
    other = {"WATCHDOG_USEC": "5000", "WATCHDOG_PID": "4242"}
    assert watchdog_interval(other, pid=me, bootloader_pid=boot) is None


# --- real sockets --------------------------------------------------------------------------------


def test_ready_status_stopping_exact_datagrams(systemd: tuple[FakeSystemd, str]) -> None:
    fake, path = systemd
    with notifier_for(path) as notifier:
        assert notifier.enabled
        assert notifier.ready()
        assert notifier.status("claiming jobs")
        assert notifier.status("3 jobs running")
        assert notifier.notify(STATUS="draining", MAINPID=77)
        assert notifier.stopping()
        assert notifier.statistics().sent == 5
    assert fake.drain() == [
        b"READY=1\n",
        b"STATUS=claiming jobs\n",
        b"STATUS=3 jobs running\n",
        b"STATUS=draining\nMAINPID=77\n",
        b"STOPPING=1\n",
    ]


def test_abstract_namespace_socket() -> None:
    name = f"grid-supervisor-test-{uuid.uuid4().hex}"
    fake = FakeSystemd(b"\0" + name.encode())
    try:
        with notifier_for(f"@{name}") as notifier:
            assert notifier.ready()
            assert notifier.watchdog()
        assert fake.drain() == [b"READY=1\n", b"WATCHDOG=1\n"]
    finally:
        fake.sock.close()


async def test_no_notify_socket_is_a_cheap_no_op() -> None:
    notifier = Notifier.from_environ({"WATCHDOG_USEC": "100000"})
    assert not notifier.enabled
    assert notifier.watchdog_usec is None
    assert not notifier.ready()
    assert not notifier.status("x")
    assert not notifier.watchdog()
    with trio.fail_after(1):
        await notifier.watchdog_loop(lambda: True)  # returns at once
    stats = notifier.statistics()
    assert (stats.sent, stats.failed, stats.watchdog_pings) == (0, 0, 0)


def test_send_errors_are_logged_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = notifier_for(str(tmp_path / "nobody-listens-here"))
    with caplog.at_level(logging.WARNING, logger="runtime.systemd"):
        assert not notifier.ready()
    assert notifier.statistics().failed == 1
    assert "could not notify systemd" in caplog.text
    notifier.close()


async def test_watchdog_pings_at_half_the_interval(systemd: tuple[FakeSystemd, str]) -> None:
    fake, path = systemd
    notifier = notifier_for(path, WATCHDOG_USEC="100000")  # 100 ms: a ping every 50 ms
    assert notifier.watchdog_usec == 100_000
    async with trio.open_nursery() as nursery:
        nursery.start_soon(notifier.watchdog_loop, lambda: True)
        await trio.sleep(0.5)
        nursery.cancel_scope.cancel()
    pings = fake.drain()
    assert set(pings) == {b"WATCHDOG=1\n"}
    # 0.5 s / 50 ms = 10 periods, plus the immediate first ping; allow for a slow CI machine.
    assert 7 <= len(pings) <= 12, len(pings)
    assert notifier.statistics().watchdog_pings == len(pings)
    notifier.close()


async def test_no_pings_while_unhealthy_then_resume(
    systemd: tuple[FakeSystemd, str], caplog: pytest.LogCaptureFixture
) -> None:
    fake, path = systemd
    notifier = notifier_for(path, WATCHDOG_USEC="100000")
    health = {"ok": True}
    with caplog.at_level(logging.WARNING, logger="runtime.systemd"):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(notifier.watchdog_loop, lambda: health["ok"])
            await trio.sleep(0.2)
            assert len(fake.drain()) >= 2

            health["ok"] = False
            await trio.sleep(0.06)  # let the loop see it (one period), then start counting
            fake.drain()
            await trio.sleep(0.35)  # seven periods without a single ping
            assert fake.drain() == []

            health["ok"] = True
            await trio.sleep(0.2)
            resumed = fake.drain()
            assert len(resumed) >= 2
            assert set(resumed) == {b"WATCHDOG=1\n"}
            nursery.cancel_scope.cancel()
    assert caplog.text.count("withholding systemd watchdog pings") == 1  # logged once
    assert caplog.text.count("resuming systemd watchdog pings") == 1
    notifier.close()


async def test_health_check_that_raises_counts_as_unhealthy(
    systemd: tuple[FakeSystemd, str],
) -> None:
    fake, path = systemd
    notifier = notifier_for(path, WATCHDOG_USEC="100000")

    def broken() -> bool:
        raise RuntimeError("health check bug")

    with trio.move_on_after(0.2):
        await notifier.watchdog_loop(broken)
    assert fake.drain() == []
    notifier.close()


async def test_watchdog_pid_of_another_process_disables_pings(
    systemd: tuple[FakeSystemd, str],
) -> None:
    fake, path = systemd
    other = str(os.getppid())  # a real process that is not us
    notifier = notifier_for(path, WATCHDOG_USEC="100000", WATCHDOG_PID=other)
    assert notifier.watchdog_usec is None
    with trio.fail_after(1):
        await notifier.watchdog_loop(lambda: True)  # returns at once: the watchdog is not ours
    assert fake.drain() == []
    assert notifier.ready()  # plain notifications still go through
    assert fake.drain() == [b"READY=1\n"]
    notifier.close()


async def test_watchdog_pid_of_our_process_or_pyinstaller_bootloader(
    systemd: tuple[FakeSystemd, str],
) -> None:
    fake, path = systemd
    ours = Notifier.from_environ(
        {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "100000", "WATCHDOG_PID": str(os.getpid())}
    )
    assert ours.watchdog_usec == 100_000
    parent = str(os.getppid())
    frozen_child = Notifier.from_environ(
        {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "100000", "WATCHDOG_PID": parent},
        bootloader_pid=os.getppid(),
    )
    assert frozen_child.watchdog_usec == 100_000
    with trio.move_on_after(0.12):
        await frozen_child.watchdog_loop(lambda: True)
    assert len(fake.drain()) >= 2
    ours.close()
    frozen_child.close()
