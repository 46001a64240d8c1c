"""``grid-supervisor run``: the daemon itself.

Loads the configuration (flags > environment > file > defaults; exit 2 on a bad one), sets up
logging, opens the checkpoint store under the state folder, builds the supervision tree
(:func:`actors.root.build_root`) and runs it until SIGTERM/SIGINT (:func:`runtime.app.run_tree`).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register(subparsers: Any) -> None:
    from config import add_config_arguments

    parser = subparsers.add_parser(
        "run",
        help="run the supervisor (the daemon)",
        description="Run the supervisor: register the cluster, claim jobs, run them in SLURM and "
        "report their states on chain, until SIGTERM or SIGINT.",
    )
    parser.add_argument(
        "--stop-deadline",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="how long a graceful stop may take before everything is cancelled (default 30)",
    )
    add_config_arguments(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from config import EXIT_BAD_CONFIG, ConfigError, load_from_args, verify_offline

    try:
        loaded = load_from_args(args)
        problems = verify_offline(loaded.config)
        if problems:
            raise ConfigError(problems)
    except ConfigError as error:
        print(error.render(), file=sys.stderr)
        return EXIT_BAD_CONFIG
    for warning in loaded.warnings:
        print(f"warning: {warning}", file=sys.stderr)

    import trio

    from actors.root import run_supervisor
    from runtime.logs import configure_logging

    cfg = loaded.config
    configure_logging(cfg.log.level, cfg.log.format)
    code: int = trio.run(run_supervisor, cfg, args.stop_deadline)
    return code
