"""The local control socket: how the command line talks to a running supervisor.

The supervisor listens on a Unix stream socket in its state folder (``<state>/control.sock``). The
protocol is newline-delimited JSON, one request per line and one answer per line::

    -> {"command": "tree", "args": {}}
    <- {"ok": true, "result": {"name": "root", ...}}
    -> {"command": "frobnicate"}
    <- {"ok": false, "error": "unknown command 'frobnicate' (known: tree)"}

A connection may carry several requests in turn; each is answered before the next is read.

Commands are registered by name with an async handler that takes the request's ``args`` dict and
returns anything ``msgspec.json`` can encode (msgspec Structs included)::

    server = ControlServer(control_socket_path(state_dir))
    server.register("tree", tree_handler)
    await nursery.start(server.serve)     # returns once the socket accepts connections

A handler refuses a request by raising :class:`ControlCommandError` (its message is the answer).
Any other exception is logged with its traceback and answered as an internal error; neither an
unknown command, a malformed line, an oversize line nor a failing handler can stop the server.

Security: only the owner may connect. The socket file is bound inside a private (0700) temporary
folder, set to 0600 there and then renamed into place, so there is no moment when it is reachable
with wider permissions; the rename also atomically replaces a stale socket left by a crashed
supervisor. The server refuses to start when the state folder is writable by everyone, when the
path is held by something that is not a socket, or when another supervisor answers on it.

Clients: :func:`control_request` for trio code and :func:`control_request_sync` (plain blocking
socket, no trio) for the command line. Both raise a :class:`ControlError` subclass with a message
an operator can act on.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import stat
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import msgspec
import trio

__all__ = [
    "CONTROL_SOCKET_NAME",
    "ControlCommandError",
    "ControlError",
    "ControlHandler",
    "ControlProtocolError",
    "ControlServer",
    "ControlServerStatistics",
    "ControlTimeout",
    "ControlUnavailable",
    "control_request",
    "control_request_sync",
    "control_socket_path",
]

log = logging.getLogger(__name__)

#: The socket's file name inside the state folder.
CONTROL_SOCKET_NAME = "control.sock"

#: A command handler: takes the request's ``args`` and returns a JSON-encodable result.
ControlHandler = Callable[[dict[str, Any]], Awaitable[Any]]

DEFAULT_MAX_REQUEST_BYTES = 64 * 1024
DEFAULT_MAX_RESPONSE_BYTES = 16 * 1024 * 1024


# --- errors --------------------------------------------------------------------------------------


class ControlError(Exception):
    """Anything that went wrong on the control socket; the message is meant for an operator."""


class ControlUnavailable(ControlError):
    """No supervisor could be reached (no socket, nothing listening, permission denied)."""


class ControlTimeout(ControlError):
    """The supervisor did not answer in time."""


class ControlCommandError(ControlError):
    """The supervisor answered ``ok: false``; a handler raises it to refuse a request."""


class ControlProtocolError(ControlError):
    """The peer sent something that is not the control protocol."""


# --- wire format ---------------------------------------------------------------------------------


class ControlRequest(msgspec.Struct):
    """One request line."""

    command: str
    args: dict[str, Any] = msgspec.field(default_factory=dict)


class _Response(msgspec.Struct):
    ok: bool
    result: Any = None
    error: str | None = None


class ControlServerStatistics(msgspec.Struct, frozen=True):
    """Counters of a :class:`ControlServer`."""

    listening: bool
    connections_active: int
    connections_total: int
    requests_total: int
    errors_total: int  #: requests answered with ``ok: false``


def control_socket_path(state_dir: str | os.PathLike[str]) -> Path:
    """Where the control socket of the supervisor using ``state_dir`` lives."""
    return Path(state_dir) / CONTROL_SOCKET_NAME


def encode_request(command: str, args: Mapping[str, Any] | None = None) -> bytes:
    return msgspec.json.encode(ControlRequest(command, dict(args or {}))) + b"\n"


def encode_ok(result: Any) -> bytes:
    """``{"ok": true, "result": ...}`` as one line; raises TypeError/EncodeError if unencodable."""
    return msgspec.json.encode({"ok": True, "result": result}) + b"\n"


def encode_error(message: str) -> bytes:
    return msgspec.json.encode({"ok": False, "error": message}) + b"\n"


def decode_response(line: bytes) -> Any:
    """The result carried by a response line; raises ControlCommandError for ``ok: false``."""
    try:
        response = msgspec.json.decode(line, type=_Response)
    except msgspec.DecodeError as exc:
        raise ControlProtocolError(f"the supervisor sent an unreadable answer: {exc}") from None
    if not response.ok:
        raise ControlCommandError(response.error or "the supervisor refused the request")
    return response.result


def _unavailable(path: str | os.PathLike[str], exc: OSError) -> ControlUnavailable:
    """Translate a connect/send error into a message that says what to do."""
    where = os.fspath(path)
    if isinstance(exc, FileNotFoundError):
        return ControlUnavailable(f"no supervisor is running: {where} does not exist")
    if isinstance(exc, ConnectionRefusedError):
        return ControlUnavailable(
            f"no supervisor is running: nothing listens on {where} (stale socket)"
        )
    if isinstance(exc, PermissionError):
        return ControlUnavailable(
            f"permission denied: cannot connect to {where} (run as the supervisor's user or root)"
        )
    return ControlUnavailable(f"cannot reach the supervisor at {where}: {exc.strerror or exc}")


# --- line framing --------------------------------------------------------------------------------


class _LineTooLong(Exception):
    pass


class _LineReader:
    """Splits a byte stream into newline-terminated lines of bounded length."""

    def __init__(self, stream: trio.abc.ReceiveStream, max_bytes: int) -> None:
        self._stream = stream
        self._max = max_bytes
        self._buffer = bytearray()
        self._eof = False

    async def receive_line(self) -> bytes | None:
        """The next line without its newline; None at end of stream. Raises _LineTooLong."""
        while True:
            end = self._buffer.find(b"\n")
            if end >= 0:
                if end > self._max:
                    raise _LineTooLong
                line = bytes(self._buffer[:end])
                del self._buffer[: end + 1]
                return line
            if len(self._buffer) > self._max:
                raise _LineTooLong
            if self._eof:
                if not self._buffer:
                    return None
                line = bytes(self._buffer)  # a last request without its newline
                self._buffer.clear()
                return line
            chunk = await self._stream.receive_some(65536)
            if not chunk:
                self._eof = True
            self._buffer += chunk


# --- the server ----------------------------------------------------------------------------------


class ControlServer:
    """Serves registered commands on a Unix socket, one JSON line in, one JSON line out.

    ``max_request_bytes`` bounds a request line; ``idle_timeout`` is how long a connection may
    wait between requests (or dribble one in) before it is closed; ``handler_timeout`` bounds each
    command; at most ``max_connections`` clients are served at once (others get an error line).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
        idle_timeout: float = 30.0,
        handler_timeout: float = 30.0,
        max_connections: int = 16,
        backlog: int = 16,
    ) -> None:
        self.path = Path(path)
        self.max_request_bytes = max_request_bytes
        self.idle_timeout = idle_timeout
        self.handler_timeout = handler_timeout
        self.max_connections = max_connections
        self.backlog = backlog
        self._handlers: dict[str, ControlHandler] = {}
        self._listening = False
        self._active = 0
        self._connections = 0
        self._requests = 0
        self._errors = 0

    # --- commands --------------------------------------------------------------------------------

    def register(self, command: str, handler: ControlHandler) -> None:
        """Answer ``command`` with ``handler``; a name can be registered only once."""
        if command in self._handlers:
            raise ValueError(f"control command {command!r} is already registered")
        self._handlers[command] = handler

    @property
    def commands(self) -> tuple[str, ...]:
        return tuple(sorted(self._handlers))

    def statistics(self) -> ControlServerStatistics:
        return ControlServerStatistics(
            listening=self._listening,
            connections_active=self._active,
            connections_total=self._connections,
            requests_total=self._requests,
            errors_total=self._errors,
        )

    # --- serving ---------------------------------------------------------------------------------

    async def serve(self, *, task_status: trio.TaskStatus[Path] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen until cancelled; ``task_status.started(path)`` once connections are accepted.

        Raises :class:`ControlError` (before ``started``) when the socket cannot be set up safely.
        The socket file is removed on the way out unless another server has replaced it since.
        """
        sock = await self._bind()
        identity = _identity(self.path)
        listener = trio.SocketListener(sock)
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(trio.serve_listeners, self._connection, [listener])
                self._listening = True
                log.info("control socket listening on %s", self.path)
                task_status.started(self.path)
        finally:
            self._listening = False
            sock.close()  # synchronous: this runs while being cancelled
            if _identity(self.path) == identity:
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()

    async def _bind(self) -> trio.socket.SocketType:
        """Check the location, then bind, restrict and move the socket into place."""
        _check_parent(self.path.parent)
        await _check_existing(self.path)
        private = tempfile.mkdtemp(prefix=".control-", dir=self.path.parent)  # mode 0700
        staged = os.path.join(private, "s")
        sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            try:
                await sock.bind(staged)
            except OSError as exc:
                raise ControlError(f"cannot create the control socket {self.path}: {exc}") from None
            os.chmod(staged, 0o600)
            sock.listen(self.backlog)
            os.rename(staged, self.path)  # atomic; replaces a stale socket
        except BaseException:
            sock.close()
            raise
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(staged)
            os.rmdir(private)
        return sock

    async def _connection(self, stream: trio.SocketStream) -> None:
        """One client: requests in turn until it leaves, idles too long or misbehaves."""
        self._connections += 1
        async with stream:
            if self._active >= self.max_connections:
                self._errors += 1
                with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                    await stream.send_all(encode_error("too many control connections; retry"))
                return
            self._active += 1
            try:
                await self._converse(stream)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass  # the client went away mid-answer
            except Exception:
                log.exception("control connection failed")
            finally:
                self._active -= 1

    async def _converse(self, stream: trio.SocketStream) -> None:
        reader = _LineReader(stream, self.max_request_bytes)
        while True:
            line: bytes | None = b""
            with trio.move_on_after(self.idle_timeout) as idle:
                try:
                    line = await reader.receive_line()
                except _LineTooLong:
                    self._errors += 1
                    message = f"request line longer than {self.max_request_bytes} bytes"
                    await stream.send_all(encode_error(message))
                    return
            if idle.cancelled_caught:
                self._errors += 1
                message = f"timed out: no complete request within {self.idle_timeout:g} s"
                await stream.send_all(encode_error(message))
                return
            if line is None:
                return
            if not line.strip():
                continue
            await stream.send_all(await self.respond(line))

    async def respond(self, line: bytes) -> bytes:
        """The answer line for one request line (also usable without a socket)."""
        self._requests += 1
        try:
            return encode_ok(await self._result(line))
        except ControlCommandError as exc:
            self._errors += 1
            return encode_error(str(exc))

    async def _result(self, line: bytes) -> Any:
        """Run the request's handler; every failure becomes a ControlCommandError to answer."""
        try:
            request = msgspec.json.decode(line, type=ControlRequest)
        except msgspec.DecodeError as exc:
            raise ControlCommandError(f"malformed request: {exc}") from None
        name = request.command
        handler = self._handlers.get(name)
        if handler is None:
            known = ", ".join(self.commands) or "none"
            raise ControlCommandError(f"unknown command {name!r} (known: {known})")
        try:
            with trio.fail_after(self.handler_timeout):
                result = await handler(request.args)
        except trio.TooSlowError:
            message = f"command {name!r} timed out after {self.handler_timeout:g} s"
            raise ControlCommandError(message) from None
        except ControlCommandError:
            raise
        except Exception as exc:
            log.exception("control command %r failed", name)
            message = f"command {name!r} failed: {type(exc).__name__}: {exc}"
            raise ControlCommandError(message) from None
        try:
            encode_ok(result)
        except (TypeError, msgspec.EncodeError) as exc:
            log.error("control command %r returned an unencodable result: %s", name, exc)
            message = f"command {name!r} returned a result that JSON cannot hold"
            raise ControlCommandError(message) from None
        return result


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    return (st.st_dev, st.st_ino)


def _check_parent(folder: Path) -> None:
    """The state folder must exist and be writable only by its owner (us or root) and group."""
    try:
        st = os.stat(folder)
    except FileNotFoundError:
        raise ControlError(f"cannot create the control socket: {folder} does not exist") from None
    if not stat.S_ISDIR(st.st_mode):
        raise ControlError(f"cannot create the control socket: {folder} is not a folder")
    if st.st_mode & stat.S_IWOTH:
        raise ControlError(
            f"refusing to create the control socket in {folder}: the folder is world-writable"
        )
    if st.st_uid not in (os.geteuid(), 0):
        raise ControlError(
            f"refusing to create the control socket in {folder}: owned by uid {st.st_uid}"
        )


async def _check_existing(path: Path) -> None:
    """Allow only nothing or a stale socket at ``path``; refuse a file or a live supervisor."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise ControlError(f"refusing to replace {path}: it exists and is not a socket")
    probe = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        with trio.move_on_after(2.0):
            await probe.connect(os.fspath(path))
            raise ControlError(f"another supervisor is already listening on {path}")
        raise ControlError(f"{path} is held by a process that does not accept connections")
    except (ConnectionRefusedError, FileNotFoundError):
        log.warning("replacing the stale control socket %s", path)
    except OSError as exc:
        raise ControlError(f"cannot tell whether {path} is in use: {exc}") from None
    finally:
        probe.close()


# --- clients -------------------------------------------------------------------------------------


async def control_request(
    path: str | os.PathLike[str],
    command: str,
    args: Mapping[str, Any] | None = None,
    timeout: float = 5.0,  # noqa: ASYNC109 - the twin of control_request_sync, same signature
    *,
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
) -> Any:
    """Send one command to the supervisor at ``path`` and return its result (plain JSON data).

    Raises ControlUnavailable, ControlTimeout, ControlCommandError or ControlProtocolError.
    """
    request = encode_request(command, args)
    try:
        with trio.fail_after(timeout):
            stream = await trio.open_unix_socket(os.fspath(path))
            async with stream:
                await stream.send_all(request)
                line = await _LineReader(stream, max_response_bytes).receive_line()
    except trio.TooSlowError:
        raise ControlTimeout(
            f"timed out after {timeout:g} s waiting for the supervisor at {os.fspath(path)}"
        ) from None
    except OSError as exc:
        raise _unavailable(path, exc) from None
    except trio.BrokenResourceError as exc:
        cause = exc.__cause__
        if isinstance(cause, OSError):
            raise _unavailable(path, cause) from None
        raise ControlUnavailable(f"the supervisor at {os.fspath(path)} hung up") from None
    except _LineTooLong:
        raise ControlProtocolError(
            f"the answer is larger than {max_response_bytes} bytes"
        ) from None
    if line is None:
        raise ControlProtocolError(
            f"the supervisor at {os.fspath(path)} closed the connection without answering"
        )
    return decode_response(line)


def control_request_sync(
    path: str | os.PathLike[str],
    command: str,
    args: Mapping[str, Any] | None = None,
    timeout: float = 5.0,
    *,
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
) -> Any:
    """Blocking twin of :func:`control_request` on a plain socket (for the command line)."""
    request = encode_request(command, args)
    deadline = time.monotonic() + timeout
    buffer = bytearray()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        try:
            sock.settimeout(timeout)
            sock.connect(os.fspath(path))
            sock.sendall(request)
            while b"\n" not in buffer:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError
                sock.settimeout(remaining)
                chunk = sock.recv(65536)
                if not chunk:
                    break
                buffer += chunk
                if len(buffer) > max_response_bytes + 1:
                    raise ControlProtocolError(
                        f"the answer is larger than {max_response_bytes} bytes"
                    )
        except TimeoutError:
            raise ControlTimeout(
                f"timed out after {timeout:g} s waiting for the supervisor at {os.fspath(path)}"
            ) from None
        except OSError as exc:
            raise _unavailable(path, exc) from None
    line, newline, _ = bytes(buffer).partition(b"\n")
    if not newline and not line:
        raise ControlProtocolError(
            f"the supervisor at {os.fspath(path)} closed the connection without answering"
        )
    return decode_response(line)
