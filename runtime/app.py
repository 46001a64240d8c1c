"""Run a supervision tree as a daemon: signals, control socket, systemd readiness and watchdog.

:func:`run_tree` is the whole life of the process around its root supervisor:

1. open the process's single asyncio loop (trio-asyncio) for the libraries that need one;
2. start the control socket (``<state>/control.sock``) serving ``tree`` plus any extra commands;
3. start the root supervisor and wait until every child has started;
4. tell systemd ``READY=1`` and keep pinging ``WATCHDOG=1`` while the root is healthy;
5. on SIGTERM or SIGINT, tell systemd ``STOPPING=1`` and stop the tree gracefully (children in
   reverse order, each within its own shutdown deadline) within ``stop_deadline`` seconds; a
   second signal, or the deadline, cancels everything at once.

The root failing (restart intensity exceeded) ends the process with exit code 1 so that systemd
(``Restart=on-failure``) starts it afresh; a graceful stop ends it with 0.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import trio
import trio_asyncio

from runtime.control import ControlServer, control_socket_path
from runtime.errors import RestartIntensityExceeded
from runtime.supervisor import Supervisor
from runtime.systemd import Notifier

__all__ = ["EXIT_FAILED", "EXIT_OK", "ControlHandlers", "run_tree"]

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1

#: Extra control-socket commands: name -> async handler taking the request's ``args``.
ControlHandlers = Mapping[str, Callable[[dict[str, Any]], Awaitable[Any]]]


async def run_tree(
    root: Supervisor,
    *,
    state_dir: Path,
    notifier: Notifier | None = None,
    stop_deadline: float = 30.0,
    control_handlers: ControlHandlers | None = None,
    signals: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGINT),
) -> int:
    """Run ``root`` until it is stopped by a signal (exit 0) or fails (exit 1)."""
    notifier = notifier if notifier is not None else Notifier.from_environ()
    control = ControlServer(control_socket_path(state_dir))

    async def tree(_args: dict[str, Any]) -> Any:
        return root.registry.snapshot_of(root.name)

    control.register("tree", tree)
    for name, handler in (control_handlers or {}).items():
        control.register(name, handler)

    outcome = EXIT_OK
    with trio.open_signal_receiver(*signals) as signal_stream:
        async with trio_asyncio.open_loop(), trio.open_nursery() as nursery:
            await nursery.start(control.serve)
            notifier.status("starting")
            root_done = trio.Event()

            async def run_root(task_status: trio.TaskStatus[None]) -> None:
                nonlocal outcome
                try:
                    await root.run(task_status=task_status)
                except RestartIntensityExceeded as error:
                    log.error("the supervision tree failed: %s", error)
                    notifier.status(f"failed: {error}")
                    outcome = EXIT_FAILED
                finally:
                    root_done.set()

            try:
                await nursery.start(run_root)
            except Exception as error:
                log.error(
                    "the supervision tree failed to start: %s: %s", type(error).__name__, error
                )
                notifier.status(f"failed to start: {error}")
                nursery.cancel_scope.cancel()
                return EXIT_FAILED
            notifier.ready()
            notifier.status("running")
            log.info("supervision tree %r is up", root.name)
            nursery.start_soon(notifier.watchdog_loop, root.healthy)
            nursery.start_soon(
                _stop_on_signals, signal_stream, root, root_done, notifier, stop_deadline, nursery
            )
            await root_done.wait()
            nursery.cancel_scope.cancel()
    notifier.stopping()
    return outcome


async def _stop_on_signals(
    signal_stream: Any,
    root: Supervisor,
    root_done: trio.Event,
    notifier: Notifier,
    stop_deadline: float,
    nursery: trio.Nursery,
) -> None:
    """First signal: graceful stop within the deadline. Second signal: stop at once."""
    graceful = False
    async for signum in signal_stream:
        name = signal.Signals(signum).name
        if not graceful:
            graceful = True
            log.info("%s: stopping the supervision tree (deadline %.0f s)", name, stop_deadline)
            notifier.stopping()
            notifier.status("stopping")
            root.request_stop()
            nursery.start_soon(_deadline, root_done, stop_deadline, nursery.cancel_scope)
        else:
            log.warning("%s again: stopping at once", name)
            nursery.cancel_scope.cancel()
            return


async def _deadline(root_done: trio.Event, seconds: float, scope: trio.CancelScope) -> None:
    with trio.move_on_after(seconds):
        await root_done.wait()
        return
    log.warning("the tree did not stop within %.0f s: cancelling it", seconds)
    scope.cancel()
