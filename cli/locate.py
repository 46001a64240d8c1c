"""Finding a running supervisor's control socket, for ``tree``, ``status``, ``jobs``, ``drain``.

The socket is ``<state folder>/control.sock``. The commands take, most specific first:

``--socket PATH``
    the socket itself;
``--state-dir DIR``
    the state folder;
``--config FILE``
    the supervisor's configuration (default ``$GRID_SUPERVISOR_CONFIG``, else
    ``/etc/grid-supervisor/config.yaml`` when it exists): the state folder is read from it the way
    the daemon reads it (``GRID_SUPERVISOR_STATE_FOLDER`` in the environment, else
    ``state.folder`` in the file, else the default ``/var/lib/grid-supervisor``).

Only ``state.folder`` is read: an operator's shell may lack what the service's environment holds
(the wallet key, say), and the socket does not need it.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_CONFIG_FILE",
    "DEFAULT_STATE_DIR",
    "add_location_arguments",
    "config_file_from",
    "describe_failure",
    "request",
    "socket_path_from",
    "state_dir_from",
    "state_folder_from_config",
]

#: Where the state folder is when nothing says otherwise.
DEFAULT_STATE_DIR = Path("/var/lib/grid-supervisor")

#: The configuration file the packaged unit uses (deploy/grid-supervisor.service).
DEFAULT_CONFIG_FILE = Path("/etc/grid-supervisor/config.yaml")


def add_location_arguments(parser: argparse.ArgumentParser, *, timeout: float = 5.0) -> None:
    """``--socket``, ``--state-dir``, ``--config`` and ``--timeout``."""
    parser.add_argument(
        "--socket", metavar="PATH", help="the control socket (default: <state folder>/control.sock)"
    )
    parser.add_argument(
        "--state-dir",
        metavar="DIR",
        help="the supervisor's state folder (default: from the configuration, else "
        f"{DEFAULT_STATE_DIR})",
    )
    parser.add_argument(
        "--config",
        dest="config_file",
        metavar="FILE",
        type=Path,
        help="the supervisor's configuration, to find its state folder (default: "
        f"$GRID_SUPERVISOR_CONFIG, else {DEFAULT_CONFIG_FILE} if it exists)",
    )
    parser.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=float,
        default=timeout,
        help=f"how long to wait for an answer (default {timeout:g})",
    )


def config_file_from(args: argparse.Namespace, env: Mapping[str, str]) -> Path | None:
    """``--config``, else ``$GRID_SUPERVISOR_CONFIG``, else the packaged file if it exists."""
    from config.settings import ENV_CONFIG_FILE

    given: Path | None = getattr(args, "config_file", None)
    if given is not None:
        return given
    named = env.get(ENV_CONFIG_FILE, "").strip()
    if named:
        return Path(named)
    return DEFAULT_CONFIG_FILE if DEFAULT_CONFIG_FILE.is_file() else None


def state_folder_from_config(file: Path | None, env: Mapping[str, str]) -> Path:
    """``state.folder`` by the loader's precedence (environment > file > default).

    Raises :class:`config.ConfigError` for an unreadable file or an invalid value."""
    from config.errors import ConfigError
    from config.load import environment_values, flatten_document, read_yaml_file
    from config.settings import LEAF_BY_KEY

    leaf = LEAF_BY_KEY["state.folder"]
    raw: object = None
    if file is not None:
        problems: list[str] = []  # problems elsewhere are the daemon's business, not ours
        raw = flatten_document(read_yaml_file(file), problems).get(leaf.key)
        mine = [problem for problem in problems if problem.startswith(("state:", "state."))]
        if mine:
            raise ConfigError(mine)
    from_env = environment_values(env).get(leaf.key)
    if from_env is not None:
        raw = from_env[0]
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return Path(str(leaf.default))
    try:
        return Path(str(leaf.parse(raw)))
    except ValueError as error:
        raise ConfigError([f"{leaf.key}: {error}"]) from None


def state_dir_from(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> Path:
    """The supervisor's state folder: ``--state-dir``, else from the configuration."""
    if getattr(args, "state_dir", None) is not None:
        return Path(args.state_dir)
    environ = os.environ if env is None else env
    return state_folder_from_config(config_file_from(args, environ), environ)


def socket_path_from(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> Path:
    """``--socket`` if given, else ``<state folder>/control.sock``."""
    if getattr(args, "socket", None) is not None:
        return Path(args.socket)
    from runtime.control import control_socket_path

    return control_socket_path(state_dir_from(args, env))


def request(
    path: Path, command: str, args: Mapping[str, Any] | None = None, *, timeout: float
) -> Any:
    """Ask the supervisor at ``path``; raises :class:`runtime.control.ControlError`."""
    from runtime.control import control_request_sync

    return control_request_sync(path, command, dict(args or {}), timeout=timeout)


def describe_failure(path: Path, exc: Exception) -> str:
    """One line for an operator: why the supervisor at ``path`` did not answer."""
    from runtime.control import ControlCommandError

    if isinstance(exc, ControlCommandError):
        return f"the supervisor at {path} refused: {exc}"
    return str(exc)
