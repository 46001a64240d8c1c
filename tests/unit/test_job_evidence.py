"""What SLURM's records prove (actors/job/evidence.py): the cross-check of unauthenticated
reports and the reports recovered from SLURM."""

from __future__ import annotations

import datetime as dt

import msgspec
import pytest

from actors.grid import ClaimedJob, JobDefinition, JobStatus, Report
from actors.job.evidence import (
    Accept,
    Refuse,
    Wait,
    check_report,
    duration_seconds,
    needs_check,
    report_from_slurm,
    slurm_end_status,
)
from actors.job.machine import Job, Phase, ScriptFetched, Submitted, new_job, transition
from actors.slurm.messages import SlurmJob

JOB_ID = "0x" + "ef" * 32
T0 = dt.datetime(2026, 1, 1, 12, 0, 0)


def record(state: str, *, slurm_id: int = 7, name: str = JOB_ID, seconds: int = 125,
           exit_raw: int = 0) -> SlurmJob:  # fmt: skip
    return SlurmJob(
        slurm_job_id=slurm_id, name=name, state=state, exit_code_raw=exit_raw, start=T0,
        end=T0 + dt.timedelta(seconds=seconds), elapsed_seconds=seconds + 1,
    )  # fmt: skip


def job_in(phase: Phase) -> Job:
    definition = JobDefinition(0, 100, 1, 1, "h")
    job, _ = new_job(ClaimedJob(JOB_ID, "0x" + "11" * 20, "0x" + "22" * 20, 10, definition))
    job, _ = transition(job, ScriptFetched("s"))
    if phase is not Phase.SUBMITTING:
        job, _ = transition(job, Submitted(7))
    return msgspec.structs.replace(job, phase=phase)


@pytest.mark.parametrize(
    ("state", "status"),
    [
        ("COMPLETED", JobStatus.FINISHED),
        ("FAILED", JobStatus.FAILED),
        ("TIMEOUT", JobStatus.OUT_OF_CREDITS),
        ("CANCELLED", JobStatus.CANCELLED),
        ("CANCELLED by 0", JobStatus.CANCELLED),
        ("OUT_OF_MEMORY", JobStatus.FINISHED),
        ("NODE_FAIL", JobStatus.FINISHED),
    ],
)
def test_end_states_map_as_the_completion_plugin_does(state: str, status: JobStatus) -> None:
    assert slurm_end_status(state) is status


def test_duration_is_end_minus_start_else_elapsed() -> None:
    assert duration_seconds(record("COMPLETED", seconds=125)) == 125
    no_times = msgspec.structs.replace(record("COMPLETED"), start=None, end=None)
    assert duration_seconds(no_times) == 126


def test_reports_recovered_from_slurm() -> None:
    assert report_from_slurm(record("FAILED", seconds=185, exit_raw=768)) == Report(
        JOB_ID, 7, JobStatus.FAILED, 185, 768
    )
    assert report_from_slurm(record("RUNNING")) == Report(JOB_ID, 7, JobStatus.RUNNING)
    assert report_from_slurm(record("PENDING")) is None


@pytest.mark.parametrize(
    ("phase", "status", "slurm_id", "needed"),
    [
        (Phase.SUBMITTED, JobStatus.FINISHED, 7, True),
        (Phase.RUNNING, JobStatus.CANCELLED, 7, True),
        (Phase.RUNNING, JobStatus.RUNNING, 7, False),  # RUNNING on chain already: ignored
        (Phase.SUBMITTED, JobStatus.RUNNING, 7, True),  # it would be sent: SLURM must agree
        (Phase.RUNNING, JobStatus.FINISHED, 8, False),  # another SLURM job: the machine ignores
        (Phase.SUBMITTING, JobStatus.RUNNING, 9, True),  # it would tell the machine an id
        (Phase.REPORTING, JobStatus.FINISHED, 7, False),  # the end is decided already
    ],
)
def test_which_unauthenticated_reports_need_a_check(
    phase: Phase, status: JobStatus, slurm_id: int, needed: bool
) -> None:
    assert needs_check(job_in(phase), Report(JOB_ID, slurm_id, status, 60, 0)) is needed


def test_a_final_report_slurm_confirms_is_acted_on_with_slurms_numbers() -> None:
    forged_duration = Report(JOB_ID, 7, JobStatus.FINISHED, duration_seconds=999 * 60)
    verdict = check_report(JOB_ID, forged_duration, record("COMPLETED", seconds=125))
    assert verdict == Accept(Report(JOB_ID, 7, JobStatus.FINISHED, 125, 0))


@pytest.mark.parametrize(
    ("event", "slurm", "why"),
    [
        (Report(JOB_ID, 7, JobStatus.FINISHED, 60), None, "does not know"),
        (Report(JOB_ID, 7, JobStatus.FINISHED, 60), record("COMPLETED", name="0x" + "00" * 32),
         "is not job"),
        (Report(JOB_ID, 7, JobStatus.FINISHED, 60), record("RUNNING"), "RUNNING, not ended"),
        (Report(JOB_ID, 7, JobStatus.FINISHED, 60), record("FAILED"), "not FINISHED"),
        (Report(JOB_ID, 7, JobStatus.RUNNING), record("PENDING"), "not started"),
    ],
)  # fmt: skip
def test_reports_slurm_contradicts_are_refused(
    event: Report, slurm: SlurmJob | None, why: str
) -> None:
    verdict = check_report(JOB_ID, event, slurm)
    assert isinstance(verdict, Refuse) and why in verdict.reason


def test_a_job_still_completing_is_looked_at_again() -> None:
    verdict = check_report(JOB_ID, Report(JOB_ID, 7, JobStatus.FINISHED, 60), record("COMPLETING"))
    assert isinstance(verdict, Wait)


def test_a_running_report_slurm_confirms_is_accepted() -> None:
    assert check_report(JOB_ID, Report(JOB_ID, 7, JobStatus.RUNNING), record("RUNNING")) == Accept(
        Report(JOB_ID, 7, JobStatus.RUNNING)
    )
