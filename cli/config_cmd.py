"""``grid-supervisor config check FILE`` and ``grid-supervisor config show``.

``check`` loads FILE the way ``run --config FILE`` would (the environment and any setting flag
still apply), then checks offline what the configuration names: files exist and are readable, the
wallet key is 32 bytes of hex, the SSH key parses, TLS material loads. It connects to nothing. It
prints ``ok: <summary>`` and exits 0, or prints every problem and exits 2.

``show`` prints the effective configuration with the source of every value (default, file, env
NAME, flag), as YAML or with ``--json``. Secrets print as ``<redacted>``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from config import EXIT_BAD_CONFIG, ConfigError, add_config_arguments


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "config",
        help="check or show the configuration",
        description="Check a configuration file offline, or show the effective configuration.",
    )
    actions = parser.add_subparsers(dest="config_action", metavar="ACTION")

    check = actions.add_parser(
        "check",
        help="validate a configuration file without connecting anywhere",
        description="Validate FILE (with the environment and flags applied) and the keys and "
        "files it names, without connecting anywhere. Exit 0 and print 'ok: ...', or exit 2.",
    )
    check.add_argument("file", type=Path, metavar="FILE", help="YAML configuration file")
    add_config_arguments(check, config_option=False)
    check.set_defaults(handler=check_command)

    show = actions.add_parser(
        "show",
        help="print the effective configuration and where each value comes from",
        description="Print the effective configuration (flags > environment > file > defaults) "
        "with each value's source. Secrets are redacted.",
    )
    show.add_argument("--json", action="store_true", help="print JSON instead of YAML")
    add_config_arguments(show)
    show.set_defaults(handler=show_command)

    def usage(args: argparse.Namespace) -> int:
        parser.print_help(sys.stderr)
        return 2

    parser.set_defaults(handler=usage)


def _bad_config(error: ConfigError) -> int:
    print(error.render(), file=sys.stderr)
    return EXIT_BAD_CONFIG


def _warn(warnings: tuple[str, ...]) -> None:
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)


def check_command(args: argparse.Namespace) -> int:
    from config.check import summary, verify_offline
    from config.load import flag_values, load

    try:
        loaded = load(file=args.file, env=os.environ, flags=flag_values(args))
        problems = verify_offline(loaded.config)
        if problems:
            raise ConfigError(problems)
    except ConfigError as error:
        return _bad_config(error)
    _warn(loaded.warnings)
    print(f"ok: {summary(loaded.config)}")
    return 0


def show_command(args: argparse.Namespace) -> int:
    from config.load import load_from_args
    from config.show import render_json, render_yaml

    try:
        loaded = load_from_args(args)
    except ConfigError as error:
        return _bad_config(error)
    _warn(loaded.warnings)
    sys.stdout.write(render_json(loaded) + "\n" if args.json else render_yaml(loaded))
    return 0
