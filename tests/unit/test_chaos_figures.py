"""The chaos benchmark's figures, from made-up timings: the delay from a job's end in SLURM to
its final status on chain, for every job, for those the reaper recovered, and from the
supervisor's restart for the jobs that ended while it was down."""

from __future__ import annotations

from actors.grid import JobStatus
from bench.chaos import Planned, Spread, delays, expected_fates, recovered_jobs

A, B, C, D = ("0x" + c * 64 for c in "abcd")


def test_a_spread_has_its_median_p95_and_max() -> None:
    spread = Spread.of([5, 1, 3, 2, 40])
    assert (spread.count, spread.median, spread.max) == (5, 3, 40)
    assert spread.p95 == 40
    assert Spread.of([]) == Spread() and str(Spread()) == "none"
    assert str(Spread.of([2.0, 4.0])) == "2: median 3 s, p95 4 s, max 4 s"


def test_delays_of_recovered_jobs_and_of_jobs_that_ended_while_down() -> None:
    chain_ends = {A: 110, B: 230, C: 305, D: 0}  # D never settled: left out
    slurm_ends = {A: 100, B: 200, C: 300, D: 300}
    downtimes = [(190.0, 220.0)]  # B ended while the supervisor was down
    figures = delays(chain_ends, slurm_ends, {A, B}, downtimes, first_start=50.0)
    assert figures.end_to_chain == Spread.of([10, 30, 5])
    assert figures.recovered_end_to_chain == Spread.of([10, 30])
    assert figures.down_restart_to_chain == Spread.of([10])
    # A was settled by the first process (started at 50) 10 s after its end; B by the one
    # started at 220, 10 s after that start
    assert figures.recovered_after_up == Spread.of([10, 10])


def test_the_reapers_recoveries_are_read_from_the_job_actors_log_lines() -> None:
    log = (
        f"2026-12-07 15:30:01 INFO job:{A} {A}: recovered Report(job_id='{A}', slurm_job_id=7, "
        "status=<JobStatus.FAILED: 6>, duration_seconds=5, exit_code=768)\n"
        f"2026-12-07 15:30:02 INFO job:{B} {B}: recovered Report(job_id='{B}', slurm_job_id=8, "
        "status=<JobStatus.RUNNING: 3>)\n"  # a lost prolog report: not the end
        f"2026-12-07 15:30:03 INFO job:{C} {C}: recovered ChainMovedOn(status=<JobStatus.PANICKED"
        ": 9>)\n"
    )
    assert recovered_jobs(log) == {A}  # C was settled by the chain, not recovered from SLURM


def _top_up(job_id: str, acted_at: float) -> Planned:
    return Planned("top-up", 0.0, "#!/bin/bash\nsleep 75\n", 1, 0, job_id=job_id, acted_at=acted_at)


def test_a_top_up_the_supervisor_could_not_act_on_in_time_is_judged_by_slurm_alone() -> None:
    planned = [
        _top_up(A, acted_at=1010),  # the supervisor stopped from 1005 until it claims at 1065
        _top_up(B, acted_at=2010),  # it was down 2020..2030 only: 40 s left to raise the limit
        Planned("finish", 0.0, "", 100, 0, job_id=C),
        _top_up(D, acted_at=0.0),  # never RUNNING on chain: the customer never topped it up
    ]
    starts = {A: 1000, B: 2000, C: 1000, D: 3000}
    unready = [(1005.0, 1065.0), (2020.0, 2030.0)]
    assert expected_fates(planned, starts, unready) == {
        A: None,
        B: JobStatus.FINISHED,
        C: JobStatus.FINISHED,
        D: None,
    }
