"""RegistrationActor: health-check SLURM, register the cluster as it is, wait for approval, claim.

On start it:

1. checks that SLURM answers over SSH (retrying with backoff: a login node that is down is
   waited for, not a crash loop);
2. discovers the partition's hardware (nodes, CPUs, memory, GPUs per node);
3. builds the registration (hardware, configured prices, normalised labels) with
   :func:`registration_for` and compares it with what the chain holds (:func:`needs_register`):
   it sends ``register`` only when something differs, since a new registration may need a new
   approval;
4. waits for approval, polling the provider manager; the state shows in ``tree`` and the logs;
5. tells the chain actor to start claiming, then keeps watching the approval: a ban stops
   claiming, a new approval starts it again.

The operator's drain switch (:mod:`actors.drain`, ``grid-supervisor drain``/``resume``) comes
before the approval: while drained, claiming stays off whatever the approval; a change of the
switch wakes the watch loop at once.

With ``benchmark=True`` step 3 first asks the BenchmarkActor ("benchmark") to measure the
cluster (or re-use what it measured on the same hardware); its generated labels are merged with
the operator's (the operator wins a clash, with a warning). Since claiming is only turned on in
step 5, no grid job is claimed while benchmarks hold the cluster.

The actor is permanent and sits after the chain actor in a ``rest_for_one`` root, so a restart of
the chain actor (which forgets that it was claiming) restarts this one too, which turns claiming
back on once it has checked the approval again.
"""

from __future__ import annotations

import logging
import random

import trio

from actors.benchmark.labels import merge_labels
from actors.benchmark.messages import Measure, Measured
from actors.chain.client import Approval
from actors.chain.messages import (
    Applied,
    GetProvider,
    ProviderApproval,
    Register,
    StartClaiming,
    StopClaiming,
)
from actors.chain.revert import ChainError
from actors.drain import DrainSwitch
from actors.grid import Hardware, Label, Prices, Provider, normalise_labels
from actors.slurm.messages import Discover, Health, HealthCheck, Node
from runtime.actor import Actor, ActorRef, ActorStatistics
from runtime.errors import ActorSystemError
from runtime.policy import Backoff

__all__ = [
    "RegistrationActor",
    "RegistrationStatistics",
    "hardware_of",
    "needs_register",
    "registration_for",
]

log = logging.getLogger(__name__)


def hardware_of(nodes: list[Node]) -> Hardware:
    """The on-chain hardware of the partition's nodes, in a stable (name) order."""
    ordered = sorted(nodes, key=lambda node: node.name)
    return Hardware(
        nodes=len(ordered),
        gpus_per_node=tuple(node.gpus for node in ordered),
        cpus_per_node=tuple(node.cpus for node in ordered),
        mem_per_node=tuple(node.memory_mb for node in ordered),
    )


def registration_for(
    nodes: list[Node], prices: Prices, labels: dict[str, str]
) -> tuple[Hardware, Prices, tuple[Label, ...]]:
    return hardware_of(nodes), prices, normalise_labels(labels)


def needs_register(
    on_chain: Provider | None, hardware: Hardware, prices: Prices, labels: tuple[Label, ...]
) -> bool:
    """Whether the chain's record differs from what we would register."""
    if on_chain is None:
        return True
    return (
        on_chain.hardware != hardware
        or on_chain.prices != prices
        or normalise_labels(on_chain.labels) != labels
    )


class RegistrationStatistics(ActorStatistics, frozen=True, kw_only=True):
    """The registration actor now: which step it is at, and the provider's approval."""

    state: str
    """The step in words (``checking SLURM``, ``benchmarking``, ``claiming``, ...)."""
    approval: Approval | None
    """The provider's approval on chain when last read (None: not read yet)."""


class RegistrationActor(Actor[object, None]):
    """See the module docstring. Talks to "slurm" and "chain"; holds no durable state."""

    def __init__(
        self,
        *,
        prices: Prices,
        labels: dict[str, str],
        include_unresponsive: bool = False,
        benchmark: bool = False,
        benchmark_timeout: float = 3600.0,
        approval_poll: float = 5.0,
        backoff: Backoff | None = None,
        drain: DrainSwitch | None = None,
        rng: random.Random | None = None,
        name: str = "registration",
    ) -> None:
        super().__init__(name)
        self._prices = prices
        self._labels = labels
        self._include_unresponsive = include_unresponsive
        self._benchmark = benchmark
        self._benchmark_timeout = benchmark_timeout
        self._approval_poll = approval_poll
        self._backoff = backoff or Backoff(initial=1.0, maximum=30.0)
        self._rng = rng if rng is not None else random.Random()
        """Draws every backoff's jitter (pass ``random.Random(seed)`` for reproducible tests)."""
        self._state = "starting"
        self._approval: Approval | None = None
        self._drain = drain if drain is not None else DrainSwitch()

    def statistics(self) -> RegistrationStatistics:
        return RegistrationStatistics(
            **self.common_statistics(), state=self._state, approval=self._approval
        )

    async def started(self) -> None:
        self.spawn(self._register_and_watch)

    async def handle(self, message: object) -> None:
        return None

    async def _register_and_watch(self) -> None:
        slurm: ActorRef[object, object] = self.ref("slurm")
        chain: ActorRef[object, object] = self.ref("chain")
        self._state = "checking SLURM"
        attempt = 0
        while True:
            health = await slurm.ask(HealthCheck(), timeout=60.0)
            assert isinstance(health, Health)
            if health.ok:
                break
            attempt += 1
            log.warning("SLURM health check failed (%s); retrying", health.detail)
            await trio.sleep(self._backoff.delay(attempt, self._rng))
        self._state = "discovering hardware"
        nodes = await slurm.ask(Discover(self._include_unresponsive), timeout=60.0)
        assert isinstance(nodes, list)
        if not nodes:
            raise RuntimeError("the partition has no usable node")
        on_chain = await chain.ask(GetProvider(), timeout=60.0)
        assert on_chain is None or isinstance(on_chain, Provider)
        label_set = dict(self._labels)
        if self._benchmark:
            self._state = "benchmarking"
            measured = await self.ref("benchmark").ask(
                Measure(tuple(nodes), on_chain.labels if on_chain is not None else ()),
                timeout=self._benchmark_timeout,
            )
            assert isinstance(measured, Measured)
            generated = {label.key: label.value for label in normalise_labels(measured.labels)}
            label_set, clashes = merge_labels(generated, self._labels)
            for key in clashes:
                log.warning(
                    "operator label %s=%s replaces the generated value %s",
                    key,
                    self._labels[key],
                    generated[key],
                )
        hardware, prices, labels = registration_for(nodes, self._prices, label_set)
        if needs_register(on_chain, hardware, prices, labels):
            self._state = "registering"
            log.info(
                "registering %d nodes, %d CPUs, %d labels",
                hardware.nodes,
                sum(hardware.cpus_per_node),
                len(labels),
            )
            outcome = await chain.ask(Register(hardware, prices, labels), timeout=300.0)
            if not isinstance(outcome, Applied):
                raise RuntimeError(f"the chain refused the registration: {outcome}")
        else:
            log.info("the chain already holds this registration; not registering again")
        claiming = False
        failures = 0
        while True:
            seen = self._drain.generation  # a drain or resume from now on wakes the loop
            try:
                approval = await chain.ask(ProviderApproval(), timeout=60.0)
            except (ChainError, ActorSystemError) as error:
                # The node or the chain actor is down for a while: keep watching, do not crash
                # (a crash loop here would exhaust the root's restart intensity).
                failures += 1
                if failures == 1 or failures % 20 == 0:
                    log.warning("cannot read the provider's approval (%s); retrying", error)
                self._state = "chain unreachable (retrying)"
                await trio.sleep(self._backoff.delay(failures, self._rng))
                continue
            failures = 0
            assert isinstance(approval, Approval)
            if approval != self._approval:
                log.info("provider approval: %s", approval.value)
            self._approval = approval
            wanted = approval is Approval.APPROVED and not self._drain.drained
            if wanted and not claiming:
                await chain.ask(StartClaiming(), timeout=60.0)
                claiming = True
                log.info("approved: claiming jobs")
            elif not wanted and claiming:
                await chain.ask(StopClaiming(), timeout=300.0)
                claiming = False
                if self._drain.drained:
                    log.warning("drained: stopped claiming; running jobs finish")
                else:
                    log.warning("no longer approved (%s): stopped claiming", approval.value)
            if claiming:
                self._state = "claiming"
            elif self._drain.drained:
                self._state = f"drained ({approval.value})"
            else:
                self._state = f"waiting ({approval.value})"
            await self._drain.wait_changed(seen, timeout=self._approval_poll)
