"""systemd integration by hand: the ``sd_notify`` protocol without libsystemd.

A ``Type=notify`` service tells systemd how it is doing by sending small datagrams to the Unix
socket named in ``$NOTIFY_SOCKET``. Each datagram is a few ``KEY=value`` lines::

    READY=1                 start-up is complete; ``systemctl start`` returns now
    STATUS=claiming jobs    free text shown by ``systemctl status``
    WATCHDOG=1              "I am alive"; must arrive at least every ``WatchdogSec``
    STOPPING=1              shutdown has begun

``$NOTIFY_SOCKET`` is either a filesystem path (``/run/systemd/notify``) or, when it starts with
``@``, a name in Linux's abstract socket namespace (the ``@`` stands for a leading NUL byte). When
it is unset we are not running under systemd (a terminal, a test, a container) and every method of
:class:`Notifier` is a cheap no-op, so the application can call them unconditionally.

The watchdog
------------
With ``WatchdogSec=`` in the unit, systemd exports ``$WATCHDOG_USEC`` (the interval in
microseconds) and ``$WATCHDOG_PID`` (the process that must send the pings). If no ping arrives
within the interval, systemd kills the service and, with ``Restart=on-failure``, starts it again.
:meth:`Notifier.watchdog_loop` pings every half interval, as systemd recommends, but only while the
application's own ``healthy()`` says so: a daemon whose event loop still runs while its actors are
wedged should be restarted, and withholding the ping is how we ask for that. When health returns
before systemd acts, the pings resume.

PyInstaller one-file binaries, ``NotifyAccess=all`` and ``MAINPID``
-------------------------------------------------------------------
The shipped binary is a PyInstaller one-file executable. The process systemd starts is its
bootloader: it unpacks the bundle into a temporary ``_MEI…`` folder, then starts our Python
interpreter as a *child* process, forwards signals to it, waits for it, removes the temporary folder
and exits with the child's exit code. Two consequences:

* systemd's main PID is the bootloader, and by default (``NotifyAccess=main``) it ignores
  notifications from any other process. The unit therefore sets ``NotifyAccess=all``, so the
  datagrams our Python child sends are accepted (the socket credentials prove which cgroup, hence
  which service, they come from).
* ``$WATCHDOG_PID`` names the bootloader, not us. libsystemd would conclude "the watchdog is not for
  me" and never ping, and systemd would kill a perfectly healthy service after one interval. So the
  watchdog is honoured when ``$WATCHDOG_PID`` is our PID *or* the PID of the PyInstaller bootloader
  that started us (see :func:`pyinstaller_bootloader_pid`); any other PID still disables it.

We deliberately do **not** send ``MAINPID=<our pid>``. It would make systemd treat the child as the
service's main process, and then: the bootloader, still alive, would be a stray process of the
unit; when the child exits, systemd would consider the service stopped and, under the default
``KillMode=control-group``, SIGKILL the bootloader in the middle of removing its ``_MEI`` folder
(leaking it under ``/tmp``); and stop signals would reach the child twice (once from systemd,
once forwarded by the bootloader). The bootloader lives exactly as long as the child and returns its
exit status, so it is the right main process; ``NotifyAccess=all`` is all we need. Callers who run
outside PyInstaller and want it anyway can send it with ``notify(MAINPID=os.getpid())``.

Sending never blocks and never raises into the application: the socket is non-blocking, and a full
buffer or a vanished systemd is logged and counted (see :meth:`Notifier.statistics`), nothing more.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import sys
from collections.abc import Callable, Mapping
from typing import Literal

import msgspec
import trio

__all__ = [
    "Notifier",
    "NotifierStatistics",
    "format_notification",
    "parse_notify_address",
    "pyinstaller_bootloader_pid",
    "watchdog_interval",
]

log = logging.getLogger(__name__)

_KEY = re.compile(r"[A-Z][A-Z0-9_]*")


class NotifierStatistics(msgspec.Struct, frozen=True):
    """What a :class:`Notifier` has done so far."""

    enabled: bool  #: ``$NOTIFY_SOCKET`` was set and usable
    watchdog_usec: int | None  #: the watchdog interval we honour, or None when it is off
    sent: int  #: datagrams delivered to the socket
    failed: int  #: datagrams that could not be sent (logged and dropped)
    watchdog_pings: int  #: ``WATCHDOG=1`` datagrams delivered


# --- pure helpers --------------------------------------------------------------------------------


def parse_notify_address(value: str | None) -> str | bytes | None:
    """Turn ``$NOTIFY_SOCKET`` into an address for ``socket.sendto``.

    A path is returned as is; ``@name`` becomes the abstract address ``b"\\0name"``. Anything else
    (unset, empty, or a transport we do not speak such as ``vsock:``) gives None: notifications off.
    """
    if not value:
        return None
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    if value.startswith("/"):
        return value
    return None


def watchdog_interval(
    environ: Mapping[str, str], *, pid: int, bootloader_pid: int | None
) -> int | None:
    """The watchdog interval in microseconds that applies to process ``pid``, or None.

    The watchdog applies when ``$WATCHDOG_USEC`` is a positive integer and ``$WATCHDOG_PID`` is
    either unset, ``pid``, or ``bootloader_pid`` (the PyInstaller parent, see the module docs).
    """
    try:
        usec = int(environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    if usec <= 0:
        return None
    watchdog_pid = environ.get("WATCHDOG_PID")
    if watchdog_pid is not None:
        try:
            target = int(watchdog_pid)
        except ValueError:
            return None
        if target != pid and (bootloader_pid is None or target != bootloader_pid):
            return None
    return usec


def format_notification(fields: Mapping[str, object]) -> bytes:
    """Encode ``KEY=value`` fields as one ``sd_notify`` datagram.

    Keys must be upper-case like systemd's (``READY``, ``STATUS``, ``MAINPID``...). Values are
    turned into text; ``True``/``False`` become ``1``/``0``, and newlines inside a value (which
    would end the field early) become spaces.
    """
    lines = []
    for key, value in fields.items():
        if not _KEY.fullmatch(key):
            raise ValueError(f"not a valid sd_notify field name: {key!r}")
        if isinstance(value, bool):
            text = "1" if value else "0"
        else:
            text = str(value).replace("\r", " ").replace("\n", " ")
        lines.append(f"{key}={text}\n")
    return "".join(lines).encode()


def pyinstaller_bootloader_pid() -> int | None:
    """The PID of the PyInstaller one-file bootloader that started this process, if there is one.

    A one-file bundle unpacks into a temporary folder named ``_MEI<random>`` and runs Python in a
    child of the bootloader, so "frozen, unpacked into ``_MEI…``" means "our parent is the
    bootloader". A one-folder bundle or a plain interpreter gives None.
    """
    if not getattr(sys, "frozen", False):
        return None
    bundle = getattr(sys, "_MEIPASS", "")
    if not os.path.basename(os.path.normpath(bundle)).startswith("_MEI"):
        return None
    return os.getppid()


# --- the notifier --------------------------------------------------------------------------------


class Notifier:
    """Sends ``sd_notify`` datagrams to systemd; a no-op when not started by systemd.

    Build one with :meth:`from_environ`. Every send is synchronous and instant (a non-blocking
    datagram on a local socket), so the methods can be called from anywhere, including trio tasks.
    """

    def __init__(self, address: str | bytes | None, *, watchdog_usec: int | None = None) -> None:
        self._address = address
        self._watchdog_usec = watchdog_usec if address is not None else None
        self._socket: socket.socket | None = None
        self._sent = 0
        self._failed = 0
        self._pings = 0

    @classmethod
    def from_environ(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        pid: int | None = None,
        bootloader_pid: int | Literal["auto"] | None = "auto",
    ) -> Notifier:
        """Read ``$NOTIFY_SOCKET``, ``$WATCHDOG_USEC`` and ``$WATCHDOG_PID``.

        ``environ`` defaults to ``os.environ`` and ``pid`` to ``os.getpid()``; the default
        ``bootloader_pid="auto"`` asks :func:`pyinstaller_bootloader_pid` (pass None to accept only
        ``pid``).
        """
        env = os.environ if environ is None else environ
        raw = env.get("NOTIFY_SOCKET")
        address = parse_notify_address(raw)
        if raw and address is None:
            log.warning("NOTIFY_SOCKET=%r is not a Unix socket address; not notifying systemd", raw)
        parent = pyinstaller_bootloader_pid() if bootloader_pid == "auto" else bootloader_pid
        usec = watchdog_interval(
            env, pid=os.getpid() if pid is None else pid, bootloader_pid=parent
        )
        return cls(address, watchdog_usec=usec)

    # --- properties ------------------------------------------------------------------------------

    @property
    def enabled(self) -> bool:
        """True when there is a systemd to notify."""
        return self._address is not None

    @property
    def watchdog_usec(self) -> int | None:
        """The watchdog interval in microseconds, or None when no watchdog applies to us."""
        return self._watchdog_usec

    def statistics(self) -> NotifierStatistics:
        return NotifierStatistics(
            enabled=self.enabled,
            watchdog_usec=self._watchdog_usec,
            sent=self._sent,
            failed=self._failed,
            watchdog_pings=self._pings,
        )

    # --- sending ---------------------------------------------------------------------------------

    def notify(self, **fields: object) -> bool:
        """Send one datagram made of ``fields``; True when it was delivered.

        With no ``$NOTIFY_SOCKET`` this returns False at once. Send errors are logged and counted,
        never raised; an invalid field name is a programming error and does raise ValueError.
        """
        if self._address is None or not fields:
            return False
        datagram = format_notification(fields)
        try:
            if self._socket is None:
                self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                self._socket.setblocking(False)
            self._socket.sendto(datagram, self._address)
        except OSError as exc:
            self._failed += 1
            log.warning("could not notify systemd (%s): %s", ", ".join(fields), exc)
            return False
        self._sent += 1
        return True

    def ready(self) -> bool:
        """Start-up is complete (``READY=1``)."""
        return self.notify(READY=1)

    def status(self, text: str) -> bool:
        """Set the one-line status that ``systemctl status`` shows (``STATUS=...``)."""
        return self.notify(STATUS=text)

    def stopping(self) -> bool:
        """Shutdown has begun (``STOPPING=1``)."""
        return self.notify(STOPPING=1)

    def watchdog(self) -> bool:
        """One keep-alive ping (``WATCHDOG=1``)."""
        delivered = self.notify(WATCHDOG=1)
        if delivered:
            self._pings += 1
        return delivered

    async def watchdog_loop(self, healthy: Callable[[], bool]) -> None:
        """Ping every half watchdog interval for as long as ``healthy()`` is True.

        While ``healthy()`` is False (or raises) no ping is sent, so systemd will kill and restart
        us once the interval runs out; the change is logged once each way. Returns at once when no
        watchdog applies (no ``$NOTIFY_SOCKET``, no ``$WATCHDOG_USEC``, or ``$WATCHDOG_PID`` names
        another process); otherwise runs until cancelled.
        """
        if self._watchdog_usec is None:
            return
        period = self._watchdog_usec / 2_000_000
        was_healthy = True
        while True:
            try:
                is_healthy = bool(healthy())
            except Exception:
                log.exception("the health check raised; treating the supervisor as unhealthy")
                is_healthy = False
            if is_healthy:
                if not was_healthy:
                    log.warning("healthy again: resuming systemd watchdog pings")
                self.watchdog()
            elif was_healthy:
                log.error(
                    "unhealthy: withholding systemd watchdog pings, systemd will restart us "
                    "within %.1f s unless health returns",
                    self._watchdog_usec / 1_000_000,
                )
            was_healthy = is_healthy
            await trio.sleep(period)

    def close(self) -> None:
        """Close the socket (a later send opens a new one)."""
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def __enter__(self) -> Notifier:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
