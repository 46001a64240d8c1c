"""The job ports' error tables, row by row (like the machine's), and what they do to a real job.

A row maps an adapter error to an answer event, "retry later" or "crash". The sbatch service
refusing a script (``SbatchRefused``: a customer's malformed ``batchLocationHash``) is the row
that matters most here: before the tables, ``fetch_script`` let it escape, so the JobActor
crashed and was restarted every 30 s forever; now the job fails on chain, once, with the reason.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from actors.chain.actor import ChainValueError
from actors.chain.revert import ContractError
from actors.chain.rpc import OutcomeUnknown, RequestNotSent, RpcError
from actors.customer_log import ADVICE, Failure
from actors.grid import JobStatus
from actors.grid_logger import GridLoggerUnavailable
from actors.job.actor import JobPorts
from actors.job.machine import (
    CustomerLogUnwritten,
    Event,
    Phase,
    ScriptUnavailable,
    SendStatus,
    WriteCustomerLog,
    new_job,
    transition,
)
from actors.job.ports import (
    CHAIN_ASK,
    LOGGER_WRITE,
    PORT_TABLES,
    SBATCH_FETCH,
    SLURM_ASK,
    AdapterPorts,
    PortTable,
    Verdict,
    verdict,
)
from actors.sbatch import (
    SbatchError,
    SbatchRefused,
    SbatchRequestInvalid,
    SbatchUnavailable,
    SbatchUntrusted,
    ScriptAccessDenied,
    ScriptNotFound,
)
from actors.slurm.messages import (
    CommandFailed,
    CommandLost,
    SlurmUnavailable,
    SshUnavailable,
    UnexpectedOutput,
)
from runtime.errors import ActorCrashed, ActorNotFound, ActorStopped, AskTimeout
from runtime.registry import Registry
from tests.job_ports_tree import JOB_ID, claim, job_tree

RETRY, CRASH = Verdict.RETRY, Verdict.CRASH
REFUSAL = "sbatch service refused job 0x5a (script '../x'): INVALID_ARGUMENT: malformed hash"
REFUSED_ERROR = f"batch script unavailable: {REFUSAL}; {ADVICE[Failure.SCRIPT]}"

ROWS: list[tuple[PortTable, Exception, Event | Verdict]] = [
    # the customer's log: every failure is an answer the machine ignores, never a crash
    (LOGGER_WRITE, GridLoggerUnavailable("refused"), CustomerLogUnwritten("refused")),
    # fetching the script: the service's answers are answers
    (SBATCH_FETCH, ScriptNotFound("no script"), ScriptUnavailable("no script")),
    (SBATCH_FETCH, ScriptAccessDenied("not yours"), ScriptUnavailable("not yours")),
    (SBATCH_FETCH, SbatchRefused(REFUSAL), ScriptUnavailable(REFUSAL)),
    (SBATCH_FETCH, SbatchRequestInvalid("cannot encode"), ScriptUnavailable("cannot encode")),
    (SBATCH_FETCH, SbatchUnavailable("unreachable"), RETRY),
    (SBATCH_FETCH, SbatchUntrusted("self-signed"), RETRY),
    (SBATCH_FETCH, SbatchError("CA file unreadable"), CRASH),
    (SBATCH_FETCH, RuntimeError("a bug"), CRASH),
    # asking the SLURM actor
    (SLURM_ASK, CommandLost("u", "cut"), RETRY),
    (SLURM_ASK, SlurmUnavailable("controller down"), RETRY),
    (SLURM_ASK, SshUnavailable("u", "auth", "no"), RETRY),
    (SLURM_ASK, CommandFailed("sbatch", 127, "sbatch: command not found"), CRASH),
    (SLURM_ASK, UnexpectedOutput("squeue said ?"), CRASH),
    (SLURM_ASK, AskTimeout("slurm", "SubmitJob", 180), RETRY),
    (SLURM_ASK, ActorCrashed("slurm", "SubmitJob", RuntimeError("bug")), RETRY),
    (SLURM_ASK, ActorNotFound("slurm"), RETRY),
    (SLURM_ASK, ActorStopped("slurm"), RETRY),
    (SLURM_ASK, ValueError("a bug"), CRASH),
    # asking the chain actor
    (CHAIN_ASK, RequestNotSent("eth_sendRawTransaction: refused"), RETRY),
    (CHAIN_ASK, OutcomeUnknown("eth_sendRawTransaction: timed out"), RETRY),
    (CHAIN_ASK, RpcError("eth_sendRawTransaction", -32000, "insufficient funds"), RETRY),
    (CHAIN_ASK, ContractError("Panic", (0x11,)), RETRY),
    (CHAIN_ASK, ChainValueError("not a job id"), CRASH),
    (CHAIN_ASK, AskTimeout("chain", "SetJobStatus", 300), RETRY),
    (CHAIN_ASK, ActorNotFound("chain"), RETRY),
    (CHAIN_ASK, ValueError("a bug"), CRASH),
]


@pytest.mark.parametrize(
    ("table", "error", "expected"), ROWS, ids=[f"{type(e).__name__}" for _, e, _ in ROWS]
)
def test_each_row(table: PortTable, error: Exception, expected: Event | Verdict) -> None:
    assert verdict(table, error) == expected


def test_every_port_has_its_table() -> None:
    ports = {
        name
        for name, member in inspect.getmembers(JobPorts, inspect.isfunction)
        if name != "close" and not name.startswith("_")
    }
    assert set(PORT_TABLES) == ports


def test_ports_that_return_no_event_have_no_answer_rows() -> None:
    for port in ("slurm_job", "requeue_in_slurm"):
        assert all(isinstance(row, Verdict) for row in PORT_TABLES[port].values())


def test_a_refused_script_fails_the_job_on_chain_with_the_reason() -> None:
    job, _ = new_job(claim("../x"))
    outcome = verdict(SBATCH_FETCH, SbatchRefused(REFUSAL))
    assert isinstance(outcome, ScriptUnavailable)
    job, effects = transition(job, outcome)
    assert job.phase is Phase.FAILING
    assert effects[1:] == [SendStatus(JobStatus.FAILED, last_error=REFUSED_ERROR)]


class RefusingSbatch:
    """Stands in for the sbatch client: the service refuses every script (and has named no
    grid logger)."""

    grid_logger_url = ""
    ssl_context = None

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.fetches = 0

    async def fetch(self, job: str, customer: str, batch_location_hash: str) -> str:
        self.fetches += 1
        raise self.error

    def close(self) -> None:
        pass


async def test_fetch_script_answers_a_refusal_instead_of_raising_it() -> None:
    sbatch = RefusingSbatch(SbatchRefused(REFUSAL))
    ports = AdapterPorts(Registry(), sbatch)  # type: ignore[arg-type]
    job, _ = new_job(claim("../x"))
    assert await ports.fetch_script(job) == ScriptUnavailable(REFUSAL)


async def test_fetch_script_raises_what_is_retried_later() -> None:
    error = SbatchUnavailable("unreachable after 5 attempts")
    ports = AdapterPorts(Registry(), RefusingSbatch(error))  # type: ignore[arg-type]
    job, _ = new_job(claim("abc"))
    with pytest.raises(SbatchUnavailable) as caught:
        await ports.fetch_script(job)
    assert caught.value is error


async def test_a_real_job_actor_fails_a_refused_job_once(tmp_path: Path) -> None:
    """The regression of issue 11: the jobs subtree, the real ports, the job failed once."""
    sbatch = RefusingSbatch(SbatchRefused(REFUSAL))
    async with job_tree(tmp_path, sbatch) as tree:  # type: ignore[arg-type]
        await tree.claimed(claim("../x"))
        await tree.settled(JOB_ID)
    assert tree.statuses(JOB_ID) == [(JobStatus.FAILED, REFUSED_ERROR)]
    assert sbatch.fetches == 1  # no crash, no restart, no second fetch


class DownLogger:
    """Stands in for the grid logger client: every write fails."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, str, str, tuple[str, ...]]] = []

    async def write(self, url: str, log_name: str, user: str, lines: tuple[str, ...]) -> None:
        self.asked.append((url, log_name, user, lines))
        raise GridLoggerUnavailable("grid logger 'x:1': connection refused")


async def test_no_grid_logger_named_yet_skips_the_customer_log() -> None:
    logger = DownLogger()
    ports = AdapterPorts(Registry(), RefusingSbatch(SbatchRefused(REFUSAL)), logger)  # type: ignore[arg-type]
    job, _ = new_job(claim("../x"))
    assert await ports.write_customer_log(job, WriteCustomerLog(("why",))) is None
    assert ports.logs_skipped == 1 and logger.asked == []


async def test_a_grid_logger_that_fails_is_an_answer_the_job_ignores() -> None:
    sbatch = RefusingSbatch(SbatchRefused(REFUSAL))
    sbatch.grid_logger_url = "x:1"
    logger = DownLogger()
    ports = AdapterPorts(Registry(), sbatch, logger)  # type: ignore[arg-type]
    job, _ = new_job(claim("../x"))
    outcome = await ports.write_customer_log(job, WriteCustomerLog(("why",)))
    assert outcome == CustomerLogUnwritten("grid logger 'x:1': connection refused")
    assert logger.asked == [("x:1", job.job_id, job.claim.customer, ("why",))]
    assert transition(job, outcome) == (job, [])
