"""``grid-supervisor jobs``: every job the running supervisor knows, and ``jobs show`` for one.

``jobs`` lists the job records of the checkpoint store (live ones first)::

    JOB             PHASE      SLURM  CHAIN      ACTOR    LAST
    0x2a3fd81c09be  RUNNING    42     RUNNING    running  RUNNING: RUNNING on chain
    0x77c1e0a4d2f3  DONE       41     FINISHED   absent   DONE: FINISHED on chain

``--phase RUNNING`` keeps one phase, ``--wide`` prints whole job ids, ``--json`` the raw answer.

``jobs show 0x2a3f`` (any unique prefix of the id) prints one job: its record with the phase
history, the SLURM job id, what the chain says about it now (asked of the chain actor) and the
reports from the SLURM side its actor has not acted on yet (with whether the reporter presented
the secret, else SLURM must confirm them, and when they arrived).

Exit status: 0 when shown, 1 when the supervisor could not be reached or refused (an unknown or
ambiguous job id, say), 2 for a bad configuration.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from cli import locate
from cli.tree import _clean, render_json

__all__ = ["register", "render_job", "render_jobs", "run"]

SHORT_ID = 14  #: "0x" and 12 hex digits: unique enough to pass back to ``jobs show``


def _id(job_id: object, wide: bool) -> str:
    text = _clean(job_id)
    return text if wide else text[:SHORT_ID]


def render_jobs(rows: Sequence[Mapping[str, Any]], *, wide: bool = False) -> str:
    """The ``jobs`` answer as an aligned table (pure)."""
    if not rows:
        return "(no jobs)"
    header = ("JOB", "PHASE", "SLURM", "CHAIN", "ACTOR", "LAST")
    table = [header] + [
        (
            _id(row.get("job_id", "?"), wide),
            _clean(row.get("phase", "?")),
            _clean(row.get("slurm_job_id") if row.get("slurm_job_id") is not None else "-"),
            _clean(row.get("chain_status", "?")),
            _clean(row.get("actor", "?")),
            _clean(row.get("last", ""))[:60],
        )
        for row in rows
    ]
    widths = [max(len(line[column]) for line in table) for column in range(len(header) - 1)]
    lines = []
    for line in table:
        cells = [cell.ljust(width) for cell, width in zip(line, widths, strict=False)]
        lines.append("  ".join([*cells, line[-1]]).rstrip())
    return "\n".join(lines)


def _time(stamp: object) -> str:
    if not isinstance(stamp, int) or stamp <= 0:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp))


def render_job(job: Mapping[str, Any]) -> str:
    """The ``job`` answer as text (pure)."""
    lines = []

    def field(label: str, value: object) -> None:
        lines.append(f"{label:<18}{_clean(value)}".rstrip())

    field("job", job.get("job_id", "?"))
    actor = job.get("actor", {})
    actor_state = actor.get("state", "?") if isinstance(actor, Mapping) else "?"
    field("phase", f"{job.get('phase', '?')} (actor {actor_state})")
    field("slurm job", job.get("slurm_job_id") if job.get("slurm_job_id") is not None else "-")
    field("customer", job.get("customer", "?"))
    field("chain (last sent)", job.get("chain_status", "?"))
    if job.get("sending"):
        field("sending", job["sending"])
    if job.get("queued"):
        field("queued", job["queued"])
    if job.get("cancel_requested"):
        field("cancel", "requested by the customer")
    if job.get("reason"):
        field("reason", job["reason"])
    field("time limit", f"{job.get('max_duration_minute', '?')} min")
    definition = job.get("definition")
    if isinstance(definition, Mapping):
        keys = ("ntasks", "cpus_per_task", "mem_per_cpu", "gpus")
        field("resources", "  ".join(f"{key}={definition.get(key, '?')}" for key in keys))
    if job.get("script_bytes") is not None:
        field("script", f"{job['script_bytes']} bytes kept for resubmission")

    on_chain = job.get("on_chain")
    if on_chain is None:
        field("on chain", "unknown to the job repository")
    elif isinstance(on_chain, Mapping) and "error" in on_chain:
        field("on chain", f"could not ask: {on_chain['error']}")
    elif isinstance(on_chain, Mapping):
        field("on chain", on_chain.get("status", "?"))
        field("  provider", on_chain.get("provider", "?"))
        costs = f"max {on_chain.get('max_cost', '?')}  final {on_chain.get('final_cost', '?')}"
        field("  cost", costs)
        field("  start / end", f"{_time(on_chain.get('start'))} / {_time(on_chain.get('end'))}")
        field("  exit code", on_chain.get("exit_code", "?"))
        if on_chain.get("last_error"):
            field("  last error", on_chain["last_error"])
        if on_chain.get("has_cancel_request"):
            field("  cancel", "requested")

    lines.append("history")
    for step in job.get("history", []):
        if isinstance(step, Mapping):
            lines.append(f"  {_clean(step.get('phase', '?')):<12}{_clean(step.get('note', ''))}")
    reports = job.get("reports_waiting")
    if reports:
        lines.append("reports not acted on yet")
        for report in reports:
            trust = "secret" if report.get("authenticated") else "unchecked"
            lines.append(
                f"  {_clean(report.get('status', '?'))}  SLURM {_clean(report.get('slurm_job_id'))}"
                f"  duration {_clean(report.get('duration_seconds'))} s"
                f"  exit {_clean(report.get('exit_code'))}  {trust}"
                f"  received {_time(report.get('received_at'))}"
            )
    elif reports is not None:
        lines.append("reports not acted on yet: none")
    return "\n".join(lines)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``jobs`` (and ``jobs show``) to the ``grid-supervisor`` command line."""
    parser = subparsers.add_parser(
        "jobs",
        help="the jobs the running supervisor knows; 'jobs show 0x...' for one",
        description="List every job the running supervisor knows (its checkpoint store), or "
        "show one with its phase history, SLURM id, on-chain state and waiting reports.",
    )
    locate.add_location_arguments(parser, timeout=15.0)
    parser.add_argument("--json", action="store_true", help="print the answer as JSON")
    parser.add_argument("--phase", metavar="PHASE", help="only jobs in this phase (e.g. RUNNING)")
    parser.add_argument("--wide", action="store_true", help="print whole job ids")
    parser.add_argument(
        "action", nargs="?", choices=("list", "show"), default="list", help=argparse.SUPPRESS
    )
    parser.add_argument(
        "job_id", nargs="?", metavar="0x...", help="with 'show': the job (a unique prefix will do)"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """The ``jobs`` handler."""
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    from config import EXIT_BAD_CONFIG, ConfigError
    from runtime.control import ControlError

    if args.action == "show" and not args.job_id:
        print("grid-supervisor jobs show: which job? (0x... or a unique prefix)", file=err)
        return 2
    try:
        path = locate.socket_path_from(args)
    except ConfigError as error:
        print(error.render(), file=err)
        return EXIT_BAD_CONFIG
    try:
        if args.action == "show":
            answer = locate.request(path, "job", {"job_id": args.job_id}, timeout=args.timeout)
        else:
            filters = {"phase": args.phase} if args.phase else {}
            answer = locate.request(path, "jobs", filters, timeout=args.timeout)
    except ControlError as exc:
        print(f"grid-supervisor jobs: {locate.describe_failure(path, exc)}", file=err)
        return 1
    if args.json:
        text = render_json(answer)
    elif args.action == "show" and isinstance(answer, Mapping):
        text = render_job(answer)
    elif isinstance(answer, list):
        text = render_jobs(answer, wide=args.wide)
    else:
        print(f"grid-supervisor jobs: the supervisor at {path} sent an unexpected answer", file=err)
        return 1
    print(text, file=out)
    return 0
