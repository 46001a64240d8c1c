"""What SLURM itself recorded of ended jobs, and what the chain recorded of a job's statuses:
the two records the tests compare, whichever reporters are live.

With this project's reporters (``scripts``) the completion hook writes each end to the hook log
(:func:`~tests.integration.supervisor_harness.completions`). With the operator's real plugins
(``plugins``) nothing on the SLURM side logs an end, so SLURM's record is read from slurmctld
(``scontrol show job -o``: state, exit code, start and end of every job it still knows). A job
stays there ``MinJobAge`` seconds (300 on the testbed) after its end, so a long run polls a
:class:`SlurmLedger` as it goes, which keeps every end it saw.

The chain side: the job's ``JobTransitionEvent`` logs (every status change the chain made) and
the provider's ``providerSetJobStatus`` transactions for the job (every status the supervisor
sent, including one the chain refused).
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Mapping
from typing import Any

from actors.grid import JobStatus
from testbed import market
from testbed.env import TestbedEnv
from testbed.evm import Contract, decode_log, decode_values, selector, topic0
from testbed.grid import grid_addresses
from tests.integration.supervisor_harness import Completion, completions

#: SLURM's end states (``squeue``/``scontrol`` names).
END_STATES = frozenset(
    {
        "COMPLETED",
        "FAILED",
        "CANCELLED",
        "TIMEOUT",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "PREEMPTED",
        "BOOT_FAIL",
        "DEADLINE",
    }
)

_FIELD = re.compile(r"(\w+)=(\S*)")


def parse_show_jobs(text: str) -> list[dict[str, str]]:
    """``scontrol show job -o`` output, one dict of ``Key=value`` fields per job line."""
    return [dict(_FIELD.findall(line)) for line in text.splitlines() if "JobId=" in line]


def epoch(value: str) -> int:
    """A ``scontrol`` time (``2026-12-07T15:30:00``, local time) as epoch seconds; 0 for
    ``Unknown``, ``None`` or an empty value."""
    try:
        return int(time.mktime(time.strptime(value, "%Y-%m-%dT%H:%M:%S")))
    except ValueError:
        return 0


def completion_of(fields: Mapping[str, str]) -> Completion | None:
    """The end SLURM records for one ``scontrol`` job, None while it has not ended."""
    state = fields.get("JobState", "")
    if state not in END_STATES:
        return None
    return Completion(
        {
            "job": fields["JobId"],
            "name": fields.get("JobName", ""),
            "state": state,
            "exit": fields.get("ExitCode", "0:0"),
            "start": str(epoch(fields.get("StartTime", ""))),
            "end": str(epoch(fields.get("EndTime", ""))),
        }
    )


def ended_jobs() -> dict[tuple[str, int], Completion]:
    """Every ended job slurmctld still knows, by (job name, SLURM id)."""
    text = subprocess.run(
        ["scontrol", "show", "job", "-o"], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    found: dict[tuple[str, int], Completion] = {}
    for fields in parse_show_jobs(text):
        end = completion_of(fields)
        if end is not None:
            found[(end.name.lower(), end.slurm_job_id)] = end
    return found


class SlurmLedger:
    """Every job end seen in slurmctld since the ledger was made (the newest look at each
    SLURM job wins: SLURM adds the signal of a job it ended to the exit code a moment later)."""

    def __init__(self) -> None:
        self._ends: dict[tuple[str, int], Completion] = {}

    def poll(self) -> bool:
        """Look at slurmctld once; False when it did not answer (a busy or stuck controller:
        ``scontrol`` gives up after its message timeout)."""
        try:
            self._ends.update(ended_jobs())
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
            return False
        return True

    def ends(self) -> dict[str, list[Completion]]:
        """The ends seen so far (after one more look), by job name, like ``completions``."""
        self.poll()
        by_name: dict[str, list[Completion]] = {}
        for (name, _), end in sorted(self._ends.items(), key=lambda item: item[0][1]):
            by_name.setdefault(name, []).append(end)
        return by_name


def slurm_ends(
    env: TestbedEnv, reporters: str, ledger: SlurmLedger | None = None
) -> dict[str, list[Completion]]:
    """SLURM's own record of ended jobs, by job name, with ``reporters`` live: the completion
    hook's lines (``scripts``) or slurmctld's records (``plugins``; those of ``ledger`` when one
    was kept)."""
    if reporters == "scripts":
        return completions(env)
    return (ledger or SlurmLedger()).ends()


# --- the chain's side ----------------------------------------------------------------------------


def status_transitions(env: TestbedEnv, job_id: str) -> list[tuple[JobStatus, JobStatus]]:
    """Every status change the chain made to ``job_id`` (its ``JobTransitionEvent`` logs), in
    order: (from, to)."""
    with market.connect(env.chain.rpc_url, grid_addresses(env)) as grid:
        event = _abi_item(grid.jobs, "event", "JobTransitionEvent")
        logs = grid.chain.request(
            "eth_getLogs",
            [
                {
                    "address": grid.jobs.address,
                    "fromBlock": "0x0",
                    "toBlock": "latest",
                    "topics": ["0x" + topic0(event).hex()],
                }
            ],
        )
    wanted = bytes.fromhex(job_id.removeprefix("0x"))
    changes = []
    for log in logs:
        decoded = decode_log(event, log)
        if decoded["_jobId"] == wanted:
            changes.append((JobStatus(decoded["_from"]), JobStatus(decoded["_to"])))
    return changes


def status_sends(env: TestbedEnv, job_id: str, from_block: int) -> list[tuple[JobStatus, bool]]:
    """The provider's ``providerSetJobStatus`` transactions for ``job_id`` mined from block
    ``from_block`` on: (status sent, whether the chain took it)."""
    with market.connect(env.chain.rpc_url, grid_addresses(env)) as grid:
        function = _abi_item(grid.meta_scheduler, "function", "providerSetJobStatus")
        prefix = "0x" + selector(function).hex()
        provider = env.provider.address.lower()
        wanted = bytes.fromhex(job_id.removeprefix("0x"))
        sends: list[tuple[JobStatus, bool]] = []
        for number in range(from_block, grid.chain.block_number() + 1):
            block = grid.chain.request("eth_getBlockByNumber", [hex(number), True])
            for tx in block["transactions"]:
                data = str(tx.get("input") or tx.get("data") or "")
                if str(tx["from"]).lower() != provider or not data.startswith(prefix):
                    continue
                args = decode_values(function["inputs"], bytes.fromhex(data[len(prefix) :]))
                if args[0] != wanted:
                    continue
                receipt = grid.chain.request("eth_getTransactionReceipt", [tx["hash"]])
                sends.append((JobStatus(args[1]), int(receipt["status"], 16) == 1))
    return sends


def _abi_item(contract: Contract, kind: str, name: str) -> dict[str, Any]:
    return next(i for i in contract.abi if i.get("type") == kind and i["name"] == name)


def block_number(env: TestbedEnv) -> int:
    with market.connect(env.chain.rpc_url, grid_addresses(env)) as grid:
        return grid.chain.block_number()
