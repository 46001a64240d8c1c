"""Statistics records of the grid's actors, for tests of what reads them (metrics, ``status``).

:class:`Reporting` is an actor whose ``statistics()`` is a record of another actor's type, so a
test builds a tree that metrics and the control commands read as if the chain, the SLURM actor
or the registration actor were in it, under any name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from actors.chain.actor import ChainStatistics
from actors.chain.client import Approval
from actors.chain.transactions import SenderStatistics
from actors.registration import RegistrationStatistics
from actors.slurm.actor import SlurmStatistics
from actors.slurm.messages import Health, HealthCheck
from actors.slurm.ssh import ConnectionStatus, command_name
from runtime import Actor, ActorStatistics, OutcomeTally

__all__ = ["Reporting", "chain_record", "registration_record", "slurm_record"]


class Reporting(Actor[object, object]):
    """An actor whose statistics() is a record of another actor's type (the common part its
    own): readers must find it by that type, whatever its name. It answers ``HealthCheck``
    as a healthy SLURM actor would, and every other message with None."""

    def __init__(self, name: str, own: Callable[[dict[str, Any]], ActorStatistics]) -> None:
        super().__init__(name)
        self.own = own

    async def handle(self, message: object) -> object:
        if isinstance(message, HealthCheck):
            return Health(ok=True, detail="ok", latency_seconds=0.008)
        return None

    def statistics(self) -> ActorStatistics:
        return self.own(self.common_statistics())


def chain_record(common: dict[str, Any]) -> ChainStatistics:
    transactions = OutcomeTally()
    transactions.add("claimNextJob", "mined", 0.2)
    transactions.add("claimNextJob", "refused", 0.01)
    claims = OutcomeTally()
    claims.add("job", "claimed")
    claims.add("job", "claimed")
    claims.add("top_up", "empty")
    return ChainStatistics(
        **common,
        provider="0x" + "22" * 20,
        connection="subscribed to ws://node",
        subscribed=True,
        head_block=812,
        cursor_block=811,
        saved_cursor_block=810,
        claiming=True,
        enable_request_new_job=True,
        claims_sent=2,
        claims_delivered=2,
        claims_undelivered=0,
        claims=claims.snapshot(),
        transactions=SenderStatistics(
            sent=2,
            resent=0,
            mined=1,
            reverted=0,
            simulated_reverts=1,
            in_flight=3,
            next_nonce=7,
            replayed=0,
            filled=0,
            functions=transactions.snapshot(),
        ),
    )


def slurm_record(common: dict[str, Any]) -> SlurmStatistics:
    commands = OutcomeTally()
    commands.add(command_name("/usr/bin/sbatch --parsable"), "ok", 0.03)
    commands.add(command_name("squeue -h"), "lost", 40.0)
    return SlurmStatistics(
        **common,
        partition="grid",
        submitted=1,
        refused=0,
        lost=0,
        submit_seconds_last=0.03,
        submit_seconds_mean=0.03,
        sacct_available=True,
        slurm_error="",
        connections=(
            ConnectionStatus(
                user="root",
                state="connected",
                channels_in_use=0,
                commands=2,
                failures=0,
                last_error="",
            ),
        ),
        commands=commands.snapshot(),
    )


def registration_record(common: dict[str, Any]) -> RegistrationStatistics:
    return RegistrationStatistics(**common, state="claiming", approval=Approval.APPROVED)
