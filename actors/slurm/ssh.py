"""SSH to the SLURM login node: one pooled asyncssh connection per UNIX user, driven from trio.

asyncssh runs on the process's single asyncio loop (opened by the app runner with
``trio_asyncio.open_loop()``; tests use the ``asyncio_loop`` fixture) and is called through
``trio_asyncio.aio_as_trio``. :class:`SshPool` is the only way in:

``await pool.run(user, command, stdin=None, timeout=30.0) -> CommandResult``

- **One connection per user, opened lazily** (the supervisor logs in as the admin and as each
  customer: the login node accepts the same key for every account), kept open, with asyncssh
  keepalives so a dead peer is noticed; idle ones are closed by :meth:`SshPool.close_idle`.
- **A channel cap per connection** (sshd's ``MaxSessions``, 10 by default): extra commands wait
  for a free channel within their own timeout.
- **A timeout on every command**, covering the wait for a channel, the connection and the
  command itself.
- **Reconnect with backoff**: a failed connection attempt delays the next one for that user
  (:class:`runtime.policy.Backoff`); a caller whose deadline falls inside the pause is told at
  once (``SshUnavailable``, reason "backoff").
- **Host keys checked by default** against a known_hosts file (``~/.ssh/known_hosts`` unless one
  is named); checking can be turned off for tests only.

Errors (all from :mod:`actors.slurm.messages`; no asyncssh or OS exception escapes):

- :class:`SshUnavailable` (never sent): the command never started (connect, auth, host key, no
  channel, or a timeout before the channel opened). Safe to retry.
- :class:`CommandLost` (may have taken effect): it started, then the connection dropped or the
  timeout expired.

asyncssh's and the OS's exceptions become these through one declared table per step, applied on
the asyncio side with :func:`runtime.errors.map_exceptions` (the cause is kept as
``__cause__``): :func:`connect_errors` for ``asyncssh.connect``, :func:`start_errors` while a
command's channel opens, :func:`run_errors` while it runs. Our own deadlines (``asyncio.wait_for``)
are told apart from the library's failures where they expire.

A pooled connection that died quietly is noticed when a channel cannot be opened on it; the
pool then reconnects once within the same call (the command had not started).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import os
import random
from collections.abc import Callable
from typing import Any

import asyncssh
import msgspec
import trio
import trio_asyncio

from actors.slurm.messages import CommandLost, SshUnavailable
from runtime.errors import ErrorTable, map_exceptions
from runtime.policy import Backoff
from runtime.statistics import Outcomes, OutcomeTally

__all__ = [
    "CommandResult",
    "ConnectionStatus",
    "SshPool",
    "SshSettings",
    "command_name",
    "connect_errors",
    "run_errors",
    "start_errors",
]


class CommandResult(msgspec.Struct, frozen=True):
    """What a remote command did. ``exit_status`` is -1 when it died of ``exit_signal``."""

    exit_status: int
    stdout: str
    stderr: str
    exit_signal: str | None = None

    @property
    def ok(self) -> bool:
        return self.exit_status == 0


class SshSettings(msgspec.Struct, frozen=True):
    """Where and how to connect (no secrets here: the private key is passed on its own)."""

    host: str
    port: int = 22
    known_hosts: str | None = None
    """known_hosts file to check the host key against; None: ``~/.ssh/known_hosts``."""
    check_host_key: bool = True
    connect_timeout: float = 10.0
    keepalive_interval: float = 15.0
    keepalive_count_max: int = 3
    max_channels: int = 10
    """Concurrent commands per connection (sshd's MaxSessions, 10 by default)."""
    max_connecting: int = 8
    """Connections being set up at once (sshd's MaxStartups starts refusing at 10)."""
    idle_seconds: float = 300.0
    """:meth:`SshPool.close_idle` closes connections unused for this long."""
    backoff: Backoff = Backoff(initial=0.5, maximum=30.0)


def command_name(command_line: str) -> str:
    """How a shell command line is counted: the program's base name (``/usr/bin/sbatch ...``
    -> ``sbatch``), so the kinds stay as few as the SLURM commands."""
    words = command_line.split(None, 1)
    if not words:
        return "empty"
    program = os.path.basename(words[0].strip("'\""))
    return program[:32] or "unknown"


class ConnectionStatus(msgspec.Struct, frozen=True):
    """One user's connection, for the SLURM actor's statistics."""

    user: str
    state: str  # "connected", "connecting", "closed", "backing-off"
    channels_in_use: int
    commands: int
    failures: int
    last_error: str


# --- the library's exceptions as ours, one table per step (first match wins) -----------------


def _unavailable(user: str, reason: str) -> Callable[[str], SshUnavailable]:
    return functools.partial(SshUnavailable, user, reason)


def connect_errors(user: str) -> ErrorTable:
    """How ``asyncssh.connect`` as ``user`` fails: never started, with the reason it gives."""
    return {
        asyncssh.HostKeyNotVerifiable: _unavailable(user, "host-key"),
        asyncssh.PermissionDenied: _unavailable(user, "auth"),
        TimeoutError: _unavailable(user, "timeout"),  # asyncssh's connect/login timeouts
        asyncssh.Error: _unavailable(user, "connect"),  # refused by sshd, protocol errors
        OSError: _unavailable(user, "connect"),  # refused, reset, unreachable, DNS
        ValueError: _unavailable(user, "connect"),  # asyncssh's checks of what it is given
    }


def start_errors(user: str) -> ErrorTable:
    """How opening a command's channel fails: refused (nothing ran, the pool may reconnect and
    try once more), or the connection failed while the command was being started."""
    lost = functools.partial(CommandLost, user)
    return {
        asyncssh.ChannelOpenError: _unavailable(user, "channel"),
        asyncssh.Error: lost,
        OSError: lost,
    }


def run_errors(user: str) -> ErrorTable:
    """How a command that started fails: the connection dropped under it (it may have run)."""
    lost = functools.partial(CommandLost, user)
    return {asyncssh.Error: lost, OSError: lost}


class _Link:
    """The pool's record of one user's connection."""

    __slots__ = (
        "channels",
        "commands",
        "conn",
        "connecting",
        "failures",
        "in_use",
        "last_error",
        "last_used",
        "lock",
        "next_attempt",
        "user",
    )

    def __init__(self, user: str, max_channels: int) -> None:
        self.user = user
        self.conn: asyncssh.SSHClientConnection | None = None
        self.lock = trio.Lock()
        self.channels = trio.Semaphore(max_channels)
        self.connecting = False
        self.failures = 0
        self.next_attempt = -math.inf
        self.last_error = ""
        self.last_used = -math.inf
        self.in_use = 0
        self.commands = 0

    def usable(self) -> asyncssh.SSHClientConnection | None:
        conn = self.conn
        return conn if conn is not None and not conn.is_closed() else None


class SshPool:
    """Pooled SSH connections to one login node, one per UNIX user (see the module text)."""

    def __init__(
        self, settings: SshSettings, private_key: bytes, *, rng: random.Random | None = None
    ) -> None:
        try:
            self._key = asyncssh.import_private_key(private_key)
        except (asyncssh.KeyImportError, ValueError, TypeError):
            # from None on purpose: the parser's message may quote the key
            raise ValueError("the SSH private key cannot be read (OpenSSH or PEM)") from None
        if settings.max_channels < 1 or settings.max_connecting < 1:
            raise ValueError("max_channels and max_connecting must be >= 1")
        self.settings = settings
        self._rng = rng or random.Random()
        self._links: dict[str, _Link] = {}
        self._connecting = trio.Semaphore(settings.max_connecting)
        self._commands = OutcomeTally()

    # --- running commands ---------------------------------------------------------------------

    async def run(
        self,
        user: str,
        command: str,
        *,
        stdin: str | None = None,
        timeout: float = 30.0,  # noqa: ASYNC109 - enforced on the asyncio side, channel closed
    ) -> CommandResult:
        """Run ``command`` (a shell command line) as ``user``, feeding ``stdin`` if given.

        Raises :class:`SshUnavailable` (never started) or :class:`CommandLost` (may have run).
        """
        # every command is counted by program and outcome, and timed (command_statistics())
        started = trio.current_time()
        outcome = "lost"
        try:
            result = await self._run(user, command, stdin, timeout)
            outcome = "ok" if result.ok else "exit_nonzero"
            return result
        except SshUnavailable:
            outcome = "unavailable"
            raise
        finally:
            self._commands.add(command_name(command), outcome, trio.current_time() - started)

    async def _run(
        self,
        user: str,
        command: str,
        stdin: str | None,
        timeout: float,  # noqa: ASYNC109
    ) -> CommandResult:
        deadline = trio.current_time() + timeout
        link = self._link(user)
        acquired = False
        with trio.move_on_at(deadline):
            await link.channels.acquire()
            acquired = True
        if not acquired:
            raise SshUnavailable(user, "timeout", f"no free channel within {timeout:g} s")
        link.in_use += 1
        try:
            for attempt in (1, 2):
                conn = await self._connection(link, deadline)
                try:
                    result = await self._exec(link, conn, command, stdin, deadline)
                except SshUnavailable:
                    # A dead pooled connection (or sshd refused the channel): nothing ran.
                    self._forget(link, conn)
                    if attempt == 2 or trio.current_time() >= deadline:
                        raise
                    continue
                link.commands += 1
                return result
            raise AssertionError("unreachable")
        finally:
            link.in_use -= 1
            link.last_used = trio.current_time()
            link.channels.release()

    async def _exec(
        self,
        link: _Link,
        conn: asyncssh.SSHClientConnection,
        command: str,
        stdin: str | None,
        deadline: float,
    ) -> CommandResult:
        remaining = max(deadline - trio.current_time(), 0.0)
        outcome: CommandResult | None = None
        # The asyncio side enforces the timeout (and closes the channel); this is a backstop.
        with trio.move_on_at(deadline + 5.0):
            try:
                outcome = await trio_asyncio.aio_as_trio(_aio_exec)(
                    conn, link.user, command, stdin, remaining
                )
            except CommandLost as error:
                link.last_error = str(error)
                raise
        if outcome is None:
            link.last_error = "command did not return after its timeout"
            self._forget(link, conn)
            raise CommandLost(link.user, link.last_error)
        return outcome

    # --- connections ----------------------------------------------------------------------------

    def _link(self, user: str) -> _Link:
        link = self._links.get(user)
        if link is None:
            link = self._links[user] = _Link(user, self.settings.max_channels)
        return link

    def _forget(self, link: _Link, conn: asyncssh.SSHClientConnection) -> None:
        if link.conn is conn:
            link.conn = None
        conn.abort()

    async def _connection(self, link: _Link, deadline: float) -> asyncssh.SSHClientConnection:
        conn = link.usable()
        if conn is not None:
            return conn
        with trio.move_on_at(deadline):
            async with link.lock:
                conn = link.usable()
                if conn is not None:
                    return conn
                if link.next_attempt >= deadline:
                    wait = link.next_attempt - trio.current_time()
                    raise SshUnavailable(
                        link.user,
                        "backoff",
                        f"{link.last_error}; next connection attempt in {wait:.1f} s",
                    )
                await trio.sleep_until(link.next_attempt)
                return await self._connect(link, deadline)
        raise SshUnavailable(link.user, "timeout", "no connection before the command's deadline")

    async def _connect(self, link: _Link, deadline: float) -> asyncssh.SSHClientConnection:
        async with self._connecting:
            link.connecting = True
            conn: asyncssh.SSHClientConnection | None = None
            try:
                with trio.move_on_at(min(deadline, trio.current_time() + self._connect_budget())):
                    conn = await trio_asyncio.aio_as_trio(self._aio_connect)(link.user)
                if conn is None:
                    raise SshUnavailable(link.user, "timeout", "connection not established in time")
            except SshUnavailable as error:
                link.failures += 1
                link.last_error = str(error)
                link.next_attempt = trio.current_time() + self.settings.backoff.delay(
                    link.failures, self._rng
                )
                raise
            finally:
                link.connecting = False
        link.conn = conn
        link.failures = 0
        link.next_attempt = -math.inf
        return conn

    def _connect_budget(self) -> float:
        return self.settings.connect_timeout + 1.0

    async def _aio_connect(self, user: str) -> asyncssh.SSHClientConnection:
        """asyncio half of a connection attempt; every failure becomes SshUnavailable
        (:func:`connect_errors`)."""
        settings = self.settings
        known_hosts: Any = None
        if settings.check_host_key:
            known_hosts = settings.known_hosts if settings.known_hosts is not None else ()
        with map_exceptions(connect_errors(user)):
            return await asyncssh.connect(
                settings.host,
                settings.port,
                username=user,
                client_keys=[self._key],
                known_hosts=known_hosts,
                config=None,
                agent_path=None,
                preferred_auth="publickey",
                password=None,
                keepalive_interval=settings.keepalive_interval,
                keepalive_count_max=settings.keepalive_count_max,
                connect_timeout=settings.connect_timeout,
                login_timeout=settings.connect_timeout,
            )

    # --- upkeep ---------------------------------------------------------------------------------

    async def close_idle(self) -> int:
        """Close connections unused for ``settings.idle_seconds``; returns how many."""
        threshold = trio.current_time() - self.settings.idle_seconds
        closed = 0
        for link in list(self._links.values()):
            conn = link.conn
            if conn is not None and link.in_use == 0 and link.last_used < threshold:
                link.conn = None
                await _close(conn)
                closed += 1
            if link.conn is None and link.in_use == 0 and link.failures == 0:
                del self._links[link.user]
        return closed

    async def aclose(self) -> None:
        """Close every connection."""
        for link in list(self._links.values()):
            conn, link.conn = link.conn, None
            if conn is not None:
                await _close(conn)

    def command_statistics(self) -> tuple[Outcomes, ...]:
        """Commands run by program and outcome (``ok``, ``exit_nonzero``, ``lost``,
        ``unavailable``), timed including any connection set-up."""
        return self._commands.snapshot()

    def statistics(self) -> list[ConnectionStatus]:
        now = trio.current_time()
        result = []
        for link in self._links.values():
            if link.usable() is not None:
                state = "connected"
            elif link.connecting:
                state = "connecting"
            elif link.next_attempt > now:
                state = "backing-off"
            else:
                state = "closed"
            result.append(
                ConnectionStatus(
                    user=link.user,
                    state=state,
                    channels_in_use=link.in_use,
                    commands=link.commands,
                    failures=link.failures,
                    last_error=link.last_error,
                )
            )
        return result

    def local_port(self, user: str) -> int | None:
        """Our side's TCP port of ``user``'s connection (for tests and diagnostics)."""
        link = self._links.get(user)
        conn = link.usable() if link is not None else None
        if conn is None:
            return None
        sockname = conn.get_extra_info("sockname")
        return int(sockname[1]) if sockname else None


async def _close(conn: asyncssh.SSHClientConnection) -> None:
    conn.close()
    with trio.move_on_after(2.0):
        with contextlib.suppress(asyncssh.Error, OSError):
            await trio_asyncio.aio_as_trio(conn.wait_closed)()


async def _aio_exec(
    conn: asyncssh.SSHClientConnection,
    user: str,
    command: str,
    stdin: str | None,
    timeout: float,  # noqa: ASYNC109 - asyncio code: asyncio.wait_for closes the channel
) -> CommandResult:
    """asyncio half of one command: open a session channel, run, collect, within ``timeout``.

    Raises :class:`SshUnavailable` (reason "channel") when the channel was refused, else
    :class:`CommandLost`; the deadline's own ``TimeoutError`` is told apart from the library's
    (a subclass of ``OSError``) inside each table's block."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    with map_exceptions(start_errors(user), "while starting the command"):
        try:
            process = await asyncio.wait_for(
                conn.create_process(command, input=stdin, encoding="utf-8", errors="replace"),
                timeout,
            )
        except TimeoutError as error:
            detail = f"no answer within {timeout:g} s while starting the command"
            raise CommandLost(user, detail) from error
    try:
        with map_exceptions(run_errors(user), "during the command"):
            try:
                stdout, stderr = await asyncio.wait_for(
                    process.communicate(), max(end - loop.time(), 0.001)
                )
            except TimeoutError as error:
                raise CommandLost(user, f"command timed out after {timeout:g} s") from error
    except CommandLost:
        process.close()
        raise
    status = process.exit_status
    signal = process.exit_signal
    if signal is not None:
        return CommandResult(
            exit_status=-1,
            stdout=str(stdout or ""),
            stderr=str(stderr or ""),
            exit_signal=signal[0],
        )
    if status is None or status < 0:
        raise CommandLost(user, "the connection closed before the command reported how it ended")
    return CommandResult(exit_status=status, stdout=str(stdout or ""), stderr=str(stderr or ""))
