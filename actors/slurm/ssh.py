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

- :class:`SshUnavailable`: the command never started (connect, auth, host key, no channel, or a
  timeout before the channel opened). Safe to retry.
- :class:`CommandLost`: it started, then the connection dropped or the timeout expired. It may
  have taken effect.

A pooled connection that died quietly is noticed when a channel cannot be opened on it; the
pool then reconnects once within the same call (the command had not started).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
from typing import Any

import asyncssh
import msgspec
import trio
import trio_asyncio

from actors import metrics
from actors.slurm.messages import CommandLost, SshUnavailable
from runtime.policy import Backoff

__all__ = ["CommandResult", "ConnectionStatus", "SshPool", "SshSettings"]


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


class ConnectionStatus(msgspec.Struct, frozen=True):
    """One user's connection, for ``describe()`` and statistics."""

    user: str
    state: str  # "connected", "connecting", "closed", "backing-off"
    channels_in_use: int
    commands: int
    failures: int
    last_error: str


class _NotStarted(Exception):
    """Inside the asyncio half: the channel could not be opened (nothing ran)."""


class _Lost(Exception):
    """Inside the asyncio half: the command started and its outcome is unknown."""


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
            raise ValueError("the SSH private key cannot be read (OpenSSH or PEM)") from None
        if settings.max_channels < 1 or settings.max_connecting < 1:
            raise ValueError("max_channels and max_connecting must be >= 1")
        self.settings = settings
        self._rng = rng or random.Random()
        self._links: dict[str, _Link] = {}
        self._connecting = trio.Semaphore(settings.max_connecting)

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
        # metrics hook (issue 7): count every command by outcome and time it.
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
            metrics.observe_ssh_command(command, outcome, trio.current_time() - started)

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
                except _NotStarted as error:
                    # A dead pooled connection (or sshd refused the channel): nothing ran.
                    self._forget(link, conn)
                    if attempt == 2 or trio.current_time() >= deadline:
                        raise SshUnavailable(user, "channel", str(error)) from None
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
                outcome = await trio_asyncio.aio_as_trio(_aio_exec)(conn, command, stdin, remaining)
            except _Lost as error:
                link.last_error = str(error)
                raise CommandLost(link.user, str(error)) from None
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
        """asyncio half of a connection attempt; every failure becomes SshUnavailable."""
        settings = self.settings
        known_hosts: Any = None
        if settings.check_host_key:
            known_hosts = settings.known_hosts if settings.known_hosts is not None else ()
        try:
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
        except asyncssh.HostKeyNotVerifiable as error:
            raise SshUnavailable(user, "host-key", str(error)) from None
        except asyncssh.PermissionDenied as error:
            raise SshUnavailable(user, "auth", str(error)) from None
        except TimeoutError:
            raise SshUnavailable(user, "timeout", "connection timed out") from None
        except (asyncssh.Error, OSError, ValueError) as error:
            detail = str(error) or type(error).__name__
            raise SshUnavailable(user, "connect", detail) from None

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
    command: str,
    stdin: str | None,
    timeout: float,  # noqa: ASYNC109 - asyncio code: asyncio.wait_for closes the channel
) -> CommandResult:
    """asyncio half of one command: open a session channel, run, collect, within ``timeout``."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    try:
        process = await asyncio.wait_for(
            conn.create_process(command, input=stdin, encoding="utf-8", errors="replace"),
            timeout,
        )
    except asyncssh.ChannelOpenError as error:
        raise _NotStarted(f"channel refused: {error.reason}") from None
    except TimeoutError:
        raise _Lost(f"no answer within {timeout:g} s while starting the command") from None
    except (asyncssh.Error, OSError) as error:
        raise _Lost(f"connection failed while starting the command: {error}") from None
    try:
        stdout, stderr = await asyncio.wait_for(
            process.communicate(), max(end - loop.time(), 0.001)
        )
    except TimeoutError:
        process.close()
        raise _Lost(f"command timed out after {timeout:g} s") from None
    except (asyncssh.Error, OSError) as error:
        process.close()
        raise _Lost(f"connection failed during the command: {error}") from None
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
        raise _Lost("the connection closed before the command reported how it ended")
    return CommandResult(exit_status=status, stdout=str(stdout or ""), stderr=str(stderr or ""))
