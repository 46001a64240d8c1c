"""The reaper's rules (:func:`actors.reaper.reconcile`), row by row, and its settings."""

from __future__ import annotations

import datetime as dt

import msgspec
import pytest

from actors.grid import ClaimedJob, JobDefinition, JobStatus, OnChainJob, Report
from actors.job.machine import (
    CancelRequested,
    ChainApplied,
    ChainMovedOn,
    Job,
    LaunchLost,
    LostInSlurm,
    Phase,
    ScriptFetched,
    Submitted,
    new_job,
    transition,
)
from actors.reaper import (
    ChainAnswer,
    ChainUnknown,
    Ended,
    Missing,
    ReaperSettings,
    SlurmAnswer,
    SlurmUnknown,
    Tell,
    reconcile,
    settings_from_config,
    sort_reports,
)
from actors.slurm.messages import SlurmJob
from config.schema import Reaper

JOB_ID = "0x" + "cd" * 32
PROVIDER = "0x" + "22" * 20
OTHER = "0x" + "33" * 20
DEFINITION = JobDefinition(gpus=0, mem_per_cpu=100, cpus_per_task=1, ntasks=1,
                           batch_location_hash="h")  # fmt: skip
GRACE = 600.0
REPORT_GRACE = 10.0
LAUNCH_GRACE = 900.0


def claimed() -> Job:
    claim = ClaimedJob(JOB_ID, "0x" + "11" * 20, PROVIDER, 10, DEFINITION)
    return new_job(claim)[0]


def submitted() -> Job:
    job, _ = transition(claimed(), ScriptFetched("s"))
    return transition(job, Submitted(42))[0]


def running() -> Job:
    job, _ = transition(submitted(), Report(JOB_ID, 42, JobStatus.RUNNING))
    return transition(job, ChainApplied(JobStatus.RUNNING))[0]


def on_chain(status: JobStatus, provider: str = PROVIDER, last_error: str = "") -> ChainAnswer:
    return ChainAnswer(
        OnChainJob(
            job_id=JOB_ID, status=status, customer="0x" + "11" * 20, provider=provider,
            definition=DEFINITION, max_cost=1, final_cost=0, start=0, end=0, job_name="t",
            has_cancel_request=False, last_error=last_error, exit_code=0,
        )
    )  # fmt: skip


T0 = dt.datetime(2026, 1, 1, 12, 0, 0)


def slurm(
    state: str, slurm_id: int = 42, *, seconds: int = 150, exit_raw: int = 0, reason: str = "None"
) -> SlurmJob:
    ended = state in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL")
    return SlurmJob(
        slurm_job_id=slurm_id,
        name=JOB_ID,
        state=state,
        exit_code_raw=exit_raw,
        start=T0 if state != "PENDING" else None,
        end=T0 + dt.timedelta(seconds=seconds) if ended else None,
        elapsed_seconds=seconds,
        reason=reason,
    )


def decide(
    job: Job,
    slurm_view: SlurmAnswer | SlurmUnknown,
    chain_view: ChainAnswer | ChainUnknown,
    *,
    missing_for: float | None = None,
    report_waiting: bool = False,
    ended_for: float | None = REPORT_GRACE,
) -> list[Tell | Missing | Ended]:
    return reconcile(
        job,
        slurm_view,
        chain_view,
        provider=PROVIDER,
        missing_for=missing_for,
        lost_grace=GRACE,
        report_waiting=report_waiting,
        ended_for=ended_for,
        report_grace=REPORT_GRACE,
        launch_grace=LAUNCH_GRACE,
    )


# --- chain rules (first) -------------------------------------------------------------------------


@pytest.mark.parametrize("job", [claimed(), submitted(), running()], ids=lambda j: j.phase.value)
def test_a_job_assigned_to_another_provider_is_not_ours_any_more(job: Job) -> None:
    actions = decide(job, SlurmAnswer(()), on_chain(JobStatus.PENDING, provider=OTHER))
    assert actions == [Tell(ChainMovedOn(JobStatus.PENDING, "assigned to another provider"))]


@pytest.mark.parametrize(
    "status", [JobStatus.PANICKED, JobStatus.CANCELLED, JobStatus.FINISHED, JobStatus.FAILED]
)
def test_a_job_cold_on_chain_is_settled_whatever_slurm_says(status: JobStatus) -> None:
    actions = decide(running(), SlurmAnswer((slurm("RUNNING"),)), on_chain(status, last_error="x"))
    assert actions == [Tell(ChainMovedOn(status, f"settled on chain as {status.name} (x)"))]


def test_the_chain_rule_applies_before_submission_too() -> None:
    actions = decide(claimed(), SlurmUnknown("ssh down"), on_chain(JobStatus.PANICKED))
    assert actions == [Tell(ChainMovedOn(JobStatus.PANICKED, "settled on chain as PANICKED"))]


def test_hot_on_chain_and_unknown_chain_leave_slurm_rules_alone() -> None:
    ended = SlurmAnswer((slurm("COMPLETED", seconds=200),))
    expected = [Tell(Report(JOB_ID, 42, JobStatus.FINISHED, 200, 0))]
    assert decide(running(), ended, on_chain(JobStatus.RUNNING)) == expected
    assert decide(running(), ended, ChainUnknown("rpc down")) == expected
    assert decide(running(), ended, ChainAnswer(None)) == expected


# --- SLURM rules ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "status", "exit_raw"),
    [
        ("COMPLETED", JobStatus.FINISHED, 0),
        ("FAILED", JobStatus.FAILED, 3 << 8),
        ("TIMEOUT", JobStatus.OUT_OF_CREDITS, 0),
        ("CANCELLED", JobStatus.CANCELLED, 15),
        ("NODE_FAIL", JobStatus.FINISHED, 0),
    ],
)
@pytest.mark.parametrize("make", [submitted, running], ids=["SUBMITTED", "RUNNING"])
def test_an_end_slurm_knows_is_recovered_with_its_duration_and_exit_code(
    make: object, state: str, status: JobStatus, exit_raw: int
) -> None:
    assert callable(make)
    job: Job = make()
    view = SlurmAnswer((slurm(state, seconds=185, exit_raw=exit_raw),))
    assert decide(job, view, on_chain(JobStatus.RUNNING)) == [
        Tell(Report(JOB_ID, 42, status, 185, exit_raw))
    ]


def test_an_end_is_first_left_to_the_completion_report() -> None:
    ended = SlurmAnswer((slurm("TIMEOUT", seconds=70),))
    assert decide(running(), ended, on_chain(JobStatus.RUNNING), ended_for=None) == [Ended()]
    assert decide(running(), ended, on_chain(JobStatus.RUNNING), ended_for=9.9) == [Ended()]
    assert decide(running(), ended, on_chain(JobStatus.RUNNING), ended_for=10.0) == [
        Tell(Report(JOB_ID, 42, JobStatus.OUT_OF_CREDITS, 70, 0))
    ]


def test_a_started_job_whose_running_report_was_lost_gets_running() -> None:
    view = SlurmAnswer((slurm("RUNNING"),))
    assert decide(submitted(), view, on_chain(JobStatus.SCHEDULED)) == [
        Tell(Report(JOB_ID, 42, JobStatus.RUNNING))
    ]
    # RUNNING already on chain, or on its way: nothing to tell
    assert decide(running(), view, on_chain(JobStatus.RUNNING)) == []
    sending, _ = transition(submitted(), Report(JOB_ID, 42, JobStatus.RUNNING))
    assert decide(sending, view, on_chain(JobStatus.SCHEDULED)) == []


def test_a_job_waiting_in_slurm_is_left_alone() -> None:
    assert (
        decide(submitted(), SlurmAnswer((slurm("PENDING"),)), on_chain(JobStatus.SCHEDULED)) == []
    )


def test_a_cancel_slurm_has_not_honoured_is_asked_again() -> None:
    job, _ = transition(running(), CancelRequested())
    for state in ("RUNNING", "PENDING"):
        assert decide(job, SlurmAnswer((slurm(state),)), on_chain(JobStatus.RUNNING)) == [
            Tell(CancelRequested())
        ]


@pytest.mark.parametrize("job", [submitted(), running()], ids=lambda j: j.phase.value)
def test_a_job_slurm_never_launched_is_requeued_after_the_launch_grace(job: Job) -> None:
    stuck = slurm("RUNNING", seconds=int(LAUNCH_GRACE), reason="Prolog")
    (tell,) = decide(job, SlurmAnswer((stuck,)), on_chain(JobStatus.RUNNING))
    assert isinstance(tell, Tell) and isinstance(tell.event, LaunchLost)
    assert tell.event.slurm_job_id == 42
    assert "never launched" in tell.event.reason and "900 s" in tell.event.reason


@pytest.mark.parametrize(
    ("state", "seconds", "reason"),
    [
        ("RUNNING", int(LAUNCH_GRACE) - 1, "Prolog"),  # a prolog may take a while
        ("RUNNING", 10 * int(LAUNCH_GRACE), "None"),  # launched: a long job
        ("PENDING", 10 * int(LAUNCH_GRACE), "Prolog"),
        ("CONFIGURING", 10 * int(LAUNCH_GRACE), "Prolog"),  # nodes booting
    ],
)
def test_a_launch_is_lost_only_when_running_while_waiting_for_the_prolog_past_the_grace(
    state: str, seconds: int, reason: str
) -> None:
    found = slurm(state, seconds=seconds, reason=reason)
    assert decide(running(), SlurmAnswer((found,)), on_chain(JobStatus.RUNNING)) == []


def test_a_launch_grace_of_zero_never_requeues() -> None:
    stuck = slurm("RUNNING", seconds=10**6, reason="Prolog")
    actions = reconcile(running(), SlurmAnswer((stuck,)), on_chain(JobStatus.RUNNING),
                        provider=PROVIDER, missing_for=None, lost_grace=GRACE,
                        report_waiting=False, launch_grace=0.0)  # fmt: skip
    assert actions == []


def test_a_stuck_launch_whose_cancel_was_asked_is_cancelled_not_requeued() -> None:
    job, _ = transition(running(), CancelRequested())
    stuck = slurm("RUNNING", seconds=10**6, reason="Prolog")
    assert decide(job, SlurmAnswer((stuck,)), on_chain(JobStatus.RUNNING)) == [
        Tell(CancelRequested())
    ]


def test_slurm_that_cannot_be_asked_is_never_a_lost_job() -> None:
    for missing_for in (None, 0.0, GRACE * 10):
        actions = decide(
            running(),
            SlurmUnknown("ssh down"),
            on_chain(JobStatus.RUNNING),
            missing_for=missing_for,
        )
        assert actions == []


def test_a_job_slurm_does_not_know_is_missing_first_then_lost_after_the_grace() -> None:
    none = SlurmAnswer(())
    assert decide(running(), none, on_chain(JobStatus.RUNNING)) == [Missing()]
    assert decide(running(), none, on_chain(JobStatus.RUNNING), missing_for=GRACE - 1) == [
        Missing()
    ]
    lost = decide(running(), none, on_chain(JobStatus.RUNNING), missing_for=GRACE)
    assert lost == [Tell(LostInSlurm(f"SLURM knows no job named {JOB_ID} in any state"))]


def test_a_report_waiting_in_the_inbox_comes_before_any_loss() -> None:
    actions = decide(
        running(), SlurmAnswer(()), on_chain(JobStatus.RUNNING), missing_for=GRACE * 2,
        report_waiting=True,
    )  # fmt: skip
    assert actions == []


def test_other_slurm_jobs_with_our_name_are_not_ours_and_not_a_loss() -> None:
    view = SlurmAnswer((slurm("RUNNING", slurm_id=77),))
    assert decide(running(), view, on_chain(JobStatus.RUNNING), missing_for=GRACE * 2) == []


@pytest.mark.parametrize("phase", [Phase.CLAIMED, Phase.FETCHING, Phase.SUBMITTING])
def test_slurm_rules_wait_for_submission(phase: Phase) -> None:
    job = msgspec.structs.replace(claimed(), phase=phase)
    view = SlurmAnswer((slurm("COMPLETED"),))
    assert decide(job, view, on_chain(JobStatus.SCHEDULED), missing_for=GRACE * 2) == []


def test_ending_and_settled_jobs_are_left_to_their_actor() -> None:
    reporting, _ = transition(running(), Report(JOB_ID, 42, JobStatus.FINISHED, 120, 0))
    assert reporting.phase is Phase.REPORTING
    assert decide(reporting, SlurmAnswer(()), on_chain(JobStatus.RUNNING), missing_for=1e9) == []
    done = msgspec.structs.replace(running(), phase=Phase.DONE)
    assert decide(done, SlurmAnswer(()), on_chain(JobStatus.PANICKED), missing_for=1e9) == []


def test_a_lost_receipt_of_our_own_final_status_is_recognised() -> None:
    reporting, _ = transition(running(), Report(JOB_ID, 42, JobStatus.FINISHED, 120, 0))
    (tell,) = decide(reporting, SlurmAnswer(()), on_chain(JobStatus.FINISHED))
    assert isinstance(tell, Tell) and isinstance(tell.event, ChainMovedOn)
    job, effects = transition(reporting, tell.event)
    assert job.phase is Phase.DONE and effects == []  # applied, nothing cancelled


# --- settings ------------------------------------------------------------------------------------


def test_settings_come_from_the_reaper_section_of_the_configuration() -> None:
    assert settings_from_config(Reaper()) == ReaperSettings()
    tuned = settings_from_config(
        Reaper(
            interval=dt.timedelta(seconds=2.5),
            first_sweep_after=dt.timedelta(minutes=10),
            report_grace=dt.timedelta(seconds=5),
            lost_grace=dt.timedelta(seconds=30),
            launch_grace=dt.timedelta(0),
        )
    )
    assert tuned.launch_grace == 0.0 and ReaperSettings().launch_grace == 900.0
    assert (tuned.interval, tuned.first_sweep_after) == (2.5, 600.0)
    assert (tuned.report_grace, tuned.lost_grace) == (5.0, 30.0)
    assert (tuned.ask_timeout, tuned.concurrency) == (60.0, 16)


# --- the reports inbox: strays and reports still waiting -----------------------------------------

EXPIRY = 3600.0
NOW = 10_000.0


def waiting_report(slurm_id: int = 42, *, age: float = 5.0, job_id: str = JOB_ID) -> Report:
    return Report(job_id, slurm_id, JobStatus.FAILED, 60, 256, received_at=NOW - age)


@pytest.mark.parametrize(
    ("report", "jobs", "why"),
    [
        (waiting_report(job_id="0x" + "ee" * 32), {}, "a job we do not have"),
        (waiting_report(), {JOB_ID: msgspec.structs.replace(running(), phase=Phase.DONE)},
         "a settled job"),
        (waiting_report(999), {JOB_ID: running()}, "another SLURM job than the job's 42"),
        (waiting_report(age=EXPIRY), {JOB_ID: running()}, "has not applied it in 3600 s"),
        (waiting_report(age=NOW), {JOB_ID: running()}, "has not applied it"),  # never stamped
    ],
)  # fmt: skip
def test_reports_nobody_can_act_on_are_strays(
    report: Report, jobs: dict[str, Job], why: str
) -> None:
    strays, waiting = sort_reports([report], jobs, now=NOW, expiry=EXPIRY)
    assert waiting == {} and len(strays) == 1
    assert strays[0].report == report and why in strays[0].reason


def test_a_report_the_jobs_actor_can_still_apply_waits_with_its_age() -> None:
    before_submission = msgspec.structs.replace(claimed(), phase=Phase.SUBMITTING)
    reports = [waiting_report(age=50.0), waiting_report(age=7.0), waiting_report(77, age=1.0)]
    strays, waiting = sort_reports(
        reports, {JOB_ID: running(), "0x01": before_submission}, now=NOW, expiry=EXPIRY
    )
    assert waiting == {JOB_ID: 7.0}  # the youngest; the SLURM job 77 report is a stray
    assert [stray.report.slurm_job_id for stray in strays] == [77]
    # Before submission the job has no SLURM id yet: any report may be its own.
    early = waiting_report(77, job_id="0x01")
    assert sort_reports([early], {"0x01": before_submission}, now=NOW, expiry=EXPIRY) == (
        [],
        {"0x01": 5.0},
    )
