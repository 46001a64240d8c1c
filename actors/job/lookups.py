"""SLURM lookups on behalf of reports: coalesced per SLURM job, rate-limited overall.

A report the reporter did not authenticate is believed only once SLURM's own record agrees
(:mod:`actors.job.evidence`), and each such look costs an SSH ``scontrol``. Anyone who reaches the
callback port can send reports, so the looks are bounded here, shared by every JobActor:

- **coalesced**: one answer serves every report received *before that look began* (it shows
  SLURM as it was after each of them was sent); a report that arrives while a look for its
  SLURM job is queued or under way waits for that look instead of starting another;
- **per SLURM job**: two looks at one SLURM job are at least ``per_job_interval`` apart;
- **overall**: at most ``rate`` looks per second across all jobs (bursts of ``burst``), queued
  fairly.

So a flood of forged reports for one job costs about one look per ``per_job_interval``, not one
per report. Answers are kept ``keep`` seconds.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import msgspec
import trio

from actors.slurm.messages import SlurmJob, SlurmUnavailable
from runtime.rates import KeyedBuckets, TokenBucket

__all__ = ["LookupStatistics", "ReportLookups"]

SlurmJobLookup = Callable[[int], Awaitable[SlurmJob | None]]


class _Answer:
    __slots__ = ("asked_at", "job")

    def __init__(self, job: SlurmJob | None, asked_at: float) -> None:
        self.job = job
        self.asked_at = asked_at


class _Look:
    """A look queued or under way; others join it until it has begun after their report."""

    __slots__ = ("done", "error", "started_at")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.started_at: float | None = None
        self.error: Exception | None = None


class LookupStatistics(msgspec.Struct, frozen=True):
    """Counters of :class:`ReportLookups` since it was made."""

    asked: int
    """Looks SLURM was asked for."""
    reused: int
    """Reports served by an answer already kept."""
    joined: int
    """Reports that waited for a look queued or under way."""


class ReportLookups:
    """SLURM's record of a SLURM job, as fresh as a report needs it (see the module docstring).

    ``wall`` is the clock reports are stamped with (``Report.received_at``, unix seconds).
    """

    def __init__(
        self,
        *,
        rate: float = 5.0,
        burst: float = 20.0,
        per_job_interval: float = 1.0,
        keep: float = 60.0,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._rate = rate
        self._burst = burst
        self._overall: TokenBucket | None = None  # made on first use (it reads trio's clock)
        self._per_job = KeyedBuckets(1.0 / per_job_interval, 1.0, capacity=4096)
        self._keep = keep
        self._wall = wall
        self._answers: dict[int, _Answer] = {}
        self._looks: dict[int, _Look] = {}
        self._asked = 0
        self._reused = 0
        self._joined = 0

    def statistics(self) -> LookupStatistics:
        return LookupStatistics(self._asked, self._reused, self._joined)

    async def slurm_job(
        self, ask: SlurmJobLookup, slurm_job_id: int, *, since: float
    ) -> tuple[SlurmJob | None, float]:
        """SLURM's record of ``slurm_job_id`` (None: SLURM does not know it) from a look begun
        at or after ``since`` (wall clock), and when that look began. ``ask`` performs a look;
        its errors (SLURM unreachable) are raised, to every report that joined it."""
        joined = False
        while True:
            kept = self._answers.get(slurm_job_id)
            if kept is not None and kept.asked_at >= since:
                if not joined:
                    self._reused += 1
                return kept.job, kept.asked_at
            look = self._looks.get(slurm_job_id)
            if look is not None and (look.started_at is None or look.started_at >= since):
                if not joined:
                    self._joined += 1
                joined = True
                await look.done.wait()
                if look.error is not None:
                    failed = f"the SLURM look this report joined failed: {look.error}"
                    raise SlurmUnavailable(failed)
                continue  # its answer is kept now (or it was cancelled: look again)
            return await self._look(ask, slurm_job_id)

    async def _look(self, ask: SlurmJobLookup, slurm_job_id: int) -> tuple[SlurmJob | None, float]:
        look = self._looks[slurm_job_id] = _Look()
        try:
            now = trio.current_time()
            if self._overall is None:
                self._overall = TokenBucket(self._rate, self._burst, now)
            per_job = self._per_job.bucket(str(slurm_job_id), now)
            await trio.sleep(max(per_job.reserve(now), self._overall.reserve(now)))
            look.started_at = self._wall()
            self._asked += 1
            try:
                job = await ask(slurm_job_id)
            except Exception as exc:
                look.error = exc
                raise
            self._keep_answer(slurm_job_id, _Answer(job, look.started_at))
            return job, look.started_at
        finally:
            if self._looks.get(slurm_job_id) is look:  # a newer one may be queued behind it
                del self._looks[slurm_job_id]
            look.done.set()

    def _keep_answer(self, slurm_job_id: int, answer: _Answer) -> None:
        self._answers[slurm_job_id] = answer
        oldest = answer.asked_at - self._keep
        for old in [key for key, kept in self._answers.items() if kept.asked_at < oldest]:
            del self._answers[old]
