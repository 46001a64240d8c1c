"""Prometheus metrics of the supervisor, served on ``/metrics`` at ``metrics.listenAddress``.

Every figure is read at scrape time, in the trio thread, from what the tree already knows: the
actors' own frozen ``statistics()`` records (:meth:`runtime.registry.Registry.collect`), told
apart by their type, never by an actor's name, plus the drain switch and, refreshed from the
checkpoint store just before each scrape, the jobs by phase and the reports waiting. Nothing
pushes into this module (no adapter imports it), so it depends on the actors and never the
other way round.

- Every actor and supervisor: ``grid_actor_up``, ``grid_actor_restarts_total``,
  ``grid_actor_mailbox_depth``, ``grid_actor_messages_handled_total`` (job actors are summed
  under ``actor="job"`` to keep the label set small) and ``grid_job_actors``.
- :class:`~actors.chain.actor.ChainStatistics`: head, cursor, transactions in flight, claiming,
  subscribed; ``grid_claims_total{queue,outcome}``; and its sender's transactions,
  ``grid_chain_transactions_total{function,outcome}`` and ``grid_chain_transaction_seconds``.
- :class:`~actors.slurm.actor.SlurmStatistics`: ``grid_ssh_commands_total{command,outcome}`` and
  ``grid_ssh_command_seconds{command}``.
- :class:`~actors.callbacks.CallbackStatistics`: ``grid_callback_reports_total{outcome}``.
- The store: ``grid_jobs{phase}`` and ``grid_reports_waiting``; the switch: ``grid_drained``;
  the root: ``grid_tree_healthy``.

The event counts belong to the instance that counted them (:class:`runtime.statistics
.OutcomeTally`), so they start again from zero when that actor restarts, as a process's counters
do when it restarts; ``rate()`` and ``increase()`` allow for it.

The HTTP server is a small trio server (:func:`serve_metrics`): ``GET /metrics`` (or ``/``)
answers the text exposition format, anything else 404. It runs beside the tree
(:func:`metrics_server`), never inside it, so a scrape never waits on an actor's mailbox.
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, TypeVar

import trio
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from actors.callbacks import CallbackStatistics
from actors.chain.actor import ChainStatistics
from actors.slurm.actor import SlurmStatistics
from runtime.logs import FIELDS, bind
from runtime.registry import Registry
from runtime.statistics import Outcomes, Statistics

if TYPE_CHECKING:
    from actors.drain import DrainSwitch
    from runtime.store import Store

__all__ = [
    "MetricsSource",
    "SupervisorCollector",
    "actor_label",
    "metrics_server",
    "serve_metrics",
]

log = logging.getLogger(__name__)


def actor_label(name: str) -> str:
    """Job actors (``job:0x...``) share one label value; every other actor keeps its name."""
    return "job" if name.startswith("job:") else name


RecordT = TypeVar("RecordT", bound=Statistics)


def _first(records: Iterable[Statistics], kind: type[RecordT]) -> RecordT | None:
    """The first record of type ``kind`` (an actor is known by its record, not its name)."""
    return next((record for record in records if isinstance(record, kind)), None)


def _outcome_families(
    name: str,
    text: str,
    seconds_name: str,
    seconds_text: str,
    kind_label: str,
    outcomes: Sequence[Outcomes],
) -> Iterable[Metric]:
    """One counter by kind and outcome and, for the timed kinds, one histogram by kind."""
    counts = CounterMetricFamily(name, text, labels=[kind_label, "outcome"])
    seconds = HistogramMetricFamily(seconds_name, seconds_text, labels=[kind_label])
    for entry in outcomes:
        for outcome, count in entry.counts:
            counts.add_metric([entry.kind, outcome], count)
        timings = entry.timings
        if timings is not None:
            buckets = [
                ("+Inf" if math.isinf(bound) else f"{bound:g}", float(count))
                for bound, count in timings.cumulative()
            ]
            seconds.add_metric([entry.kind], buckets, timings.seconds)
    yield counts
    yield seconds


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
        from actors.job.machine import Phase
        from actors.records import JobRecords, ReportInbox
        from runtime.store import StoreError

        try:
            jobs = await JobRecords(self.store).all()
            waiting = await ReportInbox(self.store).count()
        except StoreError as exc:
            log.warning("metrics: cannot read the store: %s", exc)
            return
        counts = dict.fromkeys((phase.value for phase in Phase), 0)
        for job in jobs:
            counts[job.phase.value] = counts.get(job.phase.value, 0) + 1
        self.jobs_by_phase = counts
        self.reports_waiting = waiting


class SupervisorCollector(Collector):
    """A prometheus collector over a :class:`MetricsSource` (call it from the trio thread)."""

    def __init__(self, source: MetricsSource) -> None:
        self.source = source

    def collect(self) -> Iterable[Metric]:
        source = self.source
        records = source.registry.collect()
        yield from self._actors(records)
        yield from self._callbacks(records)
        yield from self._chain(records)
        yield from self._slurm(records)
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

    def _actors(self, records: Sequence[Statistics]) -> Iterable[Metric]:
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
        for record in records:
            label = actor_label(record.name)
            if label == "job":
                job_actors += 1
            row = totals.setdefault(label, [0, 0, 0, 0])
            row[0] += 1 if record.phase == "running" else 0
            row[1] += record.restarts
            row[2] += record.mailbox_depth
            row[3] += record.handled
        for label, (running, restarted, waiting, done) in sorted(totals.items()):
            up.add_metric([label], running)
            restarts.add_metric([label], restarted)
            depth.add_metric([label], waiting)
            handled.add_metric([label], done)
        yield from (up, restarts, depth, handled)
        yield GaugeMetricFamily("grid_job_actors", "Live job actors", value=job_actors)

    def _callbacks(self, records: Sequence[Statistics]) -> Iterable[Metric]:
        stats = _first(records, CallbackStatistics)
        if stats is None:
            return
        reports = CounterMetricFamily(
            "grid_callback_reports",
            "Reports from the SLURM side by outcome (received: new and stored; duplicates; "
            "ignored: CANCELLING; refused; forwarded to the job; left_for_recovery; "
            "unknown_job; settled; rate_limited; source_refused: a caller outside "
            "callbacks.allowedSources), since the callback server last started",
            labels=["outcome"],
        )
        for outcome in (
            *("received", "duplicates", "ignored", "refused", "forwarded"),
            *("unknown_job", "settled", "rate_limited", "source_refused"),
        ):
            reports.add_metric([outcome], getattr(stats, outcome))
        reports.add_metric(["left_for_recovery"], stats.left_for_recovery)
        yield reports

    def _chain(self, records: Sequence[Statistics]) -> Iterable[Metric]:
        chain = _first(records, ChainStatistics)
        yield from _outcome_families(
            "grid_chain_transactions",
            "Transactions sent to the meta-scheduler, by contract function and outcome "
            "(mined, reverted, refused in simulation or by our settings, not_sent, unknown, "
            "rpc_error, cancelled, error), since the chain actor last started",
            "grid_chain_transaction_seconds",
            "Time from simulation to receipt (or failure) of a transaction, by contract function",
            "function",
            chain.transactions.functions if chain is not None else (),
        )
        claims = CounterMetricFamily(
            "grid_claims",
            "Claims sent, by queue (job, cancelling, top_up) and outcome (claimed, empty, "
            "failed), since the chain actor last started",
            labels=["queue", "outcome"],
        )
        for entry in chain.claims if chain is not None else ():
            for outcome, count in entry.counts:
                claims.add_metric([entry.kind, outcome], count)
        yield claims
        if chain is None:
            return
        for name, text, value in (
            ("grid_chain_head_block", "Latest block seen on the subscription", chain.head_block),
            (
                "grid_chain_cursor_block",
                "Last block whose claim logs are handled",
                chain.cursor_block,
            ),
            (
                "grid_chain_transactions_in_flight",
                "Transactions unmined",
                chain.transactions.in_flight,
            ),
        ):
            if value is not None:
                yield GaugeMetricFamily(name, text, value=value)
        yield GaugeMetricFamily(
            "grid_chain_claiming",
            "1 while the chain actor claims new work",
            value=1 if chain.claiming else 0,
        )
        yield GaugeMetricFamily(
            "grid_chain_subscribed",
            "1 while the WebSocket subscription to heads and claim logs is up",
            value=1 if chain.subscribed else 0,
        )

    def _slurm(self, records: Sequence[Statistics]) -> Iterable[Metric]:
        stats = _first(records, SlurmStatistics)
        yield from _outcome_families(
            "grid_ssh_commands",
            "Commands run on the SLURM login node, by command and outcome "
            "(ok, exit_nonzero, lost, unavailable), since the SLURM actor last started",
            "grid_ssh_command_seconds",
            "Wall time of a command on the SLURM login node, including any connection set-up",
            "command",
            stats.commands if stats is not None else (),
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
