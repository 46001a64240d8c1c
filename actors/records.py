"""The job records and the job inboxes of the checkpoint store, and their one owner: this module.

Three places in the store hold what the supervisor knows about its jobs:

==================  ===========================================================================
``jobs``            records: one :class:`~actors.job.machine.Job` per claimed job, keyed by its id
``reports``         inbox: reports from the SLURM side (:class:`~actors.grid.Report`) not applied
                    yet, keyed by :func:`report_key`
``job-requests``    inbox: the customer's claimed cancellations and top-ups not applied yet
                    (:class:`StoredRequest`), keyed by :func:`cancel_key` / :func:`top_up_key`
==================  ===========================================================================

No other module names them: the callback server, the dispatcher, every JobActor, the reaper,
metrics and the control commands read and write through the typed facades here
(:class:`JobRecords`, :class:`ReportInbox`, :class:`RequestInbox`). They hold no state of their
own (each call is one store request), so any actor builds its own over the process's store.

The life of a report in the inbox:

1. **offered** by the callback server, only for a job that has a record and is not settled (a
   report for a job we do not have is refused without a write); identical reports share a key,
   so a repeat is stored once;
2. **acknowledged** by the job's actor *in the same transaction as the record it produced*
   (:meth:`JobRecords.save`): from then on the record carries its effect (the status being
   sent, or the one queued behind it), and the key stays behind as a tombstone, so a reporter's
   late repeat is answered but not applied twice. A report the machine ignores (another SLURM
   job, a duplicate, a job already ending) is acknowledged the same way;
3. or **discarded** when SLURM contradicts it (:meth:`ReportInbox.discard`): a forgery leaves
   no tombstone, so it cannot take the key of the genuine report carrying the same fields;
4. or acknowledged by the reaper when nobody can act on it (a stray: the job is unknown or
   settled, it names another SLURM job, or it is older than the reaper's expiry).

Requests are offered by the dispatcher before it answers the chain actor, and acknowledged by
the job's actor together with the record that applies them.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from actors.grid import Report
from actors.job.machine import CancelRequested, Job, Phase, TopUpRequested
from runtime.store import Batch, Store

__all__ = [
    "JOBS_NAMESPACE",
    "REPORTS_BOX",
    "REQUESTS_BOX",
    "JobRecords",
    "ReportInbox",
    "RequestInbox",
    "StoredRequest",
    "cancel_key",
    "report_key",
    "top_up_key",
]

#: Store namespace of the job records (key: the job id).
JOBS_NAMESPACE = "jobs"

#: Store inbox of the reports not applied yet (keys start with ``<job id>/``).
REPORTS_BOX = "reports"

#: Store inbox of the customer's claimed requests (cancel, top-up) not applied yet; keys start
#: with ``<job id>/``, as the reports' do.
REQUESTS_BOX = "job-requests"


class StoredRequest(msgspec.Struct, frozen=True):
    """A claimed cancellation or top-up, as kept in :data:`REQUESTS_BOX`."""

    job_id: str
    event: CancelRequested | TopUpRequested


def report_key(report: Report) -> str:
    """The inbox key of a report: identical reports (same job, SLURM job, status, duration and
    exit code) share it, whoever sent them; any difference (a forged duration) gets its own."""
    return (
        f"{report.job_id}/{report.slurm_job_id}/{report.status.name.lower()}/"
        f"{report.duration_seconds}/{report.exit_code}"
    )


def cancel_key(job_id: str, block_number: int) -> str:
    """The inbox key of the cancellation claimed in ``block_number``."""
    return f"{job_id}/cancel/{block_number}"


def top_up_key(job_id: str, block_number: int, extra_minutes: int) -> str:
    """The inbox key of the top-up claimed in ``block_number``."""
    return f"{job_id}/top-up/{block_number}/{extra_minutes}"


def _prefix(job_id: str) -> str:
    return f"{job_id}/"


class JobRecords:
    """The ``jobs`` namespace: one :class:`~actors.job.machine.Job` per claimed job."""

    __slots__ = ("_store",)

    def __init__(self, store: Store) -> None:
        self._store = store

    async def get(self, job_id: str) -> Job | None:
        """The record of ``job_id``, None if we never claimed it."""
        return await self._store.get(JOBS_NAMESPACE, job_id, Job)

    async def all(self) -> list[Job]:
        """Every record, settled ones included, by job id."""
        return [job for _key, job in await self._store.items(JOBS_NAMESPACE, Job)]

    async def live(self) -> list[Job]:
        """The records not settled yet (phase other than DONE), by job id."""
        return [job for job in await self.all() if job.phase is not Phase.DONE]

    async def put(self, job: Job) -> None:
        """Write ``job``'s record (a claim's first record, or a new phase)."""
        await self._store.put(JOBS_NAMESPACE, job.job_id, job)

    async def save(
        self, job: Job, *, report: Report | None = None, request_key: str | None = None
    ) -> None:
        """Write ``job``'s record *and* acknowledge the report or request it applied, in one
        transaction: a crash at any moment neither loses the input nor applies it twice."""
        async with self._store.transaction() as tx:
            tx.put(JOBS_NAMESPACE, job.job_id, job)
            if report is not None:
                tx.ack(REPORTS_BOX, report_key(report))
            if request_key is not None:
                tx.ack(REQUESTS_BOX, request_key)

    async def finish(self, job_id: str) -> int:
        """Acknowledge every report and request of a settled job still waiting; how many."""
        reports = await ReportInbox(self._store).of_job(job_id)
        requests = await RequestInbox(self._store).of_job(job_id)
        if not reports and not requests:
            return 0
        async with self._store.transaction() as tx:
            for report in reports:
                tx.ack(REPORTS_BOX, report_key(report))
            for key, _request in requests:
                tx.ack(REQUESTS_BOX, key)
        return len(reports) + len(requests)


class ReportInbox:
    """The ``reports`` inbox: reports from the SLURM side not applied yet, in arrival order."""

    __slots__ = ("_store",)

    def __init__(self, store: Store) -> None:
        self._store = store

    async def offer(self, report: Report) -> bool:
        """Store ``report``; False (and no change) when a report with its key was stored before
        (a repeat: pending, or applied and acknowledged)."""
        return await self._store.offer(REPORTS_BOX, report_key(report), report)

    async def pending(self, *, limit: int | None = None) -> list[Report]:
        """The reports waiting, oldest first (the first ``limit`` of them)."""
        found = await self._store.pending(REPORTS_BOX, Report, limit=limit)
        return [report for _key, report in found]

    async def of_job(self, job_id: str) -> list[Report]:
        """The reports waiting for ``job_id``, oldest first."""
        found = await self._store.pending(REPORTS_BOX, Report, prefix=_prefix(job_id))
        return [report for _key, report in found if report.job_id == job_id]

    async def count(self) -> int:
        """How many reports wait."""
        return await self._store.count(REPORTS_BOX)

    async def discard(self, report: Report) -> bool:
        """Forget a report SLURM contradicts, leaving no tombstone (the genuine report with the
        same fields may still come); whether it was there."""
        return await self._store.discard(REPORTS_BOX, report_key(report))

    async def ack(self, reports: Iterable[Report]) -> int:
        """Acknowledge ``reports`` (strays nobody can act on) in one transaction; how many were
        still waiting."""
        batch = Batch()
        for report in reports:
            batch.ack(REPORTS_BOX, report_key(report))
        return sum(await self._store.commit(batch))


class RequestInbox:
    """The ``job-requests`` inbox: claimed cancellations and top-ups not applied yet."""

    __slots__ = ("_store",)

    def __init__(self, store: Store) -> None:
        self._store = store

    async def offer(self, key: str, request: StoredRequest) -> bool:
        """Store ``request`` under ``key``; False when it was stored before (a replayed log)."""
        return await self._store.offer(REQUESTS_BOX, key, request)

    async def of_job(self, job_id: str) -> list[tuple[str, StoredRequest]]:
        """(key, request) of every request waiting for ``job_id``, oldest first."""
        found = await self._store.pending(REQUESTS_BOX, StoredRequest, prefix=_prefix(job_id))
        return [(key, request) for key, request in found if request.job_id == job_id]
