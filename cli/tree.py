"""``grid-supervisor tree``: show the live actor tree of a running supervisor.

The command asks the supervisor's control socket for ``tree`` and prints the answer::

    root              supervisor  running  restarts=0  up 3m12s
    ├── slurm         actor       running  restarts=1  up 1m02s  mailbox=0  handled=12
    │   ! last error: ConnectionLost: the SSH connection closed
    ├── jobs          supervisor  running  restarts=0  up 3m12s
    │   └── 0x2a      actor       running  restarts=0  up 42s  mailbox=0  handled=3  phase=RUNNING
    └── reaper        actor       running  restarts=0  up 3m12s  mailbox=0  handled=40

``--json`` prints the snapshot as JSON instead; ``--watch [SECONDS]`` redraws it in place until
Ctrl-C (an unreachable supervisor is shown and retried, so the view survives a restart).

The tree arrives as plain JSON data, and rendering works on that data alone (no import of the actor
runtime): each node is a mapping with ``name``, ``kind``, ``state``, ``restarts``, ``last_error``,
``uptime_seconds``, ``mailbox_depth``, ``handled``, ``info`` and ``children``; the supervisor
builds each node from the actor's ``statistics()`` record (:meth:`runtime.registry.Registry
.snapshot`), ``info`` being that record's own facts as ``key=value`` text. Missing fields are
left out of the line rather than treated as errors, so an older or newer supervisor still renders.

Where the supervisor is: ``--socket``, ``--state-dir``, or its configuration (``--config``,
``$GRID_SUPERVISOR_CONFIG``, ``/etc/grid-supervisor/config.yaml``); see :mod:`cli.locate`.

Exit status: 0 when the tree was shown, 1 when the supervisor could not be reached or refused
(the message names the socket it tried), 2 when the configuration naming its state folder is bad.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from cli import locate

#: Where the state folder is when neither the options nor a configuration say otherwise.
DEFAULT_STATE_DIR = locate.DEFAULT_STATE_DIR

#: Move the cursor home and clear the screen (ANSI), before each ``--watch`` frame.
CLEAR_SCREEN = "\x1b[H\x1b[2J"

_ERROR_WIDTH = 200


# --- rendering (pure) ----------------------------------------------------------------------------


def format_duration(seconds: float) -> str:
    """``45s``, ``3m12s``, ``2h03m``, ``4d07h``: short, and precise enough for an uptime."""
    total = max(0, int(seconds))
    days, rest = divmod(total, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def _clean(value: object) -> str:
    """One line of printable text: whitespace collapsed, control characters (escapes) removed."""
    text = " ".join(str(value).split())
    return "".join(ch if ch.isprintable() else "?" for ch in text)


def _details(node: Mapping[str, Any]) -> list[str]:
    """The fields after name, kind and state, in display order."""
    parts = []
    if "restarts" in node:
        parts.append(f"restarts={_clean(node['restarts'])}")
    uptime = node.get("uptime_seconds")
    if isinstance(uptime, int | float):
        parts.append(f"up {format_duration(uptime)}")
    if node.get("kind") != "supervisor":
        for key, label in (("mailbox_depth", "mailbox"), ("handled", "handled")):
            if key in node:
                parts.append(f"{label}={_clean(node[key])}")
    info = node.get("info")
    if isinstance(info, Mapping):
        parts.extend(f"{_clean(key)}={_clean(value)}" for key, value in info.items())
    return parts


def _last_error(node: Mapping[str, Any]) -> str | None:
    error = node.get("last_error")
    if not error:
        return None
    text = _clean(error)
    return text if len(text) <= _ERROR_WIDTH else text[: _ERROR_WIDTH - 1] + "…"


def _children(node: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    children = node.get("children")
    if not isinstance(children, Sequence):
        return []
    return [child for child in children if isinstance(child, Mapping)]


class _Row:
    __slots__ = ("branch", "error_prefix", "node")

    def __init__(self, node: Mapping[str, Any], branch: str, error_prefix: str) -> None:
        self.node = node
        self.branch = branch  # tree glyphs before the name
        self.error_prefix = error_prefix  # tree glyphs before this node's error line


def _rows(node: Mapping[str, Any], branch: str, inherited: str, rows: list[_Row]) -> None:
    """Depth-first: ``branch`` leads this node's line, ``inherited`` leads its descendants'."""
    children = _children(node)
    rows.append(_Row(node, branch, inherited + ("│   " if children else "")))
    for index, child in enumerate(children):
        last = index == len(children) - 1
        _rows(
            child,
            inherited + ("└── " if last else "├── "),
            inherited + ("    " if last else "│   "),
            rows,
        )


def render_tree(tree: object) -> str:
    """The tree (a node mapping, or a list of root nodes) as aligned lines of text."""
    roots: list[Mapping[str, Any]]
    if isinstance(tree, Mapping):
        roots = [tree]
    elif isinstance(tree, Sequence) and not isinstance(tree, str | bytes):
        roots = [node for node in tree if isinstance(node, Mapping)]
    else:
        raise TypeError(f"not an actor tree: {type(tree).__name__}")
    rows: list[_Row] = []
    for root in roots:
        _rows(root, "", "", rows)
    if not rows:
        return "(no actors)"

    labels = [row.branch + _clean(row.node.get("name", "?")) for row in rows]
    kinds = [_clean(row.node.get("kind", "")) for row in rows]
    states = [_clean(row.node.get("state", "")) for row in rows]
    label_width = max(len(label) for label in labels)
    kind_width = max(len(kind) for kind in kinds)
    state_width = max(len(state) for state in states)

    lines = []
    for row, label, kind, state in zip(rows, labels, kinds, states, strict=True):
        columns = [label.ljust(label_width)]
        columns += [kind.ljust(kind_width)] if kind_width else []
        columns += [state.ljust(state_width)] if state_width else []
        lines.append("  ".join([*columns, *_details(row.node)]).rstrip())
        error = _last_error(row.node)
        if error is not None:
            lines.append(f"{row.error_prefix}! last error: {error}")
    return "\n".join(lines)


def render_json(tree: object) -> str:
    import msgspec

    return msgspec.json.format(msgspec.json.encode(tree), indent=2).decode()


def render_frame(header: str, body: str) -> str:
    """One ``--watch`` screen: clear, header, blank line, body."""
    return f"{CLEAR_SCREEN}{header}\n\n{body}\n"


# --- where the supervisor is ---------------------------------------------------------------------


def state_dir_from(args: argparse.Namespace) -> Path:
    """The supervisor's state folder: ``--state-dir``, else from its configuration (the loader's
    precedence: environment, file, default; see :mod:`cli.locate`)."""
    return locate.state_dir_from(args)


def socket_path_from(args: argparse.Namespace) -> Path:
    """``--socket`` if given, else ``<state folder>/control.sock``."""
    return locate.socket_path_from(args)


# --- the command ---------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    locate.add_location_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the snapshot as JSON")
    parser.add_argument(
        "--watch",
        metavar="SECONDS",
        nargs="?",
        type=float,
        const=2.0,
        help="redraw in place every SECONDS (default 2) until Ctrl-C",
    )


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``tree`` to the ``grid-supervisor`` command line."""
    parser = subparsers.add_parser(
        "tree",
        help="show the live actor tree of the running supervisor",
        description="Show the live actor tree of the running supervisor.",
    )
    add_arguments(parser)
    parser.set_defaults(handler=run)


def fetch_tree(path: Path, timeout: float) -> Any:
    """Ask the supervisor at ``path`` for its tree; raises ControlError."""
    from runtime.control import control_request_sync

    return control_request_sync(path, "tree", timeout=timeout)


def _render(tree: object, as_json: bool) -> str:
    return render_json(tree) if as_json else render_tree(tree)


def _describe(path: Path, exc: Exception) -> str:
    from runtime.control import ControlCommandError

    if isinstance(exc, ControlCommandError):
        return f"the supervisor at {path} refused: {exc}"
    if isinstance(exc, TypeError):
        return f"the supervisor at {path} sent {exc}"
    return str(exc)


def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """The ``tree`` handler: print once, or redraw with ``--watch``."""
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    from config import EXIT_BAD_CONFIG, ConfigError

    try:
        path = socket_path_from(args)
    except ConfigError as error:
        print(error.render(), file=err)
        return EXIT_BAD_CONFIG
    if args.watch is not None:
        return watch(path, args.watch, timeout=args.timeout, as_json=args.json, out=out)
    from runtime.control import ControlError

    try:
        text = _render(fetch_tree(path, args.timeout), args.json)
    except (ControlError, TypeError) as exc:
        print(f"grid-supervisor tree: {_describe(path, exc)}", file=err)
        return 1
    print(text, file=out)
    return 0


def watch(
    path: Path,
    interval: float,
    *,
    timeout: float = 5.0,
    as_json: bool = False,
    out: TextIO,
    frames: int | None = None,
) -> int:
    """Redraw every ``interval`` seconds until Ctrl-C (or ``frames`` screens); returns 0."""
    from runtime.control import ControlError

    interval = max(interval, 0.1)
    drawn = 0
    try:
        while frames is None or drawn < frames:
            try:
                body = _render(fetch_tree(path, timeout), as_json)
            except (ControlError, TypeError) as exc:
                body = f"{_describe(path, exc)}\n(retrying every {interval:g} s; Ctrl-C to stop)"
            header = (
                f"grid-supervisor tree  {path}  every {interval:g} s  {time.strftime('%H:%M:%S')}"
            )
            out.write(render_frame(header, body))
            out.flush()
            drawn += 1
            if frames is None or drawn < frames:
                time.sleep(interval)
    except KeyboardInterrupt:
        out.write("\n")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m cli.tree``: the same command without the rest of the command line."""
    parser = argparse.ArgumentParser(prog="grid-supervisor tree")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
