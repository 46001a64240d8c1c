"""SLURM looks for reports (actors/job/lookups.py): shared by reports received before a look
began, at most one per SLURM job per interval, at most ``rate`` a second overall. trio's mock
clock stands in for time, and drives the wall clock reports are stamped with too."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from actors.job.lookups import ReportLookups
from actors.slurm.messages import SlurmJob, SlurmUnavailable


class Slurm:
    """Answers every look (after ``delay`` seconds), remembering when each began."""

    def __init__(self, delay: float = 0.5, fail: bool = False) -> None:
        self.delay = delay
        self.fail = fail
        self.looks: list[tuple[int, float]] = []

    async def __call__(self, slurm_job_id: int) -> SlurmJob | None:
        self.looks.append((slurm_job_id, trio.current_time()))
        await trio.sleep(self.delay)
        if self.fail:
            raise SlurmUnavailable("ssh down")
        return SlurmJob(slurm_job_id, "0x" + "ab" * 32, "RUNNING")


def lookups(**settings: float) -> ReportLookups:
    return ReportLookups(wall=trio.current_time, **settings)


@pytest.fixture
def autojump_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


async def test_reports_received_before_a_look_share_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    slurm = Slurm()
    shared = lookups(per_job_interval=1.0)
    answers: list[float] = []

    async def check(since: float) -> None:
        _job, asked_at = await shared.slurm_job(slurm, 42, since=since)
        answers.append(asked_at)

    received = trio.current_time()
    async with trio.open_nursery() as nursery:
        for _ in range(20):
            nursery.start_soon(check, received)
    assert len(slurm.looks) == 1 and answers == [received] * 20
    statistics = shared.statistics()
    assert (statistics.asked, statistics.joined + statistics.reused) == (1, 19)
    # A report received later needs a newer look, no sooner than a second after the last.
    later = trio.current_time()
    _job, asked_at = await shared.slurm_job(slurm, 42, since=later)
    assert asked_at >= later and slurm.looks[1][1] - slurm.looks[0][1] >= 1.0


async def test_reports_arriving_during_a_look_wait_for_one_more_and_share_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    slurm = Slurm(delay=0.5)
    shared = lookups(per_job_interval=1.0)

    async def check_at(delay: float) -> None:
        await trio.sleep(delay)
        await shared.slurm_job(slurm, 42, since=trio.current_time())

    async with trio.open_nursery() as nursery:
        for n in range(30):
            nursery.start_soon(check_at, n * 0.1)  # over 3 s: the first look, then the queued
    assert len(slurm.looks) <= 4  # about one look per interval, not one per report


async def test_looks_at_different_slurm_jobs_are_limited_overall(
    autojump_clock: trio.testing.MockClock,
) -> None:
    slurm = Slurm(delay=0.0)
    shared = lookups(rate=2.0, burst=2)
    began = trio.current_time()
    async with trio.open_nursery() as nursery:
        for slurm_id in range(10):
            nursery.start_soon(lambda i=slurm_id: shared.slurm_job(slurm, i, since=began))
    times = sorted(when for _id, when in slurm.looks)
    assert len(times) == 10
    assert times[-1] - began >= (10 - 2) / 2.0 - 1e-9  # two at once, then two a second


async def test_a_failed_look_fails_every_report_that_joined_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    slurm = Slurm(fail=True)
    shared = lookups()
    failures: list[str] = []

    async def check() -> None:
        try:
            await shared.slurm_job(slurm, 42, since=0.0)
        except SlurmUnavailable as exc:
            failures.append(str(exc))

    async with trio.open_nursery() as nursery:
        for _ in range(3):
            nursery.start_soon(check)
    assert len(slurm.looks) == 1 and len(failures) == 3
    assert sum("joined" in failure for failure in failures) == 2
