"""BenchmarkActor: measures the cluster as SLURM jobs, or re-uses what it measured before.

Asked :class:`~actors.benchmark.messages.Measure` (by the registration actor, before claiming
is turned on, so no grid job competes with the benchmarks), it:

1. cancels its own leftover jobs of an earlier run (found by their names,
   ``grid-benchmark-<kind>-<tag>``; their comment is ``benchmark <public address>``, which the
   SLURM-side reporters ignore since it does not start with "supervisor");
2. computes the fingerprint of the hardware (:func:`~actors.benchmark.labels.fingerprint`) and
   re-uses the stored results when it matches (or, disabled, whatever it has: the stored
   results, else the benchmark labels registered before);
3. otherwise runs the suite of :func:`~actors.benchmark.plan.plan_suite`, one job after the
   other, through SlurmActor as the configured user, each within the configured time limit,
   reads each job's output back over SSH, parses it, and stores the labels with the fingerprint
   when nothing failed (a failure is re-measured at the next start, a skip is not).

Progress (benchmark, phase, SLURM job, elapsed) is in its :class:`BenchmarkStatistics`, hence
in ``tree`` and ``status``, and in the logs.
"""

from __future__ import annotations

import logging
import time

import trio

from actors.benchmark import labels as lb
from actors.benchmark.messages import (
    STORE_KEY,
    STORE_NAMESPACE,
    BenchmarkRecord,
    Measure,
    Measured,
)
from actors.benchmark.parsers import (
    BenchmarkOutputError,
    HpccResult,
    Machine,
    parse_fio,
    parse_hpcc,
    parse_machine,
    parse_speedtest,
    section_skip,
    split_sections,
)
from actors.benchmark.plan import KINDS, JobPlan, job_name, plan_suite
from actors.benchmark.settings import BenchmarkSettings
from actors.slurm.messages import (
    Cancel,
    FindJobs,
    JobInfo,
    Node,
    OutputRead,
    ReadOutput,
    SlurmJob,
    SubmissionRefused,
    SubmitBatch,
)
from runtime.actor import Actor, ActorRef, ActorStatistics
from runtime.store import Store

__all__ = ["BenchmarkActor", "BenchmarkStatistics"]

log = logging.getLogger(__name__)

_NODE_UNAVAILABLE = ("ReqNodeNotAvail", "NodeDown", "Nodes required", "PartitionNodeLimit")


class _JobFailed(Exception):
    """One benchmark job did not give a usable output (the reason is the message)."""


class BenchmarkStatistics(ActorStatistics, frozen=True, kw_only=True):
    """The benchmark actor now: what it measures, how long it has been at it, what it found."""

    state: str
    """``idle``, ``cancelling leftovers``, ``benchmarking``, ``re-used``, ..."""
    mode: str
    benchmark: str
    """The benchmark running ("" when none)."""
    step: str
    slurm_job: int | None
    job_elapsed_seconds: float | None
    total_elapsed_seconds: float | None
    done: tuple[str, ...]
    skipped: tuple[tuple[str, str], ...]
    """``(benchmark, why)``, sorted."""
    failed: tuple[tuple[str, str], ...]
    labels: int | None
    """Labels of the last measurement (None before one)."""
    fingerprint: str | None

    def facts(self) -> dict[str, str]:
        facts = {"state": self.state, "mode": self.mode}
        if self.state == "benchmarking":
            facts["benchmark"] = self.benchmark
            facts["phase"] = self.step
            if self.slurm_job is not None:
                facts["slurm_job"] = str(self.slurm_job)
            if self.job_elapsed_seconds is not None:
                facts["elapsed"] = f"{self.job_elapsed_seconds:.0f}s"
            if self.total_elapsed_seconds is not None:
                facts["total_elapsed"] = f"{self.total_elapsed_seconds:.0f}s"
            facts["done"] = ",".join(self.done) or "none"
        if self.skipped:
            facts["skipped"] = "; ".join(f"{k}: {v}" for k, v in self.skipped)
        if self.failed:
            facts["failed"] = "; ".join(f"{k}: {v}" for k, v in self.failed)
        if self.labels is not None and self.fingerprint is not None:
            facts["labels"] = str(self.labels)
            facts["fingerprint"] = self.fingerprint[:12]
        return facts


class BenchmarkActor(Actor[Measure, Measured]):
    """See the module docstring. Registered as "benchmark"; talks to "slurm"."""

    def __init__(
        self,
        *,
        settings: BenchmarkSettings,
        store: Store,
        public_address: str,
        poll_seconds: float = 1.0,
        pending_grace_seconds: float = 60.0,
        name: str = "benchmark",
    ) -> None:
        super().__init__(name)
        self._settings = settings
        self._store = store
        self._public_address = public_address
        self._poll = poll_seconds
        self._grace = pending_grace_seconds
        self._state = "idle"
        self._benchmark = ""
        self._step = ""
        self._slurm_job: int | None = None
        self._started: float | None = None
        self._job_started: float | None = None
        self._done: list[str] = []
        self._skipped: dict[str, str] = {}
        self._failed: dict[str, str] = {}
        self._last: Measured | None = None

    # --- observing --------------------------------------------------------------------------

    def statistics(self) -> BenchmarkStatistics:
        now = trio.current_time() if self._started is not None else 0.0
        last = self._last
        return BenchmarkStatistics(
            **self.common_statistics(),
            state=self._state,
            mode=self._settings.mode,
            benchmark=self._benchmark,
            step=self._step,
            slurm_job=self._slurm_job,
            job_elapsed_seconds=now - self._job_started if self._job_started is not None else None,
            total_elapsed_seconds=now - self._started if self._started is not None else None,
            done=tuple(self._done),
            skipped=tuple(sorted(self._skipped.items())),
            failed=tuple(sorted(self._failed.items())),
            labels=len(last.labels) if last is not None else None,
            fingerprint=last.fingerprint if last is not None else None,
        )

    # --- the work -----------------------------------------------------------------------------

    async def handle(self, message: Measure) -> Measured:
        slurm: ActorRef[object, object] = self.ref("slurm")
        settings = self._settings
        nodes = list(message.nodes)
        self._state = "cancelling leftovers"
        await self._cancel_leftovers(slurm)
        print_ = lb.fingerprint(nodes, settings)
        record = await self._store.get(STORE_NAMESPACE, STORE_KEY, BenchmarkRecord)
        discovered = lb.discovery_labels(nodes)
        if settings.disable:
            if record is not None:
                labels = record.labels
                log.info("benchmarks disabled: re-using the stored results")
            else:
                labels = lb.reusable_chain_labels(message.on_chain)
                log.info("benchmarks disabled: re-using %d registered labels", len(labels))
            outcome = Measured({**labels, **discovered}, False, "disabled", print_)
        elif record is not None and record.fingerprint == print_:
            log.info("hardware unchanged since the last benchmarks: re-using their results")
            outcome = Measured(
                {**record.labels, **discovered}, False, "re-used", print_, record.skipped
            )
        else:
            if record is not None:
                log.info("the hardware changed since the last benchmarks: measuring again")
            outcome = await self._measure(slurm, nodes, print_)
        self._state = outcome.source
        self._last = outcome
        return outcome

    async def _cancel_leftovers(self, slurm: ActorRef[object, object]) -> None:
        for kind in KINDS:
            found = await slurm.ask(FindJobs(job_name(kind, self._public_address)), timeout=60.0)
            assert isinstance(found, list)
            for job in found:
                assert isinstance(job, SlurmJob)
                if not job.has_ended:
                    log.warning("cancelling leftover benchmark job %d (%s)", job.slurm_job_id, kind)
                    await slurm.ask(Cancel(slurm_job_id=job.slurm_job_id), timeout=60.0)

    async def _measure(
        self, slurm: ActorRef[object, object], nodes: list[Node], print_: str
    ) -> Measured:
        plan = plan_suite(nodes, self._settings, self._public_address)
        self._state = "benchmarking"
        self._started = trio.current_time()
        self._done, self._skipped, self._failed = [], dict(plan.skipped), {}
        for kind, reason in plan.skipped.items():
            log.info("benchmark %s skipped: %s", kind, reason)
        labels = lb.discovery_labels(nodes)
        machine: Machine | None = None
        compute_runs: list[HpccResult] = []
        for job in plan.jobs:
            self._benchmark = job.kind + (f"@{job.nodelist}" if job.nodelist else "")
            try:
                text = await self._run(slurm, job)
                sections = split_sections(text)
                if job.kind == "compute":
                    if machine is None and "machine" in sections:
                        machine = parse_machine(sections["machine"])
                    compute_runs.append(parse_hpcc(sections.get("hpcc", "")))
                elif job.kind == "network":
                    labels.update(lb.network_labels(parse_hpcc(sections.get("hpcc", ""))))
                elif job.kind == "storage":
                    labels.update(self._storage(sections))
                elif job.kind == "internet":
                    labels.update(self._internet(sections))
            except (_JobFailed, BenchmarkOutputError) as error:
                self._failed[self._benchmark] = str(error)[:300]
                log.warning("benchmark %s failed: %s", self._benchmark, error)
                continue
            self._done.append(self._benchmark)
            log.info("benchmark %s done", self._benchmark)
        if machine is not None:
            labels.update(lb.compute_labels(machine, compute_runs))
        seconds = trio.current_time() - self._started
        self._slurm_job = None
        if not self._failed:
            await self._store.put(
                STORE_NAMESPACE,
                STORE_KEY,
                BenchmarkRecord(print_, labels, dict(self._skipped), time.time(), seconds),
            )
        log.info(
            "benchmarks finished in %.0f s: %d labels, %d skipped, %d failed",
            seconds,
            len(labels),
            len(self._skipped),
            len(self._failed),
        )
        return Measured(labels, True, "measured", print_, dict(self._skipped), dict(self._failed))

    def _storage(self, sections: dict[str, str]) -> dict[str, str]:
        labels: dict[str, str] = {}
        for folder in ("shared", "local"):
            body = sections.get(f"storage.{folder}")
            if body is None:
                raise BenchmarkOutputError(f"no storage.{folder} section in the output")
            reason = section_skip(body)
            if reason is not None:
                self._skipped[f"storage.{folder}"] = reason
                log.info("benchmark storage.%s skipped: %s", folder, reason)
                continue
            labels.update(lb.storage_labels(folder, parse_fio(body), shared=folder == "shared"))
        return labels

    def _internet(self, sections: dict[str, str]) -> dict[str, str]:
        body = sections.get("internet", "")
        reason = section_skip(body)
        if reason is not None:
            self._skipped["internet"] = reason
            log.info("internet speed not measured (its labels are left out): %s", reason)
            return {}
        try:
            return lb.internet_labels(parse_speedtest(body))
        except BenchmarkOutputError as error:
            self._skipped["internet"] = str(error)
            log.info("internet speed not measured (its labels are left out): %s", error)
            return {}

    async def _run(self, slurm: ActorRef[object, object], job: JobPlan) -> str:
        """Submit ``job``, follow it to its end, and return its output."""
        settings = self._settings
        prefix = settings.output_dir.rstrip("/")
        output = f"{prefix}/{job.job_name}-%j.out" if prefix else f"{job.job_name}-%j.out"
        self._step, self._slurm_job = "submitting", None
        self._job_started = trio.current_time()
        reply = await slurm.ask(
            SubmitBatch(
                user=settings.run_as,
                job_name=job.job_name,
                comment=f"benchmark {self._public_address}",
                time_limit_minutes=settings.time_limit_minutes,
                nodes=job.nodes,
                ntasks_per_node=job.ntasks_per_node,
                cpus_per_task=job.cpus_per_task,
                gpus_per_node=job.gpus_per_node,
                nodelist=job.nodelist,
                output=output,
                script=job.script,
            ),
            timeout=120.0,
        )
        if isinstance(reply, SubmissionRefused):
            raise _JobFailed(f"SLURM refused the job: {reply.reason}")
        slurm_job_id: int = reply.slurm_job_id  # type: ignore[attr-defined]
        self._slurm_job = slurm_job_id
        log.info("benchmark %s: SLURM job %d submitted", self._benchmark, slurm_job_id)
        try:
            final = await self._follow(slurm, slurm_job_id)
        except BaseException:
            with trio.CancelScope(shield=True), trio.move_on_after(10.0):
                await slurm.ask(Cancel(slurm_job_id=slurm_job_id), timeout=10.0)
            raise
        self._step = "reading output"
        read = await slurm.ask(
            ReadOutput(settings.run_as, output.replace("%j", str(slurm_job_id))), timeout=60.0
        )
        assert isinstance(read, OutputRead)
        state = final.state if final is not None else "gone"
        if not read.found:
            raise _JobFailed(f"no output at {read.path} (job {slurm_job_id} {state})")
        if final is not None and final.state not in ("COMPLETED",):
            log.warning("benchmark job %d ended %s", slurm_job_id, final.state)
        return read.text

    async def _follow(self, slurm: ActorRef[object, object], slurm_job_id: int) -> SlurmJob | None:
        """Poll the job until it ends; a job that cannot start on its node is cancelled."""
        pending_since: float | None = None
        last: SlurmJob | None = None
        while True:
            info = await slurm.ask(JobInfo(slurm_job_id), timeout=60.0)
            if info is None:
                return last
            assert isinstance(info, SlurmJob)
            last = info
            if info.has_ended:
                return info
            reason = info.reason if info.reason not in ("", "None", "(null)") else ""
            phase = info.state.lower() + (f" ({reason})" if reason else "")
            if phase != self._step:
                log.info("benchmark %s: %s", self._benchmark, phase)
            self._step = phase
            if info.state == "PENDING" and any(r in info.reason for r in _NODE_UNAVAILABLE):
                now = trio.current_time()
                pending_since = pending_since if pending_since is not None else now
                if now - pending_since > self._grace:
                    raise _JobFailed(f"could not start: {info.reason}")
            await trio.sleep(self._poll)
