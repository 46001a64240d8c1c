"""Integration fixtures: the real local grid, brought up once per test session.

``testbed_env`` runs ``testbed up`` (in-process, the same code as the CLI) once per session and
shares its env.  If the testbed was already up when the session started (a developer keeps it
running between runs), it is left running at the end; otherwise the session stops what it
started.

``reporters`` runs a test once per kind of SLURM-side reporter (``scripts``: this project's
hooks; ``plugins``: the operator's real C++ plugins), switching the testbed's live reporters
(``testbed up --reporters``). Every test run with the plugins is moved to the end of the session,
so that a run switches twice at most (to the plugins, and back to the default ``scripts`` when
the session ends) and no other test ever runs while the plugins are live.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator

import pytest

from testbed import grid, slurm
from testbed.env import TestbedEnv
from testbed.layout import Layout
from tests.integration.supervisor_harness import Supervisor


def _progress(message: str) -> None:
    print(f"testbed: {message}", file=sys.stderr)


@pytest.fixture(scope="session")
def testbed_layout() -> Layout:
    return Layout.from_env()


@pytest.fixture(scope="session")
def testbed_env(testbed_layout: Layout) -> Iterator[TestbedEnv]:
    """The running testbed's env (``testbed up`` once per session)."""
    was_up = grid.is_up(testbed_layout)
    result = grid.up(testbed_layout, log=_progress)
    yield result.env
    if not was_up:
        grid.down(testbed_layout)


REPORTER_KINDS = ("scripts", "plugins")


@pytest.fixture(scope="session", params=REPORTER_KINDS)
def reporters(
    request: pytest.FixtureRequest, testbed_env: TestbedEnv, testbed_layout: Layout
) -> Iterator[str]:
    """The kind of SLURM-side reporters live for this test (its parameter; a test that needs
    only one kind parametrizes it ``indirect``). The default ``scripts`` is live again once
    the session ends."""
    kind: str = request.param
    grid.up(testbed_layout, reporters=slurm.check_reporters(kind), log=_progress)
    yield kind
    if kind != slurm.DEFAULT_REPORTERS:
        grid.up(testbed_layout, log=_progress)


def _on_plugins(item: pytest.Item) -> bool:
    callspec = getattr(item, "callspec", None)
    return callspec is not None and callspec.params.get("reporters") == "plugins"


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests run with the real plugins go last, in their order (see the module docstring)."""
    items[:] = [i for i in items if not _on_plugins(i)] + [i for i in items if _on_plugins(i)]


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
