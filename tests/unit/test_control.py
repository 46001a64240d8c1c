"""The control socket over real Unix sockets."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import trio

from runtime.control import (
    ControlCommandError,
    ControlError,
    ControlServer,
    ControlTimeout,
    ControlUnavailable,
    _unavailable,
    control_request,
    control_request_sync,
    control_socket_path,
)


class Leaf(msgspec.Struct):
    name: str
    restarts: int


async def echo(args: dict[str, Any]) -> Any:
    return {"echo": args}


async def struct_result(args: dict[str, Any]) -> Any:
    return [Leaf("slurm", 2)]


async def broken(args: dict[str, Any]) -> Any:
    raise RuntimeError("the registry is on fire")


async def refuses(args: dict[str, Any]) -> Any:
    raise ControlCommandError("no job 0x2a")


async def sleeps(args: dict[str, Any]) -> Any:
    await trio.sleep_forever()


def make_server(folder: Path, **kwargs: Any) -> ControlServer:
    server = ControlServer(control_socket_path(folder), **kwargs)
    server.register("echo", echo)
    server.register("struct", struct_result)
    server.register("broken", broken)
    server.register("refuses", refuses)
    server.register("sleeps", sleeps)
    return server


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[ControlServer]:
    server = make_server(tmp_path, handler_timeout=5.0)
    async with trio.open_nursery() as nursery:
        assert await nursery.start(server.serve) == tmp_path / "control.sock"
        yield server
        nursery.cancel_scope.cancel()


async def raw_exchange(path: Path, payload: bytes, *, eof: bool = True) -> list[bytes]:
    """Send raw bytes (then end our side), read everything until the server closes."""
    stream = await trio.open_unix_socket(str(path))
    async with stream:
        await stream.send_all(payload)
        if eof:
            await stream.send_eof()
        received = b""
        with trio.fail_after(5):
            while chunk := await stream.receive_some():
                received += chunk
    return received.splitlines()


def make_stale_socket(path: Path) -> None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    sock.close()  # the file stays, nothing listens: what a killed supervisor leaves behind


# --- round trips ---------------------------------------------------------------------------------


async def test_round_trip_async_and_sync(served: ControlServer) -> None:
    result = await control_request(served.path, "echo", {"job": "0x2a"})
    assert result == {"echo": {"job": "0x2a"}}
    sync = await trio.to_thread.run_sync(control_request_sync, served.path, "echo", {"n": 1})
    assert sync == {"echo": {"n": 1}}
    assert await control_request(served.path, "echo") == {"echo": {}}
    assert await control_request(served.path, "struct") == [{"name": "slurm", "restarts": 2}]
    stats = served.statistics()
    assert stats.listening
    assert stats.requests_total == 4
    assert stats.errors_total == 0


async def test_exact_wire_lines_and_several_requests_per_connection(
    served: ControlServer,
) -> None:
    lines = await raw_exchange(
        served.path,
        b'{"command": "echo", "args": {"a": 1}}\n\n{"command": "nope"}\n',
    )
    assert msgspec.json.decode(lines[0]) == {"ok": True, "result": {"echo": {"a": 1}}}
    assert msgspec.json.decode(lines[1]) == {
        "ok": False,
        "error": "unknown command 'nope' (known: broken, echo, refuses, sleeps, struct)",
    }
    assert len(lines) == 2


async def test_unknown_command(served: ControlServer) -> None:
    with pytest.raises(ControlCommandError, match="unknown command 'status'"):
        await control_request(served.path, "status")


async def test_handler_error_is_an_answer_and_the_server_lives_on(served: ControlServer) -> None:
    with pytest.raises(
        ControlCommandError, match="command 'broken' failed: RuntimeError: the registry is on fire"
    ):
        await control_request(served.path, "broken")
    with pytest.raises(ControlCommandError, match=r"^no job 0x2a$"):
        await control_request(served.path, "refuses")
    assert await control_request(served.path, "echo") == {"echo": {}}
    assert served.statistics().errors_total == 2


async def test_malformed_requests(served: ControlServer) -> None:
    lines = await raw_exchange(
        served.path, b'not json\n{"args": {}}\n{"command": "echo", "args": 3}\n'
    )
    answers = [msgspec.json.decode(line) for line in lines]
    assert [a["ok"] for a in answers] == [False, False, False]
    assert all(a["error"].startswith("malformed request") for a in answers)
    assert await control_request(served.path, "echo") == {"echo": {}}


async def test_handler_timeout(tmp_path: Path) -> None:
    server = make_server(tmp_path, handler_timeout=0.1)
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve)
        with pytest.raises(ControlCommandError, match=r"'sleeps' timed out after 0\.1 s"):
            await control_request(server.path, "sleeps")
        nursery.cancel_scope.cancel()


async def test_register_twice_is_refused(tmp_path: Path) -> None:
    server = make_server(tmp_path)
    with pytest.raises(ValueError, match="already registered"):
        server.register("echo", echo)


# --- the socket file -----------------------------------------------------------------------------


async def test_socket_is_owner_only_and_removed_on_exit(tmp_path: Path) -> None:
    server = make_server(tmp_path)
    async with trio.open_nursery() as nursery:
        path = await nursery.start(server.serve)
        mode = os.lstat(path).st_mode
        assert stat.S_ISSOCK(mode)
        assert stat.S_IMODE(mode) == 0o600
        assert sorted(os.listdir(tmp_path)) == ["control.sock"]  # no staging left
        nursery.cancel_scope.cancel()
    assert not path.exists()
    assert not server.statistics().listening


async def test_other_users_cannot_connect() -> None:
    """A real connection attempt as ``nobody`` is refused by the 0600 socket."""
    folder = Path(tempfile.mkdtemp(prefix="grid-control-"))
    try:
        os.chmod(folder, 0o755)  # others may enter the folder; only the socket's mode stops them
        server = make_server(folder)
        async with trio.open_nursery() as nursery:
            await nursery.start(server.serve)
            probe = (
                "import socket, sys\n"
                "s = socket.socket(socket.AF_UNIX)\n"
                "try:\n    s.connect(sys.argv[1]); print('connected')\n"
                "except OSError as e:\n    print(type(e).__name__)\n"
            )
            done = await trio.run_process(
                ["/usr/bin/python3", "-c", probe, str(server.path)],
                user="nobody",
                capture_stdout=True,
            )
            assert done.stdout.decode().strip() == "PermissionError"
            nursery.cancel_scope.cancel()
    finally:
        shutil.rmtree(folder)


def test_permission_error_message() -> None:
    error = _unavailable("/var/lib/grid-supervisor/control.sock", PermissionError(13, "denied"))
    assert isinstance(error, ControlUnavailable)
    assert str(error).startswith("permission denied: cannot connect to /var/lib/grid-supervisor/")


async def test_stale_socket_is_replaced(tmp_path: Path) -> None:
    path = control_socket_path(tmp_path)
    make_stale_socket(path)
    with pytest.raises(ControlUnavailable, match="nothing listens on"):
        await control_request(path, "echo")
    server = make_server(tmp_path)
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve)
        assert await control_request(path, "echo") == {"echo": {}}
        assert stat.S_IMODE(os.lstat(path).st_mode) == 0o600
        nursery.cancel_scope.cancel()


async def test_live_socket_is_not_taken_over(served: ControlServer) -> None:
    second = make_server(served.path.parent)
    with pytest.raises(ControlError, match="already listening"):
        await second.serve()
    assert await control_request(served.path, "echo") == {"echo": {}}  # the first still serves


async def test_refuses_to_replace_a_regular_file(tmp_path: Path) -> None:
    path = control_socket_path(tmp_path)
    path.write_text("precious")
    with pytest.raises(ControlError, match="not a socket"):
        await make_server(tmp_path).serve()
    assert path.read_text() == "precious"


async def test_refuses_a_world_writable_folder(tmp_path: Path) -> None:
    os.chmod(tmp_path, 0o777)
    with pytest.raises(ControlError, match="world-writable"):
        await make_server(tmp_path).serve()
    assert not control_socket_path(tmp_path).exists()


async def test_refuses_a_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ControlError, match="does not exist"):
        await make_server(tmp_path / "missing").serve()


# --- limits and concurrency ----------------------------------------------------------------------


async def test_concurrent_clients(tmp_path: Path) -> None:
    """Three clients inside the same handler at once: only possible if they are served together."""
    arrived = 0
    all_here = trio.Event()

    async def rendezvous(args: dict[str, Any]) -> Any:
        nonlocal arrived
        arrived += 1
        if arrived == 3:
            all_here.set()
        await all_here.wait()
        return args["n"]

    server = ControlServer(control_socket_path(tmp_path))
    server.register("rendezvous", rendezvous)
    results: list[int] = []

    async def client(n: int) -> None:
        results.append(await control_request(server.path, "rendezvous", {"n": n}))

    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve)
        with trio.fail_after(5):
            async with trio.open_nursery() as clients:
                for n in range(3):
                    clients.start_soon(client, n)
        assert sorted(results) == [0, 1, 2]
        assert server.statistics().connections_total == 3
        nursery.cancel_scope.cancel()


async def test_too_many_connections(tmp_path: Path) -> None:
    server = make_server(tmp_path, max_connections=1)
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve)
        holder = await trio.open_unix_socket(str(server.path))
        async with holder:
            await holder.send_all(b'{"command": "echo"}\n')  # proves the connection is served
            assert b'"ok":true' in await holder.receive_some()
            with pytest.raises(ControlCommandError, match="too many control connections"):
                await control_request(server.path, "echo")
        with trio.fail_after(5):
            while server.statistics().connections_active:  # noqa: ASYNC110 - no event to wait on
                await trio.sleep(0.01)
        assert await control_request(server.path, "echo") == {"echo": {}}
        nursery.cancel_scope.cancel()


async def test_oversize_line_is_refused_and_connection_closed(tmp_path: Path) -> None:
    server = make_server(tmp_path, max_request_bytes=1024)
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve)
        big = b'{"command": "echo", "args": {"x": "' + b"y" * 5000 + b'"}}\n'
        lines = await raw_exchange(server.path, big)
        assert [msgspec.json.decode(line) for line in lines] == [
            {"ok": False, "error": "request line longer than 1024 bytes"}
        ]
        assert await control_request(server.path, "echo", {"x": "small"}) == {
            "echo": {"x": "small"}
        }
        nursery.cancel_scope.cancel()


async def test_idle_connection_is_closed(tmp_path: Path) -> None:
    server = make_server(tmp_path, idle_timeout=0.1)
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve)
        lines = await raw_exchange(server.path, b'{"command": "ec', eof=False)  # never finished
        assert msgspec.json.decode(lines[0])["error"].startswith("timed out")
        nursery.cancel_scope.cancel()


# --- client errors -------------------------------------------------------------------------------


@pytest.fixture
def missing_socket(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "control.sock"


async def test_client_errors_when_nobody_runs(missing_socket: Path) -> None:
    expected = f"no supervisor is running: {missing_socket} does not exist"
    with pytest.raises(ControlUnavailable) as async_error:
        await control_request(missing_socket, "tree")
    assert str(async_error.value) == expected
    with pytest.raises(ControlUnavailable) as sync_error:
        control_request_sync(missing_socket, "tree")
    assert str(sync_error.value) == expected
    make_stale_socket(missing_socket)
    with pytest.raises(ControlUnavailable, match="no supervisor is running: nothing listens"):
        control_request_sync(missing_socket, "tree")


async def test_client_timeouts(served: ControlServer) -> None:
    with pytest.raises(ControlTimeout, match=r"timed out after 0\.2 s"):
        await control_request(served.path, "sleeps", timeout=0.2)
    with pytest.raises(ControlTimeout, match=r"timed out after 0\.2 s"):
        await trio.to_thread.run_sync(
            lambda: control_request_sync(served.path, "sleeps", timeout=0.2)
        )
    assert await control_request(served.path, "echo") == {"echo": {}}


def test_sync_client_against_server_in_another_process(tmp_path: Path) -> None:
    """The CLI's path: a plain blocking client talking to a server in a separate process."""
    script = (
        "import sys, trio\n"
        "from runtime.control import ControlServer\n"
        "async def tree(args): return {'name': 'root', 'children': []}\n"
        "async def main():\n"
        "    server = ControlServer(sys.argv[1])\n"
        "    server.register('tree', tree)\n"
        "    async with trio.open_nursery() as n:\n"
        "        await n.start(server.serve)\n"
        "        print('ready', flush=True)\n"
        "trio.run(main)\n"
    )
    path = control_socket_path(tmp_path)
    server = subprocess.Popen(
        [sys.executable, "-c", script, str(path)],
        stdout=subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        assert server.stdout is not None
        assert server.stdout.readline().strip() == b"ready"
        assert control_request_sync(path, "tree") == {"name": "root", "children": []}
    finally:
        server.terminate()
        server.wait(timeout=10)
