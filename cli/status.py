"""``grid-supervisor status``: how the running supervisor is doing, on one screen.

It asks the control socket for ``status`` (see :mod:`actors.control`) and prints::

    tree          running  restarts=0
    drain         off: claiming when approved
    registration  claiming  approval=approved
    chain         subscribed to ws://127.0.0.1:8545  head=812  cursor=811 (saved 811)  claiming=on
                  transactions: sent 12, resent 0, mined 12, reverted 0  in flight=0
                  claims: sent 4, delivered 4, undelivered 0
    slurm         healthy (8 ms)  partition=grid  connections=root=connected(0)
    callbacks     127.0.0.1:3000  tls=on  received=8  forwarded=8
    jobs          1 live of 4: RUNNING=1 DONE=3
    reports       0 waiting for the chain
    last errors   none

The answer carries each actor's whole statistics record (see :mod:`actors.control`); the text
picks the figures above from it. ``--json`` prints the answer as JSON. Where the supervisor is:
see :mod:`cli.locate`.

Exit status: 0 when shown, 1 when the supervisor could not be reached or refused, 2 for a bad
configuration.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO

from cli import locate
from cli.tree import _clean, render_json

__all__ = ["register", "render_status", "run"]

_LABEL = 14


def _line(label: str, text: str) -> str:
    return f"{label:<{_LABEL}}{text}".rstrip()


def _more(text: str) -> str:
    return " " * _LABEL + text


def _facts(facts: Mapping[str, Any], *keys: str) -> str:
    return "  ".join(
        f"{key}={_clean(facts[key])}" for key in keys if facts.get(key) not in (None, "", "-")
    )


def _switch(value: object) -> str:
    """A record's boolean as ``on``/``off`` (``?`` when the supervisor did not say)."""
    if isinstance(value, bool):
        return "on" if value else "off"
    return "?" if value is None else _clean(value)


def _block(value: object) -> str:
    return "-" if value is None else _clean(value)


def _connections(value: object) -> str:
    """The SSH pool's connections, ``user=state(channels in use)`` each."""
    if not isinstance(value, list):
        return ""
    return (
        " ".join(
            f"{_clean(str(c.get('user', '?'))[:12])}={_clean(c.get('state', '?'))}"
            f"({_clean(c.get('channels_in_use', '?'))})"
            for c in value
            if isinstance(c, Mapping)
        )
        or "none"
    )


def _since(stamp: object) -> str:
    if not isinstance(stamp, int | float) or stamp <= 0:
        return ""
    return " since " + time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp))


def render_status(status: Mapping[str, Any]) -> str:
    """The ``status`` answer as text (pure; missing parts are shown as unknown)."""
    lines = []
    tree = status.get("tree", {})
    restarts = tree.get("restarts", "?")
    lines.append(_line("tree", f"{_clean(tree.get('state', '?'))}  restarts={restarts}"))

    drain = status.get("drain", {})
    if drain.get("drained"):
        lines.append(_line("drain", f"DRAINED{_since(drain.get('since'))}: no new claims"))
    else:
        lines.append(_line("drain", "off: claiming when approved"))

    registration = status.get("registration", {})
    state = registration.get("state") or registration.get("actor", "?")
    approval = registration.get("approval")
    text = _clean(state) + (f"  approval={_clean(approval)}" if approval else "")
    lines.append(_line("registration", text))

    chain = status.get("chain", {})
    head = f"  head={_block(chain.get('head_block'))}"
    cursor = f"  cursor={_block(chain.get('cursor_block'))}"
    saved = chain.get("saved_cursor_block")
    cursor += f" (saved {_clean(saved)})" if saved is not None else ""
    claiming = f"  claiming={_switch(chain.get('claiming'))}"
    connection = _clean(chain.get("connection") or chain.get("actor", "?"))
    lines.append(_line("chain", connection + head + cursor + claiming))
    sender = chain.get("transactions")
    if isinstance(sender, Mapping):
        counts = ", ".join(  # replayed and filled (after a chain forgot) only when they happened
            f"{key} {_clean(sender[key])}"
            for key in ("sent", "resent", "mined", "reverted", "replayed", "filled")
            if key in sender and (sender[key] or key not in ("replayed", "filled"))
        )
        in_flight = _clean(sender.get("in_flight", "?"))
        lines.append(_more(f"transactions: {counts}  in flight={in_flight}"))
    if "claims_sent" in chain:
        lines.append(
            _more(
                f"claims: sent {_clean(chain['claims_sent'])}, "
                f"delivered {_clean(chain.get('claims_delivered', '?'))}, "
                f"undelivered {_clean(chain.get('claims_undelivered', '?'))}"
            )
        )
    if chain.get("enable_request_new_job") is False:
        lines.append(
            _more(
                "! no new job is claimed: the grid retired this meta-scheduler (enableRequestNewJob"
                " false); set chain.metaschedulerAddress to its current one and restart"
            )
        )

    slurm = status.get("slurm", {})
    healthy = slurm.get("healthy")
    if healthy:
        health = f"healthy ({slurm.get('latency_ms', '?')} ms)"
    else:
        health = f"UNHEALTHY: {_clean(slurm.get('detail', 'unknown'))}"
    facts = [health, _facts(slurm, "partition")]
    connections = _connections(slurm.get("connections"))
    if connections:
        facts.append(f"connections={connections}")
    lines.append(_line("slurm", "  ".join(part for part in facts if part)))
    if slurm.get("slurm_error"):
        lines.append(_more(f"last error: {_clean(slurm['slurm_error'])[:200]}"))

    callbacks = status.get("callbacks", {})
    counts = _facts(
        callbacks, "received", "duplicates", "refused", "forwarded", "left_for_recovery"
    )
    if callbacks.get("host") is not None:
        where = f"{_clean(callbacks['host'])}:{_clean(callbacks.get('port', '?'))}"
    else:
        where = _clean(callbacks.get("actor", "?"))
    tls = _switch(callbacks.get("tls"))
    lines.append(_line("callbacks", f"{where}  tls={tls}  {counts}"))

    jobs = status.get("jobs", {})
    by_phase = jobs.get("by_phase", {})
    phases = " ".join(f"{phase}={count}" for phase, count in by_phase.items() if count)
    total = jobs.get("total", 0)
    lines.append(_line("jobs", f"{jobs.get('live', 0)} live of {total}: {phases or 'none'}"))

    reports = status.get("reports_waiting", {})
    lines.append(_line("reports", f"{reports.get('count', 0)} waiting for the chain"))
    for report in reports.get("first", []):
        lines.append(
            _more(
                f"{_clean(report.get('job_id', '?'))} {_clean(report.get('status', '?'))} "
                f"(SLURM {_clean(report.get('slurm_job_id', '?'))})"
            )
        )

    errors = status.get("last_errors", [])
    if not errors:
        lines.append(_line("last errors", "none"))
    for index, error in enumerate(errors):
        text = (
            f"{_clean(error.get('actor', '?'))} ({_clean(error.get('kind', '?'))}): "
            f"{_clean(error.get('error', ''))[:200]}"
        )
        lines.append(_line("last errors", text) if index == 0 else _more(text))
    return "\n".join(lines)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``status`` to the ``grid-supervisor`` command line."""
    parser = subparsers.add_parser(
        "status",
        help="registration, chain, SLURM, jobs and reports of the running supervisor",
        description="Show how the running supervisor is doing: registration and approval, the "
        "chain connection and cursor, SSH and SLURM health, jobs by phase, reports waiting for "
        "the chain, the drain switch and the last errors.",
    )
    locate.add_location_arguments(parser, timeout=15.0)
    parser.add_argument("--json", action="store_true", help="print the answer as JSON")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """The ``status`` handler."""
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    from config import EXIT_BAD_CONFIG, ConfigError
    from runtime.control import ControlError

    try:
        path = locate.socket_path_from(args)
    except ConfigError as error:
        print(error.render(), file=err)
        return EXIT_BAD_CONFIG
    try:
        status = locate.request(path, "status", timeout=args.timeout)
    except ControlError as exc:
        print(f"grid-supervisor status: {locate.describe_failure(path, exc)}", file=err)
        return 1
    if not isinstance(status, Mapping):
        print(f"grid-supervisor status: the supervisor at {path} sent no status", file=err)
        return 1
    print(render_json(status) if args.json else render_status(status), file=out)
    return 0
