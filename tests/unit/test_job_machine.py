"""The job state machine and its recovery table, without I/O."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.customer_log import ADVICE, Failure
from actors.grid import ClaimedJob, JobDefinition, JobStatus, Report
from actors.job.machine import (
    RECOVERY,
    CancelInSlurm,
    CancelRequested,
    ChainApplied,
    ChainMovedOn,
    ChainRejected,
    Effect,
    Event,
    FetchScript,
    FindInSlurm,
    FoundInSlurm,
    Job,
    LaunchLost,
    LostInSlurm,
    Phase,
    RaiseTimeLimit,
    Refuse,
    Refused,
    RequeueInSlurm,
    ScriptFetched,
    ScriptUnavailable,
    SendStatus,
    Submit,
    SubmitRefused,
    Submitted,
    TimeLimitSet,
    TopUpRequested,
    WriteCustomerLog,
    new_job,
    recover,
    transition,
)

JOB_ID = "0x" + "ab" * 32


def reported(status: JobStatus, slurm_id: int, minutes: int = 0, exit_code: int = 0) -> Report:
    """A report from the SLURM side of this job, lasting ``minutes`` whole minutes."""
    return Report(JOB_ID, slurm_id, status, minutes * 60, exit_code)


CUSTOMER = "0x" + "11" * 20
PROVIDER = "0x" + "22" * 20


def claim(minutes: int = 10, **definition: int | str) -> ClaimedJob:
    fields: dict[str, int | str] = dict(
        gpus=0, mem_per_cpu=512, cpus_per_task=1, ntasks=1, batch_location_hash="abc"
    )
    fields.update(definition)
    return ClaimedJob(
        job_id=JOB_ID,
        customer=CUSTOMER,
        provider=PROVIDER,
        max_duration_minute=minutes,
        definition=JobDefinition(**fields),  # type: ignore[arg-type]
    )


def run(job: Job, *events: Event) -> tuple[Job, list[Effect]]:
    effects: list[Effect] = []
    for event in events:
        job, effects = transition(job, event)
    return job, effects


def submitted() -> Job:
    job, _ = new_job(claim())
    job, _ = run(job, ScriptFetched("#!/bin/sh\ntrue\n"), Submitted(42))
    return job


def test_happy_path_claim_to_finished() -> None:
    job, effects = new_job(claim(minutes=7))
    assert job.phase is Phase.FETCHING and effects == [FetchScript()]
    job, effects = transition(job, ScriptFetched("echo hi"))
    assert job.phase is Phase.SUBMITTING and effects == [Submit("echo hi", 7)]
    job, effects = transition(job, Submitted(42))
    assert job.phase is Phase.SUBMITTED and job.slurm_job_id == 42 and effects == []
    job, effects = transition(job, reported(JobStatus.RUNNING, 42))
    assert effects == [SendStatus(JobStatus.RUNNING)]
    job, effects = transition(job, ChainApplied(JobStatus.RUNNING))
    assert job.phase is Phase.RUNNING and job.chain_status is JobStatus.RUNNING
    job, effects = transition(job, reported(JobStatus.FINISHED, 42, 3, 0))
    assert job.phase is Phase.REPORTING
    assert effects == [SendStatus(JobStatus.FINISHED, 3, 0)]
    job, effects = transition(job, ChainApplied(JobStatus.FINISHED))
    assert job.phase is Phase.DONE and effects == []
    assert [p for p, _ in job.history][:3] == ["CLAIMED", "FETCHING", "SUBMITTING"]


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"minutes": 0}, "less than one minute"),
        ({"ntasks": 0}, "ntasks"),
        ({"cpus_per_task": 0}, "cpusPerTask"),
        ({"mem_per_cpu": 0}, "memPerCpu"),
        ({"batch_location_hash": ""}, "batch script"),
    ],
)
def test_unusable_job_is_failed_with_a_reason_never_submitted(
    changes: dict[str, int | str], reason: str
) -> None:
    minutes = int(changes.pop("minutes", 10))
    job, effects = new_job(claim(minutes, **changes))
    assert job.phase is Phase.FAILING
    assert len(effects) == 2 and isinstance(effects[1], SendStatus)
    assert effects[1].status is JobStatus.FAILED and reason in effects[1].last_error
    assert effects[1].last_error.endswith(ADVICE[Failure.DEFINITION])
    # the customer's log is asked for first, and ends with the same lastError
    assert isinstance(effects[0], WriteCustomerLog)
    assert effects[0].lines[-1] == effects[1].last_error
    job, effects = transition(job, ChainApplied(JobStatus.FAILED))
    assert job.phase is Phase.DONE


def test_missing_script_fails_the_job() -> None:
    job, _ = new_job(claim())
    job, effects = transition(job, ScriptUnavailable("expired"))
    assert job.phase is Phase.FAILING
    error = f"batch script unavailable: expired; {ADVICE[Failure.SCRIPT]}"
    assert effects == [
        WriteCustomerLog(
            (f"job {job.job_id} did not start:", "batch script unavailable: expired", error)
        ),
        SendStatus(JobStatus.FAILED, last_error=error),
    ]
    assert job.reason == error


def test_sbatch_refusal_refuses_the_job_on_chain() -> None:
    job, _ = new_job(claim())
    job, effects = run(job, ScriptFetched("x"), SubmitRefused("Requested node configuration"))
    error = f"SLURM refused the job: Requested node configuration; {ADVICE[Failure.SUBMISSION]}"
    assert job.phase is Phase.REFUSING and job.reason == error
    assert effects == [
        WriteCustomerLog(
            (f"job {job.job_id} did not start:", "Requested node configuration", error)
        ),
        Refuse(error),
    ]
    job, _ = transition(job, Refused())
    assert job.phase is Phase.DONE


def test_final_report_while_running_is_being_sent_is_queued_not_lost() -> None:
    job = submitted()
    job, effects = transition(job, reported(JobStatus.RUNNING, 42))
    job, effects = transition(job, reported(JobStatus.FAILED, 42, 1, 768))
    assert effects == [] and job.queued is not None
    job, effects = transition(job, ChainApplied(JobStatus.RUNNING))
    assert job.phase is Phase.REPORTING and effects == [SendStatus(JobStatus.FAILED, 1, 768)]


def test_missed_running_sends_running_first_then_the_final_status() -> None:
    job = submitted()
    job, effects = transition(job, reported(JobStatus.FINISHED, 42, 2, 0))
    assert effects == [SendStatus(JobStatus.FINISHED, 2, 0)]
    job, effects = transition(job, ChainRejected(JobStatus.FINISHED, "InvalidTransition", (2, 5)))
    assert effects == [SendStatus(JobStatus.RUNNING)]
    job, effects = transition(job, ChainApplied(JobStatus.RUNNING))
    assert job.phase is Phase.REPORTING and effects == [SendStatus(JobStatus.FINISHED, 2, 0)]
    job, effects = transition(job, ChainApplied(JobStatus.FINISHED))
    assert job.phase is Phase.DONE


def test_duplicate_running_reports_send_once() -> None:
    job = submitted()
    job, effects = transition(job, reported(JobStatus.RUNNING, 42))
    assert effects == [SendStatus(JobStatus.RUNNING)]
    for _ in range(3):  # one prolog per node of a multi-node job
        job, effects = transition(job, reported(JobStatus.RUNNING, 42))
        assert effects == []


def test_report_for_another_slurm_job_is_ignored() -> None:
    job = submitted()
    after, effects = transition(job, reported(JobStatus.FINISHED, 999, 1, 0))
    assert after == job and effects == []


def test_report_before_submission_is_ignored() -> None:
    job, _ = new_job(claim())
    after, effects = transition(job, reported(JobStatus.FINISHED, 5, 1, 0))
    assert after == job and effects == []


def test_report_during_submission_proves_the_submission() -> None:
    job, _ = new_job(claim())
    job, _ = transition(job, ScriptFetched("x"))
    job, effects = transition(job, reported(JobStatus.RUNNING, 77))
    assert job.phase is Phase.SUBMITTED and job.slurm_job_id == 77
    assert effects == [SendStatus(JobStatus.RUNNING)]


def test_cold_job_on_chain_cancels_what_still_runs() -> None:
    job = submitted()
    job, _ = transition(job, reported(JobStatus.RUNNING, 42))
    job, effects = transition(job, ChainRejected(JobStatus.RUNNING, "JobHotStatusOnly", (4,)))
    assert job.phase is Phase.DONE and effects == [CancelInSlurm(42)]


def test_cancel_request_cancels_in_slurm() -> None:
    job = submitted()
    job, effects = transition(job, CancelRequested())
    assert effects == [CancelInSlurm(42)] and job.cancel_requested
    job, effects = transition(job, reported(JobStatus.CANCELLED, 42, 1, 0))
    assert effects == [SendStatus(JobStatus.CANCELLED, 1, 0)]


def test_cancel_during_submission_cancels_once_submitted() -> None:
    job, _ = new_job(claim())
    job, _ = transition(job, ScriptFetched("x"))
    job, effects = transition(job, CancelRequested())
    assert effects == []
    job, effects = transition(job, Submitted(9))
    assert effects == [CancelInSlurm(9)]


def test_cancel_before_submission_cancels_on_chain() -> None:
    job, _ = new_job(claim())
    job, effects = transition(job, CancelRequested())
    assert job.phase is Phase.FAILING
    assert len(effects) == 1 and isinstance(effects[0], SendStatus)
    assert effects[0].status is JobStatus.CANCELLED


def test_top_up_raises_the_time_limit_of_a_submitted_job_to_an_absolute_target() -> None:
    job = submitted()  # claimed for 10 minutes
    job, effects = transition(job, TopUpRequested(15))
    assert effects == [RaiseTimeLimit(42, 25)] and job.limit_pending
    job, effects = transition(job, TopUpRequested(5))  # a second top-up adds up
    assert effects == [RaiseTimeLimit(42, 30)]
    job, effects = transition(job, TimeLimitSet(ok=True, detail="25 -> 30 min"))
    assert not job.limit_pending and effects == [] and job.time_limit_minutes == 30


def test_top_up_before_submission_goes_into_sbatch() -> None:
    job, _ = new_job(claim(minutes=10))
    job, effects = transition(job, TopUpRequested(7))
    assert effects == [] and not job.limit_pending
    job, effects = transition(job, ScriptFetched("s"))
    assert effects == [Submit("s", 17)]


def test_top_up_during_submission_is_checked_once_submitted() -> None:
    job, _ = new_job(claim(minutes=10))
    job, _ = transition(job, ScriptFetched("s"))
    job, effects = transition(job, TopUpRequested(5))
    assert effects == [] and job.limit_pending
    job, effects = transition(job, Submitted(8))
    assert effects == [RaiseTimeLimit(8, 15)]


@pytest.mark.parametrize("detail", ["the job has ended (COMPLETED)", "SLURM does not know it"])
def test_a_time_limit_slurm_will_not_raise_is_not_retried(detail: str) -> None:
    job, _ = transition(submitted(), TopUpRequested(3))
    job, effects = transition(job, TimeLimitSet(ok=False, detail=detail))
    assert not job.limit_pending and effects == [] and detail in job.history[-1][1]
    assert recover(job)[1] == []


def test_top_up_of_an_ending_job_changes_nothing() -> None:
    job, _ = transition(submitted(), reported(JobStatus.FAILED, 42, 1, 256))
    assert transition(job, TopUpRequested(5)) == (job, [])


def test_cancel_of_a_job_slurm_no_longer_knows_settles_cancelled_not_loops() -> None:
    job, effects = transition(submitted(), CancelRequested())
    assert effects == [CancelInSlurm(42)]
    job, effects = transition(job, LostInSlurm("SLURM no longer knows SLURM job 42"))
    assert job.phase is Phase.FAILING
    assert effects == [
        SendStatus(JobStatus.CANCELLED, 0, 0, "cancelled; SLURM no longer knows SLURM job 42")
    ]
    job, effects = transition(job, ChainApplied(JobStatus.CANCELLED))
    assert job.phase is Phase.DONE and effects == []


def test_a_job_slurm_certainly_lost_is_panicked() -> None:
    _, effects = transition(submitted(), LostInSlurm("no job of that name"))
    assert effects == [SendStatus(JobStatus.PANICKED, last_error="provider lost the job")]


def test_lost_is_ignored_once_the_end_is_known() -> None:
    job, _ = transition(submitted(), reported(JobStatus.RUNNING, 42))
    job, _ = transition(job, reported(JobStatus.FINISHED, 42, 3, 0))  # queued behind RUNNING
    assert transition(job, LostInSlurm("gone")) == (job, [])
    before_submission, _ = new_job(claim())
    assert transition(before_submission, LostInSlurm("gone")) == (before_submission, [])


def test_a_job_slurm_never_launched_is_requeued_under_the_same_slurm_id() -> None:
    running, _ = run(submitted(), reported(JobStatus.RUNNING, 42), ChainApplied(JobStatus.RUNNING))
    for job in (submitted(), running):
        after, effects = transition(job, LaunchLost(42, "SLURM never launched it"))
        assert effects == [RequeueInSlurm(42)]
        assert after.phase is job.phase and after.slurm_job_id == 42
        assert after.history[-1] == (
            job.phase.value,
            "requeue asked of SLURM: SLURM never launched it",
        )


def test_a_lost_launch_is_ignored_for_another_slurm_job_after_a_cancel_and_out_of_slurm() -> None:
    assert transition(submitted(), LaunchLost(41, "x")) == (submitted(), [])
    cancelling, _ = transition(submitted(), CancelRequested())
    assert transition(cancelling, LaunchLost(42, "x")) == (cancelling, [])
    before_submission, _ = new_job(claim())
    assert transition(before_submission, LaunchLost(42, "x")) == (before_submission, [])
    ending, _ = transition(submitted(), reported(JobStatus.FINISHED, 42, 3, 0))
    assert transition(ending, LaunchLost(42, "x"))[1] == []


def test_chain_moved_on_ends_the_job_and_cancels_what_runs() -> None:
    job, _ = transition(submitted(), reported(JobStatus.RUNNING, 42))
    job, _ = transition(job, ChainApplied(JobStatus.RUNNING))
    job, effects = transition(job, ChainMovedOn(JobStatus.PANICKED, "panicked by the oracle"))
    assert job.phase is Phase.DONE and effects == [CancelInSlurm(42)]
    assert job.chain_status is JobStatus.PANICKED


def test_chain_moved_on_during_submission_cancels_by_name() -> None:
    job, _ = new_job(claim())
    job, _ = transition(job, ScriptFetched("s"))
    job, effects = transition(job, ChainMovedOn(JobStatus.CANCELLED))
    assert job.phase is Phase.DONE and effects == [CancelInSlurm(None)]


def test_chain_moved_on_before_submission_has_nothing_to_cancel() -> None:
    job, _ = new_job(claim())
    job, effects = transition(job, ChainMovedOn(JobStatus.PANICKED))
    assert job.phase is Phase.DONE and effects == []


def test_chain_holding_our_own_status_is_a_lost_receipt() -> None:
    job, _ = transition(submitted(), reported(JobStatus.CANCELLED, 42, 2, 0))
    job, effects = transition(job, ChainMovedOn(JobStatus.CANCELLED))
    assert job.phase is Phase.DONE and effects == []  # nothing to cancel: it was our report


# --- the recovery table, row by row -----------------------------------------------------------


def test_every_phase_has_a_recovery_row() -> None:
    assert set(RECOVERY) == set(Phase)


def test_recover_claimed_checks_again() -> None:
    job, _ = new_job(claim())
    job = msgspec.structs.replace(job, phase=Phase.CLAIMED)
    assert recover(job)[1] == [FetchScript()]


def test_recover_fetching_fetches_again() -> None:
    job, _ = new_job(claim())
    assert recover(job) == (job, [FetchScript()])


def test_recover_submitting_looks_in_slurm_before_submitting_again() -> None:
    job, _ = new_job(claim(minutes=5))
    job, _ = transition(job, ScriptFetched("s"))
    assert recover(job) == (job, [FindInSlurm()])
    found, effects = transition(job, FoundInSlurm(31))
    assert found.phase is Phase.SUBMITTED and found.slurm_job_id == 31 and effects == []
    missing, effects = transition(job, FoundInSlurm(None))
    assert missing.phase is Phase.SUBMITTING and effects == [Submit("s", 5)]


@pytest.mark.parametrize("phase", [Phase.SUBMITTED, Phase.RUNNING])
def test_recover_waiting_job_with_nothing_pending_waits(phase: Phase) -> None:
    job = msgspec.structs.replace(submitted(), phase=phase)
    assert recover(job) == (job, [])


@pytest.mark.parametrize("phase", [Phase.SUBMITTED, Phase.RUNNING])
def test_recover_cancels_again_when_a_cancel_was_asked(phase: Phase) -> None:
    job, _ = transition(submitted(), CancelRequested())
    job = msgspec.structs.replace(job, phase=phase)
    assert recover(job)[1] == [CancelInSlurm(42)]


@pytest.mark.parametrize("phase", [Phase.SUBMITTED, Phase.RUNNING])
def test_recover_sets_a_pending_time_limit_again(phase: Phase) -> None:
    job, _ = transition(submitted(), TopUpRequested(4))
    job = msgspec.structs.replace(job, phase=phase)
    assert recover(job)[1] == [RaiseTimeLimit(42, 14)]


def test_recover_running_resends_a_pending_status() -> None:
    job, _ = transition(submitted(), reported(JobStatus.RUNNING, 42))
    assert recover(job)[1] == [SendStatus(JobStatus.RUNNING)]


def test_recover_reporting_resends_the_final_status() -> None:
    job, _ = transition(submitted(), reported(JobStatus.OUT_OF_CREDITS, 42, 9, 0))
    assert recover(job)[1] == [SendStatus(JobStatus.OUT_OF_CREDITS, 9, 0)]


def test_recover_failing_resends_failed() -> None:
    job, _ = new_job(claim(minutes=0))
    effects = recover(job)[1]
    assert len(effects) == 1 and isinstance(effects[0], SendStatus)
    assert effects[0].status is JobStatus.FAILED


def test_recover_failing_resends_a_cancellation() -> None:
    job, _ = new_job(claim())
    job, _ = transition(job, CancelRequested())
    assert recover(job)[1] == [
        SendStatus(JobStatus.CANCELLED, last_error="cancelled before submission")
    ]


def test_recover_refusing_refuses_again() -> None:
    job, _ = new_job(claim())
    job, _ = run(job, ScriptFetched("x"), SubmitRefused("no"))
    # the customer's log is not written twice
    assert recover(job)[1] == [Refuse(f"SLURM refused the job: no; {ADVICE[Failure.SUBMISSION]}")]


def test_recover_done_does_nothing() -> None:
    job = msgspec.structs.replace(submitted(), phase=Phase.DONE)
    assert recover(job) == (job, [])


def test_records_round_trip_through_the_store_encoding() -> None:
    job, _ = transition(submitted(), reported(JobStatus.RUNNING, 42))
    decoded = msgspec.json.decode(msgspec.json.encode(job), type=Job)
    assert decoded == job


# --- properties ---------------------------------------------------------------------------------

statuses = st.sampled_from(list(JobStatus))
events: st.SearchStrategy[Event] = st.one_of(
    st.builds(ScriptFetched, st.just("script")),
    st.builds(ScriptUnavailable, st.just("gone")),
    st.builds(Submitted, st.just(42)),
    st.builds(FoundInSlurm, st.sampled_from([None, 42])),
    st.builds(reported, statuses, st.sampled_from([42, 43]), st.integers(0, 9), st.integers(0, 9)),
    st.builds(ChainApplied, statuses),
    st.builds(
        ChainRejected,
        statuses,
        st.sampled_from(["InvalidTransition", "SameStatusError", "JobHotStatusOnly"]),
        st.tuples(st.sampled_from([2, 3, 4])),
    ),
    st.builds(CancelRequested),
    st.builds(TopUpRequested, st.integers(1, 5)),
    st.builds(TimeLimitSet, st.booleans()),
    st.builds(LostInSlurm, st.just("gone")),
    st.builds(ChainMovedOn, statuses),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(events, max_size=25))
def test_done_is_final_and_submit_needs_the_script(sequence: list[Event]) -> None:
    job, _ = new_job(claim())
    for event in sequence:
        before = job
        job, effects = transition(job, event)
        if before.phase is Phase.DONE:
            assert job == before and effects == []
        for effect in effects:
            if isinstance(effect, Submit):
                assert job.phase is Phase.SUBMITTING and job.script == effect.script
            if isinstance(effect, RaiseTimeLimit):
                assert effect.slurm_job_id == job.slurm_job_id
                assert effect.target_minutes == job.time_limit_minutes
            if isinstance(effect, CancelInSlurm):
                assert effect.slurm_job_id == job.slurm_job_id
        # every record the machine makes survives the store's encoding
        assert msgspec.json.decode(msgspec.json.encode(job), type=Job) == job


@settings(max_examples=300, deadline=None)
@given(st.lists(events, max_size=12), statuses.filter(lambda s: s.value in (4, 5, 6, 7)))
def test_a_final_report_after_submission_is_always_sent(
    noise: list[Event], final: JobStatus
) -> None:
    """Whatever happened before, once submitted, a final report gets sent unless the chain
    refused us for good (which ends the job)."""
    job = submitted()
    for event in noise:
        if isinstance(
            event, Report | ChainRejected | ChainMovedOn | LostInSlurm | Submitted | FoundInSlurm
        ):
            continue  # noise that cannot be a final report nor a refusal
        job, _ = transition(job, event)
    if job.phase is not Phase.SUBMITTED:
        return
    job, effects = transition(job, reported(final, 42, 1, 0))
    sent = [e for e in effects if isinstance(e, SendStatus)]
    assert sent == [SendStatus(final, 1, 0)] or job.queued is not None
