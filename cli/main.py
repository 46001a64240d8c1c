"""The ``grid-supervisor`` command line.

Each subcommand lives in its own module under ``cli/`` and exposes ``register(subparsers)``, which
adds its parser and sets ``handler`` (a function taking the parsed namespace and returning an exit
code). Modules are imported here, but each keeps its heavy imports inside its handler so that
``--help`` and ``--version`` stay fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib import import_module
from importlib.metadata import PackageNotFoundError, version

#: Subcommand modules, in the order ``--help`` lists them.
COMMAND_MODULES: tuple[str, ...] = (
    "cli.run",
    "cli.config_cmd",
    "cli.tree",
    "cli.status",
    "cli.jobs",
    "cli.drain",
    "cli.report",
    "cli.authorized_keys",
)


def package_version() -> str:
    try:
        return version("grid-supervisor")
    except PackageNotFoundError:  # running from a tree that was never installed (or frozen)
        return "0.0.0+unknown"


#: Commands run from SLURM hooks, once per job: only their own module is imported for them.
HOOK_COMMANDS: dict[str, str] = {"report": "cli.report"}


def build_parser(modules: Sequence[str] = COMMAND_MODULES) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="grid-supervisor",
        description="Join a SLURM cluster to the compute grid: claim jobs from the meta-scheduler "
        "contract, run them in SLURM, report their states on chain.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in modules:
        import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # Before any library is imported: a warning becomes one log line (stderr; JSON once `run`
    # has configured logging), and the known harmless ones are silenced where they arise.
    from runtime.logs import route_warnings_to_logging

    route_warnings_to_logging()
    words = list(sys.argv[1:] if argv is None else argv)
    hook = HOOK_COMMANDS.get(words[0]) if words else None
    parser = build_parser((hook,) if hook else COMMAND_MODULES)
    args = parser.parse_args(words)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    code: int = handler(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
