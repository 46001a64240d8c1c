"""Prometheus metrics of the supervisor, served on ``/metrics`` at ``metrics.listenAddress``.

Two kinds of figures:

**Events, counted where they happen.** A few adapters call the ``observe_*`` functions below:
the transaction sender for every transaction (``grid_chain_transactions_total{function,outcome}``
and ``grid_chain_transaction_seconds{function}``), the chain actor for every claim
(``grid_claims_total{queue,outcome}``) and the SSH pool for every command
(``grid_ssh_commands_total{command,outcome}``, ``grid_ssh_command_seconds{command}``). They live in
the process-wide :data:`REGISTRY`, so they survive actor restarts.

**State, read at scrape time.** :class:`SupervisorCollector` reads, in the trio thread, what the
tree already knows: the registry (``grid_actor_up``, ``grid_actor_restarts_total``,
``grid_actor_mailbox_depth``, ``grid_actor_messages_handled_total`` per actor; job actors are
summed under ``actor="job"`` to keep the label set small), the callback server's counters
(``grid_callback_reports_total{outcome}``), the chain actor's head, cursor and claiming state,
the drain switch, and, refreshed from the checkpoint store just before each scrape, the jobs by
phase (``grid_jobs{phase}``) and the reports waiting for the chain (``grid_reports_waiting``).

The HTTP server is a small trio server (:func:`serve_metrics`): ``GET /metrics`` (or ``/``)
answers the text exposition format, anything else 404. It runs beside the tree
(:func:`metrics_server`), never inside it, so a scrape never waits on an actor's mailbox.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import trio
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from runtime.logs import FIELDS, bind
from runtime.registry import ActorNode, Registry

if TYPE_CHECKING:
    from actors.drain import DrainSwitch
    from runtime.store import Store

__all__ = [
    "REGISTRY",
    "MetricsSource",
    "SupervisorCollector",
    "metrics_server",
    "observe_claim",
    "observe_ssh_command",
    "observe_transaction",
    "serve_metrics",
    "ssh_command_name",
]

log = logging.getLogger(__name__)

#: Every metric of the supervisor process (not prometheus_client's global default registry, so
#: nothing else a library registers leaks into ``/metrics``).
REGISTRY = CollectorRegistry(auto_describe=True)

_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)

TRANSACTIONS = Counter(
    "grid_chain_transactions",
    "Transactions sent to the meta-scheduler, by contract function and outcome "
    "(mined, reverted, refused in simulation, not_sent, unknown, rpc_error, cancelled, error)",
    ["function", "outcome"],
    registry=REGISTRY,
)
TRANSACTION_SECONDS = Histogram(
    "grid_chain_transaction_seconds",
    "Time from simulation to receipt (or failure) of a transaction, by contract function",
    ["function"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
CLAIMS = Counter(
    "grid_claims",
    "Claims sent, by queue (job, cancelling, top_up) and outcome (claimed, empty, failed)",
    ["queue", "outcome"],
    registry=REGISTRY,
)
SSH_COMMANDS = Counter(
    "grid_ssh_commands",
    "Commands run on the SLURM login node, by command and outcome "
    "(ok, exit_nonzero, lost, unavailable)",
    ["command", "outcome"],
    registry=REGISTRY,
)
SSH_COMMAND_SECONDS = Histogram(
    "grid_ssh_command_seconds",
    "Wall time of a command on the SLURM login node, including any connection set-up",
    ["command"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)


# --- hooks the adapters call --------------------------------------------------------------------


def observe_transaction(function: str, outcome: str, seconds: float) -> None:
    """One transaction ended (``function`` is the contract function, e.g. ``claimNextJob``)."""
    function = function or "unknown"
    TRANSACTIONS.labels(function, outcome).inc()
    TRANSACTION_SECONDS.labels(function).observe(max(seconds, 0.0))


def observe_claim(queue: str, outcome: str) -> None:
    """One claim ended: ``claimed``, ``empty`` (the queue had nothing) or ``failed``."""
    CLAIMS.labels(queue, outcome).inc()


def ssh_command_name(command_line: str) -> str:
    """The label of a shell command line: the program's base name (``/usr/bin/sbatch ...`` ->
    ``sbatch``), so the label set stays as small as the set of SLURM commands."""
    words = command_line.split(None, 1)
    if not words:
        return "empty"
    program = os.path.basename(words[0].strip("'\""))
    return program[:32] or "unknown"


def observe_ssh_command(command_line: str, outcome: str, seconds: float) -> None:
    """One command on the login node ended."""
    name = ssh_command_name(command_line)
    SSH_COMMANDS.labels(name, outcome).inc()
    SSH_COMMAND_SECONDS.labels(name).observe(max(seconds, 0.0))


# --- state read at scrape time ------------------------------------------------------------------


def actor_label(name: str) -> str:
    """Job actors (``job:0x...``) share one label value; every other actor keeps its name."""
    return "job" if name.startswith("job:") else name


def _walk(node: ActorNode) -> Iterable[ActorNode]:
    yield node
    for child in node.children:
        yield from _walk(child)


class MetricsSource:
    """Where the scrape-time figures come from: the tree's registry, the store, the switch."""

    def __init__(
        self,
        registry: Registry,
        store: Store | None = None,
        drain: DrainSwitch | None = None,
        *,
        root: str = "root",
        healthy: Callable[[], bool] | None = None,
    ) -> None:
        self.registry = registry
        self.store = store
        self.drain = drain
        self.root = root
        self.healthy = healthy
        self.jobs_by_phase: dict[str, int] = {}
        self.reports_waiting: int | None = None

    async def refresh(self) -> None:
        """Read what only the store knows (jobs by phase, reports waiting); errors are logged."""
        if self.store is None:
            return
        from actors.callbacks import REPORTS_BOX
        from actors.job.actor import JOBS_NAMESPACE
        from actors.job.machine import Job, Phase
        from runtime.store import StoreError

        try:
            jobs = await self.store.items(JOBS_NAMESPACE, Job)
            waiting = await self.store.count(REPORTS_BOX)
        except StoreError as exc:
            log.warning("metrics: cannot read the store: %s", exc)
            return
        counts = dict.fromkeys((phase.value for phase in Phase), 0)
        for _key, job in jobs:
            counts[job.phase.value] = counts.get(job.phase.value, 0) + 1
        self.jobs_by_phase = counts
        self.reports_waiting = waiting


class SupervisorCollector(Collector):
    """A prometheus collector over a :class:`MetricsSource` (call it from the trio thread)."""

    def __init__(self, source: MetricsSource) -> None:
        self.source = source

    def collect(self) -> Iterable[Metric]:
        source = self.source
        yield from self._actors(source.registry)
        yield from self._callbacks(source.registry)
        yield from self._chain(source.registry)
        jobs = GaugeMetricFamily(
            "grid_jobs", "Jobs in the checkpoint store by phase", labels=["phase"]
        )
        for phase, count in sorted(source.jobs_by_phase.items()):
            jobs.add_metric([phase], count)
        yield jobs
        if source.reports_waiting is not None:
            yield GaugeMetricFamily(
                "grid_reports_waiting",
                "Reports received from SLURM whose status is not on chain yet (store inbox)",
                value=source.reports_waiting,
            )
        if source.drain is not None:
            yield GaugeMetricFamily(
                "grid_drained",
                "1 while the operator has drained the supervisor (no new claims)",
                value=1 if source.drain.drained else 0,
            )
        if source.healthy is not None:
            yield GaugeMetricFamily(
                "grid_tree_healthy",
                "1 while the root supervisor is healthy (the systemd watchdog is fed)",
                value=1 if source.healthy() else 0,
            )

    def _actors(self, registry: Registry) -> Iterable[Metric]:
        up = GaugeMetricFamily("grid_actor_up", "Actors running, by actor", labels=["actor"])
        restarts = CounterMetricFamily(
            "grid_actor_restarts", "Restarts of actors and supervisors", labels=["actor"]
        )
        depth = GaugeMetricFamily(
            "grid_actor_mailbox_depth", "Messages waiting in mailboxes", labels=["actor"]
        )
        handled = CounterMetricFamily(
            "grid_actor_messages_handled",
            "Messages handled by the current incarnation of each actor",
            labels=["actor"],
        )
        totals: dict[str, list[int]] = {}
        job_actors = 0
        for tree in registry.snapshot():
            for node in _walk(tree):
                label = actor_label(node.name)
                if label == "job":
                    job_actors += 1
                row = totals.setdefault(label, [0, 0, 0, 0])
                row[0] += 1 if node.state == "running" else 0
                row[1] += node.restarts
                row[2] += node.mailbox_depth
                row[3] += node.handled
        for label, (running, restarted, waiting, done) in sorted(totals.items()):
            up.add_metric([label], running)
            restarts.add_metric([label], restarted)
            depth.add_metric([label], waiting)
            handled.add_metric([label], done)
        yield from (up, restarts, depth, handled)
        yield GaugeMetricFamily("grid_job_actors", "Live job actors", value=job_actors)

    def _callbacks(self, registry: Registry) -> Iterable[Metric]:
        from actors.callbacks import ACTOR_NAME, CallbackServerActor

        actor = registry.whereis(ACTOR_NAME)
        if not isinstance(actor, CallbackServerActor):
            return
        stats = actor.statistics_now()
        reports = CounterMetricFamily(
            "grid_callback_reports",
            "Reports from the SLURM side by outcome (received: new and stored; duplicates; "
            "ignored: CANCELLING; refused; forwarded to the job; left_for_recovery), "
            "since the callback server last started",
            labels=["outcome"],
        )
        for outcome in ("received", "duplicates", "ignored", "refused", "forwarded"):
            reports.add_metric([outcome], getattr(stats, outcome))
        reports.add_metric(["left_for_recovery"], stats.left_for_recovery)
        yield reports

    def _chain(self, registry: Registry) -> Iterable[Metric]:
        from actors.chain.actor import ChainActor

        actor = registry.whereis("chain")
        if not isinstance(actor, ChainActor):
            return
        facts = actor.describe()
        for key, name, text in (
            ("head_block", "grid_chain_head_block", "Latest block seen on the subscription"),
            ("cursor_block", "grid_chain_cursor_block", "Last block whose claim logs are handled"),
            ("pending_transactions", "grid_chain_transactions_in_flight", "Transactions unmined"),
        ):
            value = facts.get(key, "-")
            if value.isdigit():
                yield GaugeMetricFamily(name, text, value=int(value))
        yield GaugeMetricFamily(
            "grid_chain_claiming",
            "1 while the chain actor claims new work",
            value=1 if facts.get("claiming") == "on" else 0,
        )
        yield GaugeMetricFamily(
            "grid_chain_subscribed",
            "1 while the WebSocket subscription to heads and claim logs is up",
            value=1 if facts.get("connection", "").startswith("subscribed") else 0,
        )


# --- the HTTP endpoint --------------------------------------------------------------------------

_MAX_REQUEST_HEAD = 8192
_REQUEST_TIMEOUT = 10.0


async def _read_head(stream: trio.SocketStream) -> bytes:
    head = b""
    while b"\r\n\r\n" not in head and b"\n\n" not in head:
        chunk = await stream.receive_some(4096)
        if not chunk:
            break
        head += chunk
        if len(head) > _MAX_REQUEST_HEAD:
            break
    return head


def _response(status: str, body: bytes, content_type: str, head_only: bool) -> bytes:
    lines = [
        f"HTTP/1.1 {status}",
        f"Content-Type: {content_type}",
        f"Content-Length: {len(body)}",
        "Connection: close",
        "",
        "",
    ]
    return "\r\n".join(lines).encode() + (b"" if head_only else body)


async def serve_metrics(
    host: str,
    port: int,
    source: MetricsSource,
    *,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``/metrics`` on ``host:port`` until cancelled; ``task_status.started(port)`` once
    listening (``port`` 0 picks a free one). ``host`` "" means every interface."""
    FIELDS.set({**FIELDS.get(), "actor": "metrics"})  # this task's log lines name their source
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Chain(REGISTRY))
    registry.register(SupervisorCollector(source))

    async def answer(stream: trio.SocketStream) -> None:
        try:
            with trio.move_on_after(_REQUEST_TIMEOUT):
                head = await _read_head(stream)
                words = head.split(b"\r\n", 1)[0].split()
                method = words[0] if words else b""
                path = words[1].split(b"?", 1)[0] if len(words) > 1 else b""
                if method not in (b"GET", b"HEAD"):
                    reply = _response("405 Method Not Allowed", b"", "text/plain", False)
                elif path in (b"/metrics", b"/"):
                    await source.refresh()
                    reply = _response(
                        "200 OK", generate_latest(registry), CONTENT_TYPE_LATEST, method == b"HEAD"
                    )
                else:
                    reply = _response("404 Not Found", b"not found\n", "text/plain", False)
                await stream.send_all(reply)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass
        except Exception:  # a faulty collector must not take the endpoint down
            log.exception("metrics: the scrape failed")
        finally:
            await trio.aclose_forcefully(stream)

    listeners = await trio.open_tcp_listeners(port, host=host or None)
    bound = listeners[0].socket.getsockname()[1]
    log.info("metrics: serving /metrics on %s:%d", host or "*", bound)
    task_status.started(int(bound))
    await trio.serve_listeners(answer, listeners)


class _Chain(Collector):
    """Re-export another registry's metrics (the event counters) in a scrape registry."""

    def __init__(self, inner: CollectorRegistry) -> None:
        self._inner = inner

    def collect(self) -> Iterable[Metric]:
        return self._inner.collect()


@asynccontextmanager
async def metrics_server(
    listen: tuple[str, int] | None, source: MetricsSource
) -> AsyncIterator[int | None]:
    """Run :func:`serve_metrics` for the body of the ``async with``; yields the bound port.

    Nothing runs when ``listen`` is None (metrics off). An address that cannot be bound is
    logged as an error and the body runs without metrics: the supervisor's work (and its
    reports) matters more than its figures."""
    if listen is None:
        yield None
        return
    async with trio.open_nursery() as nursery:
        port: int | None
        try:
            port = await nursery.start(serve_metrics, listen[0], listen[1], source)
        except OSError as exc:
            with bind(actor="metrics"):
                log.error(
                    "metrics: cannot listen on %s:%d (%s); running without /metrics",
                    listen[0] or "*",
                    listen[1],
                    exc.strerror or exc,
                )
            port = None
        try:
            yield port
        finally:
            nursery.cancel_scope.cancel()
