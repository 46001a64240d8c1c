"""Integration fixtures: the real local grid, brought up once per test session.

``testbed_env`` runs ``testbed up`` (in-process, the same code as the CLI) once per session and
shares its env.  If the testbed was already up when the session started (a developer keeps it
running between runs), it is left running at the end; otherwise the session stops what it
started.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator

import pytest

from testbed import grid
from testbed.env import TestbedEnv
from testbed.layout import Layout
from tests.integration.supervisor_harness import Supervisor


@pytest.fixture(scope="session")
def testbed_layout() -> Layout:
    return Layout.from_env()


@pytest.fixture(scope="session")
def testbed_env(testbed_layout: Layout) -> Iterator[TestbedEnv]:
    """The running testbed's env (``testbed up`` once per session)."""
    was_up = grid.is_up(testbed_layout)

    def progress(message: str) -> None:
        print(f"testbed: {message}", file=sys.stderr)

    result = grid.up(testbed_layout, log=progress)
    yield result.env
    if not was_up:
        grid.down(testbed_layout)


@pytest.fixture(scope="module")
def supervisor(
    testbed_env: TestbedEnv, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Supervisor]:
    """One ``grid-supervisor run`` process per test module (modules with other needs define
    their own), stopped at the module's end; its log tail is printed if it ended badly."""
    running = Supervisor(testbed_env, tmp_path_factory.mktemp("supervisor"))
    try:
        yield running.start(timeout=60)
    finally:
        code = running.stop()
        if code not in (0, -signal.SIGKILL, None):
            print(running.log_tail(5000))
