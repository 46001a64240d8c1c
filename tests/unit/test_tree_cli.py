"""``grid-supervisor tree``: rendering on sample trees, and the command against a real server."""

from __future__ import annotations

import argparse
import copy
import io
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import trio

from cli import tree as tree_cli
from cli.tree import CLEAR_SCREEN, format_duration, render_tree
from runtime.control import ControlServer, control_socket_path

REPO = Path(__file__).resolve().parents[2]


def node(name: str, kind: str = "actor", **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": name,
        "kind": kind,
        "state": "running",
        "restarts": 0,
        "last_error": None,
        "uptime_seconds": 192.7,
        "mailbox_depth": 0,
        "handled": 0,
        "info": {},
        "children": [],
    }
    base.update(fields)
    return base


SAMPLE: dict[str, Any] = node(
    "root",
    "supervisor",
    children=[
        node(
            "slurm",
            restarts=1,
            uptime_seconds=62,
            handled=12,
            last_error="ConnectionLost: the SSH\nconnection closed",
        ),
        node(
            "jobs",
            "supervisor",
            children=[
                node(
                    "0x2a", uptime_seconds=42, mailbox_depth=1, handled=3, info={"phase": "RUNNING"}
                ),
                node("0x2b", uptime_seconds=5, info={"phase": "QUEUED", "id": "17"}),
            ],
        ),
        node("reaper", state="restarting", restarts=3, uptime_seconds=None, handled=40),
    ],
)

SAMPLE_TEXT = """\
root          supervisor  running     restarts=0  up 3m12s
├── slurm     actor       running     restarts=1  up 1m02s  mailbox=0  handled=12
│   ! last error: ConnectionLost: the SSH connection closed
├── jobs      supervisor  running     restarts=0  up 3m12s
│   ├── 0x2a  actor       running     restarts=0  up 42s  mailbox=1  handled=3  phase=RUNNING
│   └── 0x2b  actor       running     restarts=0  up 5s  mailbox=0  handled=0  phase=QUEUED  id=17
└── reaper    actor       restarting  restarts=3  mailbox=0  handled=40"""


# --- pure rendering ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (45.9, "45s"),
        (60, "1m00s"),
        (192, "3m12s"),
        (3600, "1h00m"),
        (7380, "2h03m"),
        (86400 * 4 + 3600 * 7 + 59, "4d07h"),
        (-3, "0s"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_render_sample_tree() -> None:
    assert render_tree(SAMPLE) == SAMPLE_TEXT


def test_render_error_lines_follow_the_tree_glyphs() -> None:
    tree = node(
        "root",
        "supervisor",
        last_error="root failed once",
        children=[node("a", "supervisor", children=[node("b", last_error="b failed")])],
    )
    assert render_tree(tree).splitlines() == [
        "root       supervisor  running  restarts=0  up 3m12s",
        "│   ! last error: root failed once",
        "└── a      supervisor  running  restarts=0  up 3m12s",
        "    └── b  actor       running  restarts=0  up 3m12s  mailbox=0  handled=0",
        "        ! last error: b failed",
    ]


def test_render_tolerates_missing_fields_and_forests() -> None:
    text = render_tree(
        [{"name": "lonely"}, {"name": "other", "state": "stopped", "children": None}]
    )
    assert text.splitlines() == ["lonely", "other   stopped"]
    assert render_tree([]) == "(no actors)"
    with pytest.raises(TypeError, match="not an actor tree"):
        render_tree(42)


def test_render_cleans_terminal_escapes_and_truncates_long_errors() -> None:
    tree = node("evil\x1b[2Jname", last_error="x" * 500, info={"k\x07": "v\nw"})
    first, error = render_tree(tree).splitlines()
    assert "\x1b" not in first and "\x07" not in first
    assert "evil?[2Jname" in first
    assert "k?=v w" in first
    assert error.startswith("! last error: xxx")
    assert error.endswith("…")
    assert len(error) == len("! last error: ") + 200


# --- argument handling ---------------------------------------------------------------------------


def parse(*argv: str) -> argparse.Namespace:
    """Parse exactly as ``grid-supervisor`` does: through ``register`` on a subparsers object."""
    parser = argparse.ArgumentParser(prog="grid-supervisor")
    tree_cli.register(parser.add_subparsers(dest="command"))
    return parser.parse_args(["tree", *argv])


def test_register_and_defaults() -> None:
    args = parse()
    assert args.handler is tree_cli.run
    assert (args.json, args.watch, args.timeout) == (False, None, 5.0)
    assert tree_cli.socket_path_from(args) == Path("/var/lib/grid-supervisor/control.sock")
    assert parse("--watch").watch == 2.0
    assert parse("--watch", "0.5").watch == 0.5
    assert tree_cli.socket_path_from(parse("--state-dir", "/srv/grid")) == Path(
        "/srv/grid/control.sock"
    )
    assert tree_cli.socket_path_from(parse("--state-dir", "/srv/grid", "--socket", "/x.sock")) == (
        Path("/x.sock")
    )


# --- end to end against a real control server ----------------------------------------------------


@pytest.fixture
async def supervisor(tmp_path: Path) -> AsyncIterator[ControlServer]:
    async def tree(args: dict[str, Any]) -> Any:
        return SAMPLE

    server = ControlServer(control_socket_path(tmp_path))
    server.register("tree", tree)
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve)
        yield server
        nursery.cancel_scope.cancel()


async def run_cli(*argv: str) -> tuple[int, str, str]:
    args = parse(*argv)
    out, err = io.StringIO(), io.StringIO()
    code = await trio.to_thread.run_sync(lambda: tree_cli.run(args, out, err))
    return code, out.getvalue(), err.getvalue()


async def test_prints_the_live_tree(supervisor: ControlServer, tmp_path: Path) -> None:
    code, out, err = await run_cli("--state-dir", str(tmp_path))
    assert (code, err) == (0, "")
    assert out == SAMPLE_TEXT + "\n"


async def test_json_output(supervisor: ControlServer) -> None:
    code, out, _ = await run_cli("--socket", str(supervisor.path), "--json")
    assert code == 0
    assert msgspec.json.decode(out) == SAMPLE


async def test_unreachable_supervisor_exits_1_and_says_where(tmp_path: Path) -> None:
    code, out, err = await run_cli("--state-dir", str(tmp_path))
    assert (code, out) == (1, "")
    assert err == (
        f"grid-supervisor tree: no supervisor is running: {tmp_path}/control.sock does not exist\n"
    )


async def test_supervisor_without_a_tree_command(tmp_path: Path) -> None:
    server = ControlServer(control_socket_path(tmp_path))
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve)
        code, _, err = await run_cli("--socket", str(server.path))
        nursery.cancel_scope.cancel()
    assert code == 1
    assert f"the supervisor at {server.path} refused: unknown command 'tree'" in err


async def test_watch_frames_in_thread_follow_changes(tmp_path: Path) -> None:
    current = copy.deepcopy(SAMPLE)

    async def tree(args: dict[str, Any]) -> Any:
        current["restarts"] += 1  # each frame sees a new snapshot
        return current

    server = ControlServer(control_socket_path(tmp_path))
    server.register("tree", tree)
    out = io.StringIO()
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve)
        code = await trio.to_thread.run_sync(
            lambda: tree_cli.watch(server.path, 0.1, out=out, frames=2)
        )
        nursery.cancel_scope.cancel()
    assert code == 0
    frames = out.getvalue().split(CLEAR_SCREEN)[1:]
    assert len(frames) == 2
    assert "root          supervisor  running     restarts=1" in frames[0]
    assert "root          supervisor  running     restarts=2" in frames[1]
    assert frames[0].startswith(f"grid-supervisor tree  {server.path}  every 0.1 s  ")


def test_watch_keeps_retrying_an_unreachable_supervisor(tmp_path: Path) -> None:
    out = io.StringIO()
    assert tree_cli.watch(tmp_path / "control.sock", 0.1, out=out, frames=2) == 0
    frames = out.getvalue().split(CLEAR_SCREEN)[1:]
    assert len(frames) == 2
    assert all("does not exist" in frame and "retrying every 0.1 s" in frame for frame in frames)


async def test_watch_in_a_real_process_until_ctrl_c(supervisor: ControlServer) -> None:
    """``python -m cli.tree --watch`` redraws until SIGINT, then exits 0."""
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "cli.tree", "--socket", str(supervisor.path), "--watch", "0.1"],
        stdout=-1,  # subprocess.PIPE
        cwd=REPO,
    )
    assert process.stdout is not None
    seen = b""
    with trio.fail_after(20):
        while seen.count(CLEAR_SCREEN.encode()) < 3:
            chunk = await process.stdout.receive_some()
            assert chunk, "the watch ended by itself"
            seen += chunk
        process.send_signal(signal.SIGINT)
        assert await process.wait() == 0
    frames = seen.decode().split(CLEAR_SCREEN)[1:]
    assert all(SAMPLE_TEXT in frame for frame in frames[:2])
