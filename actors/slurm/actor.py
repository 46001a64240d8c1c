"""SlurmActor: the supervisor's one door to SLURM, over pooled SSH.

It answers the asks listed in :mod:`actors.slurm.messages` (``SubmitJob``, ``FindJobs``,
``JobInfo``, ``Cancel``, ``Requeue``, ``ExtendTimeLimit``, ``Discover``, ``HealthCheck``; for the
supervisor's own jobs ``SubmitBatch`` and ``ReadOutput``). Commands are built by
the pure functions of :mod:`actors.slurm.commands` and run by :class:`actors.slurm.ssh.SshPool`:
submissions as the customer's UNIX user, everything else as the admin user.

Concurrency. SSH commands take tens or hundreds of milliseconds, so the actor serves its asks
concurrently (:mod:`runtime.actor`'s ``concurrency``): each request runs in its own task of the
actor, at most ``max_in_flight`` at once; beyond that the mailbox applies backpressure. Callers
write ``reply = await slurm.ask(SubmitJob(...), timeout=...)`` (directly or through an ``ActorRef``)
and get the reply value, or the request's own :class:`~actors.slurm.messages.SlurmError`
(``CommandLost``, ``SshUnavailable``, ...) raised in *their* task: ``SlurmError`` is the actor's
``answered_errors``, so it is noted in ``statistics()`` (``last_error``, and its text as
``slurm_error``) and never crashes the actor: the pool behind it stays warm. Any other exception
is a bug: it crashes the actor, and every asker waiting gets ``ActorCrashed``. The ``ask``
overloads only type the reply of each request for callers holding the actor itself.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import ClassVar, overload

import msgspec
import trio

from actors.grid import address, job_id
from actors.slurm import commands as cmd
from actors.slurm.messages import (
    Cancel,
    CancelSent,
    CommandFailed,
    CommandLost,
    Discover,
    ExtendTimeLimit,
    FindJobs,
    Health,
    HealthCheck,
    JobInfo,
    JobSubmitted,
    Node,
    OutputRead,
    ReadOutput,
    Requeue,
    Requeued,
    SlurmError,
    SlurmJob,
    SlurmRequest,
    SlurmUnavailable,
    SubmissionRefused,
    SubmitBatch,
    SubmitJob,
    TimeLimitNotRaised,
    TimeLimitRaised,
)
from actors.slurm.ssh import CommandResult, ConnectionStatus, SshPool, SshSettings
from runtime.actor import DEFAULT_ASK_TIMEOUT, Actor, ActorStatistics
from runtime.statistics import Outcomes

__all__ = ["SlurmActor", "SlurmStatistics", "default_customer_user"]

_UNIX_USER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,255}")
# squeue --name takes a comma-separated list; the parsers need a name without | or line break
_JOB_NAME = re.compile(r"[^,|\s\x00-\x1f\x7f]{1,200}")


def default_customer_user(customer: str) -> str:
    """The grid's convention: the customer's lowercase ``0x`` address is its UNIX login."""
    return address(customer)


class SlurmStatistics(ActorStatistics, frozen=True, kw_only=True):
    """The SLURM actor now: its submissions, its connections and the commands they ran
    (``in_flight``, of the common part, counts the requests being served)."""

    partition: str
    submitted: int
    refused: int
    lost: int
    """Submissions whose outcome is unknown (the command was lost on its way)."""
    submit_seconds_last: float
    submit_seconds_mean: float
    sacct_available: bool | None
    """Whether SLURM accounting answers (None: not asked yet)."""
    slurm_error: str
    """The last SLURM-side error, in SLURM's words ("" if none)."""
    connections: tuple[ConnectionStatus, ...]
    commands: tuple[Outcomes, ...]
    """Commands run on the login node, by program and outcome, timed."""

    def facts(self) -> dict[str, str]:
        connections = " ".join(
            f"{c.user[:12]}={c.state}({c.channels_in_use})" for c in self.connections
        )
        facts = {
            "partition": self.partition,
            "in_flight": str(self.in_flight),
            "submitted": f"{self.submitted} (mean {self.submit_seconds_mean * 1000:.0f} ms)",
            "connections": connections or "none",
        }
        if self.slurm_error:
            facts["last_error"] = self.slurm_error[:200]
        return facts


class SlurmActor(Actor[SlurmRequest, object]):
    """Runs SLURM commands over SSH for the rest of the supervisor (registered as "slurm")."""

    answered_errors: ClassVar[tuple[type[Exception], ...]] = (SlurmError,)

    __slots__ = (
        "_accounting",
        "_admin",
        "_customer_user",
        "_lost",
        "_output_dir",
        "_partition",
        "_paths",
        "_pool",
        "_public_address",
        "_refused",
        "_slurm_error",
        "_submit_last",
        "_submit_timeout",
        "_submit_total",
        "_submitted",
        "_timeout",
        "_workdir",
    )

    def __init__(
        self,
        *,
        host: str,
        port: int = 22,
        admin_user: str,
        private_key: bytes,
        known_hosts: str | None = None,
        check_host_key: bool = True,
        partition: str,
        public_address: str,
        commands: cmd.CommandPaths | None = None,
        customer_user: Callable[[str], str] = default_customer_user,
        output_dir: str = "/tmp",
        workdir: str | None = "/tmp",
        command_timeout: float = 30.0,
        submit_timeout: float = 60.0,
        max_in_flight: int = 64,
        max_channels: int = 10,
        name: str = "slurm",
    ) -> None:
        super().__init__(name, concurrency=max_in_flight)
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", partition):
            raise ValueError(f"not a partition name: {partition!r}")
        self._pool = SshPool(
            SshSettings(
                host=host,
                port=port,
                known_hosts=known_hosts,
                check_host_key=check_host_key,
                max_channels=max_channels,
            ),
            private_key,
        )
        self._admin = admin_user
        self._partition = partition
        self._public_address = public_address
        self._paths = commands or cmd.CommandPaths()
        self._customer_user = customer_user
        self._output_dir = output_dir
        self._workdir = workdir
        self._timeout = command_timeout
        self._submit_timeout = submit_timeout
        self._accounting: bool | None = None  # unknown until sacct is first tried
        self._submitted = 0
        self._refused = 0
        self._lost = 0
        self._submit_total = 0.0
        self._submit_last = 0.0
        self._slurm_error = ""

    @classmethod
    def from_config(cls, slurm: object, *, public_address: str, **extra: object) -> SlurmActor:
        """Build from ``cfg.slurm`` (:class:`config.schema.Slurm`) and ``cfg.grpc.public_address``;
        ``extra`` passes any other keyword of ``__init__``."""
        from config.schema import Slurm

        if not isinstance(slurm, Slurm):
            raise TypeError("from_config expects cfg.slurm")
        ssh = slurm.ssh
        known = str(ssh.known_hosts_file) if ssh.known_hosts_file is not None else None
        paths = cmd.CommandPaths(**msgspec.structs.asdict(slurm.commands))
        return cls(
            host=ssh.address.host,
            port=ssh.address.port,
            admin_user=ssh.admin_user,
            private_key=ssh.read_private_key(),
            known_hosts=known,
            check_host_key=not ssh.disable_host_key_check,
            partition=slurm.partition,
            public_address=public_address,
            commands=paths,
            output_dir=str(slurm.job_output_folder),
            customer_user=slurm.customer_users.user_for,
            **extra,  # type: ignore[arg-type]
        )

    @property
    def pool(self) -> SshPool:
        return self._pool

    # --- the actor's life -----------------------------------------------------------------------

    async def started(self) -> None:
        self.spawn(self._upkeep)

    async def _upkeep(self) -> None:
        try:
            while True:
                await trio.sleep(60.0)
                await self._pool.close_idle()
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(2.0):
                await self._pool.aclose()

    async def handle(self, message: SlurmRequest) -> object:
        """Run ``message``'s work (in its own task: the runtime serves asks concurrently).
        Its :class:`SlurmError` is the asker's answer, and kept for ``statistics()``."""
        try:
            return await self._answer(message)
        except SlurmError as error:
            self._slurm_error = str(error)
            raise

    @overload
    async def ask(
        self,
        message: SubmitJob,
        *,
        timeout: float = ...,  # noqa: ASYNC109
    ) -> JobSubmitted | SubmissionRefused: ...
    @overload
    async def ask(
        self,
        message: FindJobs,
        *,
        timeout: float = ...,  # noqa: ASYNC109
    ) -> list[SlurmJob]: ...
    @overload
    async def ask(
        self,
        message: JobInfo,
        *,
        timeout: float = ...,  # noqa: ASYNC109
    ) -> SlurmJob | None: ...
    @overload
    async def ask(
        self,
        message: Cancel,
        *,
        timeout: float = ...,  # noqa: ASYNC109
    ) -> CancelSent: ...
    @overload
    async def ask(
        self,
        message: Requeue,
        *,
        timeout: float = ...,  # noqa: ASYNC109
    ) -> Requeued: ...
    @overload
    async def ask(
        self,
        message: ExtendTimeLimit,
        *,
        timeout: float = ...,  # noqa: ASYNC109
    ) -> TimeLimitRaised | TimeLimitNotRaised: ...
    @overload
    async def ask(
        self,
        message: Discover,
        *,
        timeout: float = ...,  # noqa: ASYNC109
    ) -> list[Node]: ...
    @overload
    async def ask(
        self,
        message: HealthCheck,
        *,
        timeout: float = ...,  # noqa: ASYNC109
    ) -> Health: ...
    @overload
    async def ask(
        self,
        message: SubmitBatch,
        *,
        timeout: float = ...,  # noqa: ASYNC109
    ) -> JobSubmitted | SubmissionRefused: ...
    @overload
    async def ask(
        self,
        message: ReadOutput,
        *,
        timeout: float = ...,  # noqa: ASYNC109
    ) -> OutputRead: ...
    @overload
    async def ask(
        self,
        message: SlurmRequest,
        *,
        timeout: float = ...,  # noqa: ASYNC109
    ) -> object: ...

    async def ask(
        self,
        message: SlurmRequest,
        *,
        timeout: float = DEFAULT_ASK_TIMEOUT,  # noqa: ASYNC109 - the runtime's ask signature
    ) -> object:
        """Send ``message`` and return its reply (see :mod:`actors.slurm.messages`); raises its
        :class:`SlurmError`, or :class:`~runtime.errors.AskTimeout` when ``timeout`` (queueing
        and work) runs out: the work may still finish later."""
        return await super().ask(message, timeout=timeout)

    async def _answer(self, message: SlurmRequest) -> object:
        match message:
            case SubmitJob():
                return await self.submit(message)
            case FindJobs(job_name=name):
                return await self.find_jobs(name)
            case JobInfo(slurm_job_id=slurm_job_id):
                return await self.job_info(slurm_job_id)
            case Cancel():
                return await self.cancel(message)
            case Requeue(slurm_job_id=slurm_job_id):
                return await self.requeue(slurm_job_id)
            case ExtendTimeLimit(slurm_job_id=slurm_job_id, extra_minutes=extra):
                return await self.raise_time_limit(slurm_job_id, extra)
            case Discover(include_unresponsive=unresponsive):
                return await self.discover(include_unresponsive=unresponsive)
            case HealthCheck():
                return await self.health_check()
            case SubmitBatch():
                return await self.submit_batch(message)
            case ReadOutput():
                return await self.read_output(message)
        raise TypeError(f"SlurmActor cannot handle {type(message).__name__}")

    # --- the work (callable directly too, e.g. from benchmarks) --------------------------------

    async def submit(self, request: SubmitJob) -> JobSubmitted | SubmissionRefused:
        """Validate, then ``sbatch`` as the customer's user with the script on stdin (counted in
        ``statistics()``)."""
        refused = self._prepare(request)
        if isinstance(refused, SubmissionRefused):
            self._refused += 1
            return refused
        user, spec = refused
        started = trio.current_time()
        try:
            outcome = await self._sbatch(
                user, cmd.sbatch_argv(self._paths, spec), cmd.batch_script(request.script)
            )
        except CommandLost:
            self._lost += 1
            raise
        if isinstance(outcome, SubmissionRefused):
            self._refused += 1
            return outcome
        elapsed = trio.current_time() - started
        self._submitted += 1
        self._submit_total += elapsed
        self._submit_last = elapsed
        return outcome

    def _prepare(self, request: SubmitJob) -> SubmissionRefused | tuple[str, cmd.SubmitSpec]:
        try:
            name = job_id(request.job_id)
        except ValueError:
            return SubmissionRefused(f"not a job id (0x + 64 hex digits): {request.job_id[:80]!r}")
        reason = cmd.refusal(request.definition, request.time_limit_minutes, request.script)
        if reason is not None:
            return SubmissionRefused(reason)
        try:
            user = self._customer_user(request.customer)
        except ValueError as error:
            return SubmissionRefused(
                f"no UNIX user for customer {request.customer[:80]!r}: {error}"
            )
        if not _UNIX_USER.fullmatch(user):
            return SubmissionRefused(f"customer user {user[:80]!r} is not a UNIX user name")
        spec = cmd.submit_spec(
            name,
            request.definition,
            request.time_limit_minutes,
            partition=self._partition,
            public_address=self._public_address,
            output_dir=self._output_dir,
            workdir=self._workdir,
        )
        return user, spec

    async def find_jobs(self, job_name: str) -> list[SlurmJob]:
        """Every job named ``job_name``: squeue (all states), plus sacct when accounting is on
        (squeue wins for a job both know: it is fresher)."""
        if not _JOB_NAME.fullmatch(job_name):
            return []
        result = await self._admin_run(cmd.squeue_argv(self._paths, job_name))
        _check(result, "squeue")
        found = {job.slurm_job_id: job for job in await self._accounted(job_name)}
        found.update((job.slurm_job_id, job) for job in cmd.parse_squeue(result.stdout, job_name))
        return sorted(
            (job for job in found.values() if job.name == job_name),
            key=lambda job: job.slurm_job_id,
        )

    async def job_info(self, slurm_job_id: int) -> SlurmJob | None:
        """The job from squeue, else from sacct, else None."""
        job = await self._queued_job(slurm_job_id)
        if job is not None:
            return job
        return await self._accounted_job(slurm_job_id)

    async def cancel(self, request: Cancel) -> CancelSent:
        """``scancel`` as the admin (succeeds for ended or unknown jobs too)."""
        argv = cmd.scancel_argv(
            self._paths, slurm_job_id=request.slurm_job_id, job_name=request.job_name
        )
        result = await self._admin_run(argv)
        if not result.ok and "invalid job id" not in result.stderr.lower():
            raise CommandFailed("scancel", result.exit_status, result.stderr)
        return CancelSent(target=argv[-1])

    async def requeue(self, slurm_job_id: int) -> Requeued:
        """``scontrol requeue`` as the admin (SLURM refuses it for a job it does not know or
        that is not requeueable: the answer says so). SLURM requeues a job that has ended too,
        which runs it again: check the job's state first."""
        result = await self._admin_run(cmd.scontrol_requeue_argv(self._paths, slurm_job_id))
        if result.ok:
            return Requeued(slurm_job_id, ok=True)
        detail = result.stderr.strip() or f"exit status {result.exit_status}"
        return Requeued(slurm_job_id, ok=False, detail=detail)

    async def raise_time_limit(
        self, slurm_job_id: int, extra_minutes: int
    ) -> TimeLimitRaised | TimeLimitNotRaised:
        """Set the limit to the current one plus ``extra_minutes`` (absolute, as the admin),
        then read it back."""
        if extra_minutes <= 0:
            return TimeLimitNotRaised(slurm_job_id, f"extra minutes must be > 0: {extra_minutes}")
        job = await self._queued_job(slurm_job_id)
        if job is None:
            return TimeLimitNotRaised(slurm_job_id, "SLURM does not know the job")
        if job.has_ended:
            return TimeLimitNotRaised(slurm_job_id, f"the job has ended ({job.state})")
        old = job.time_limit_minutes
        if old is None:
            return TimeLimitRaised(slurm_job_id, old_minutes=None, new_minutes=None)
        target = old + extra_minutes
        if target > cmd.LIMITS.max_minutes:
            return TimeLimitNotRaised(slurm_job_id, f"{target} minutes is absurd")
        result = await self._admin_run(
            cmd.scontrol_time_limit_argv(self._paths, slurm_job_id, target)
        )
        if not result.ok:
            reason = _slurm_message(result.stderr) or f"scontrol exited {result.exit_status}"
            return TimeLimitNotRaised(slurm_job_id, reason)
        after = await self._queued_job(slurm_job_id)
        now = after.time_limit_minutes if after is not None else None
        if now != target:
            return TimeLimitNotRaised(slurm_job_id, f"read back {now} minutes, not {target}")
        return TimeLimitRaised(slurm_job_id, old_minutes=old, new_minutes=target)

    async def discover(self, *, include_unresponsive: bool = False) -> list[Node]:
        """The nodes of the configured partition (responding ones unless asked otherwise)."""
        result = await self._admin_run(cmd.scontrol_nodes_argv(self._paths))
        _check(result, "scontrol show nodes")
        nodes = cmd.parse_nodes(result.stdout, self._partition)
        return [node for node in nodes if include_unresponsive or node.responding]

    async def health_check(self) -> Health:
        """``scontrol ping`` as the admin; never raises for SSH or SLURM trouble."""
        started = trio.current_time()
        try:
            result = await self._admin_run(cmd.scontrol_ping_argv(self._paths), timeout=10.0)
        except SlurmError as error:
            return Health(ok=False, detail=str(error), latency_seconds=_since(started))
        text = (result.stdout + result.stderr).strip()
        ok = result.ok and "UP" in result.stdout
        return Health(ok=ok, detail=text[:300], latency_seconds=_since(started))

    async def submit_batch(self, request: SubmitBatch) -> JobSubmitted | SubmissionRefused:
        """``sbatch`` one of the supervisor's own jobs as ``request.user`` (script on stdin)."""
        if not _UNIX_USER.fullmatch(request.user):
            return SubmissionRefused(f"{request.user[:80]!r} is not a UNIX user name")
        if not _JOB_NAME.fullmatch(request.job_name):
            return SubmissionRefused(f"{request.job_name[:80]!r} is not a usable job name")
        if request.comment.startswith("supervisor"):
            return SubmissionRefused(
                "the comment of a supervisor-owned job must not say 'supervisor'"
            )
        if min(request.nodes, request.ntasks_per_node, request.cpus_per_task) < 1:
            return SubmissionRefused("nodes, tasks per node and CPUs per task must be at least 1")
        if not 1 <= request.time_limit_minutes <= cmd.LIMITS.max_minutes:
            return SubmissionRefused(f"time limit of {request.time_limit_minutes} minutes")
        argv = cmd.batch_sbatch_argv(self._paths, request, self._partition)
        return await self._sbatch(request.user, argv, request.script)

    async def _sbatch(
        self, user: str, argv: list[str], script: str
    ) -> JobSubmitted | SubmissionRefused:
        """``sbatch`` as ``user`` with ``script`` on stdin: the one reading of its failures for
        both kinds of submission (:func:`actors.slurm.commands.classify_sbatch_failure`):
        SLURM's refusal is the answer :class:`SubmissionRefused`; an unreachable controller is
        :class:`SlurmUnavailable` (nothing queued), a reply lost on the way
        :class:`CommandLost` (the job may be queued: look it up by name), anything else
        :class:`CommandFailed`."""
        result = await self._pool.run(
            user, cmd.command_line(argv), stdin=script, timeout=self._submit_timeout
        )
        if result.ok:
            return JobSubmitted(slurm_job_id=cmd.parse_sbatch(result.stdout), user=user)
        reason = _slurm_message(result.stderr) or f"sbatch exited with {result.exit_status}"
        match cmd.classify_sbatch_failure(result.exit_status, result.stderr):
            case cmd.SbatchFailure.REFUSED:
                return SubmissionRefused(reason)
            case cmd.SbatchFailure.UNAVAILABLE:
                raise SlurmUnavailable(f"sbatch as {user!r}: {reason}")
            case cmd.SbatchFailure.AMBIGUOUS:
                raise CommandLost(user, f"sbatch: {reason}")
        raise CommandFailed("sbatch", result.exit_status, result.stderr)

    async def read_output(self, request: ReadOutput) -> OutputRead:
        """The (tail of the) file at ``request.path``, read over SSH as ``request.user``."""
        if not _UNIX_USER.fullmatch(request.user) or "\0" in request.path or not request.path:
            return OutputRead(path=request.path, found=False)
        result = await self._pool.run(
            request.user,
            cmd.read_output_command(request.path, request.max_bytes),
            timeout=self._timeout,
        )
        if result.exit_status == 3:
            return OutputRead(path=request.path, found=False)
        _check(result, "read output")
        return OutputRead(path=request.path, found=True, text=result.stdout)

    # --- helpers --------------------------------------------------------------------------------

    async def _admin_run(
        self,
        argv: list[str],
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - enforced on the asyncio side
    ) -> CommandResult:
        return await self._pool.run(
            self._admin, cmd.command_line(argv), timeout=timeout or self._timeout
        )

    async def _queued_job(self, slurm_job_id: int) -> SlurmJob | None:
        """The job as the controller holds it (``squeue --jobs=ID``), None once it forgot it."""
        argv = cmd.squeue_argv(self._paths, slurm_job_id=slurm_job_id)
        result = await self._admin_run(argv)
        if not result.ok:
            if "invalid job id" in result.stderr.lower():
                return None
            raise CommandFailed("squeue --jobs", result.exit_status, result.stderr)
        return cmd.parse_squeue_job(result.stdout, slurm_job_id)

    async def _accounted(self, job_name: str) -> list[SlurmJob]:
        """sacct's jobs named ``job_name``, or [] when the cluster keeps no accounting."""
        stdout = await self._sacct(cmd.sacct_argv(self._paths, job_name=job_name))
        return cmd.parse_sacct(stdout, job_name) if stdout is not None else []

    async def _accounted_job(self, slurm_job_id: int) -> SlurmJob | None:
        stdout = await self._sacct(cmd.sacct_argv(self._paths, slurm_job_id=slurm_job_id))
        return cmd.parse_sacct_job(stdout, slurm_job_id) if stdout is not None else None

    async def _sacct(self, argv: list[str]) -> str | None:
        """sacct's output, or None when the cluster keeps no accounting (remembered) or sacct
        failed (noted in ``last_error``)."""
        if self._accounting is False:
            return None
        result = await self._admin_run(argv)
        if cmd.sacct_disabled(result.stderr, result.stdout):
            self._accounting = False
            return None
        if not result.ok:
            self._slurm_error = f"sacct: {_slurm_message(result.stderr)}"
            return None
        self._accounting = True
        return result.stdout

    # --- observing --------------------------------------------------------------------------

    def statistics(self) -> SlurmStatistics:
        return SlurmStatistics(
            **self.common_statistics(),
            partition=self._partition,
            submitted=self._submitted,
            refused=self._refused,
            lost=self._lost,
            submit_seconds_last=self._submit_last,
            submit_seconds_mean=self._submit_total / self._submitted if self._submitted else 0.0,
            sacct_available=self._accounting,
            slurm_error=self._slurm_error,
            connections=tuple(self._pool.statistics()),
            commands=self._pool.command_statistics(),
        )


def _check(result: CommandResult, what: str) -> None:
    if not result.ok:
        raise CommandFailed(what, result.exit_status, result.stderr)


def _slurm_message(stderr: str) -> str:
    """The most telling line of a SLURM error: the last ``error:`` line, without the prefix."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if "error:" in line]
    line = errors[-1] if errors else (lines[-1] if lines else "")
    if "error:" in line:
        line = line.split("error:", 1)[1].strip()
    return line.removeprefix("Batch job submission failed:").strip()[:300]


def _since(started: float) -> float:
    elapsed = trio.current_time() - started
    return elapsed if math.isfinite(elapsed) else 0.0
