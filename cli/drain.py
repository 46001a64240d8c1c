"""``grid-supervisor drain`` and ``grid-supervisor resume``: pause and resume claiming.

``drain`` stops claiming new jobs and lets the running ones finish (their reports still reach the
chain). It answers once the claims in flight have ended::

    drained since 2026-11-24 17:02:03: claiming is off; 2 jobs still running
    (they finish as usual; 'grid-supervisor jobs' shows them, 'grid-supervisor resume' undoes this)

The drain is stored in the checkpoint store, so it survives a restart of the supervisor (and of
the machine) until ``resume``. ``resume`` turns it off; the supervisor claims again as soon as the
provider is approved. Use ``drain`` before an upgrade or maintenance of the cluster; wait until
``grid-supervisor jobs --phase RUNNING`` (or ``status``) shows no live job if the supervisor
itself must stop for long (a stopped supervisor misses nothing, though: reports wait in the
reporters' spool and the store).

Exit status: 0 on success, 1 when the supervisor could not be reached or refused, 2 for a bad
configuration. ``--json`` prints the answer as JSON.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO

from cli import locate
from cli.tree import render_json

__all__ = ["register", "render_answer", "run"]


def _since(stamp: object) -> str:
    if not isinstance(stamp, int | float) or stamp <= 0:
        return ""
    return " since " + time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp))


def render_answer(command: str, answer: Mapping[str, Any]) -> str:
    """The answer of ``drain`` or ``resume`` as text (pure)."""
    if command == "drain":
        live = answer.get("live_jobs", "?")
        already = " (already)" if answer.get("was_drained") else ""
        return (
            f"drained{already}{_since(answer.get('since'))}: claiming is "
            f"{answer.get('claiming', '?')}; {live} job(s) still live\n"
            "(they finish as usual; 'grid-supervisor jobs' shows them, "
            "'grid-supervisor resume' undoes this)"
        )
    already = " (was not drained)" if not answer.get("was_drained") else ""
    return (
        f"resumed{already}: claiming is {answer.get('claiming', '?')} "
        f"(approval: {answer.get('approval', '?')}; claiming starts once approved)"
    )


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``drain`` and ``resume`` to the ``grid-supervisor`` command line."""
    for command, summary in (
        ("drain", "stop claiming new jobs and let the running ones finish (survives restarts)"),
        ("resume", "undo 'drain': claim new jobs again once approved"),
    ):
        parser = subparsers.add_parser(command, help=summary, description=summary + ".")
        locate.add_location_arguments(parser, timeout=30.0)
        parser.add_argument("--json", action="store_true", help="print the answer as JSON")
        parser.set_defaults(handler=run, control_command=command)


def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """The ``drain`` / ``resume`` handler."""
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    from config import EXIT_BAD_CONFIG, ConfigError
    from runtime.control import ControlError

    command: str = args.control_command
    try:
        path = locate.socket_path_from(args)
    except ConfigError as error:
        print(error.render(), file=err)
        return EXIT_BAD_CONFIG
    try:
        answer = locate.request(path, command, timeout=args.timeout)
    except ControlError as exc:
        print(f"grid-supervisor {command}: {locate.describe_failure(path, exc)}", file=err)
        return 1
    if not isinstance(answer, Mapping):
        print(f"grid-supervisor {command}: unexpected answer from {path}", file=err)
        return 1
    print(render_json(answer) if args.json else render_answer(command, answer), file=out)
    return 0
