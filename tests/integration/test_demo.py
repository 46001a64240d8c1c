"""The README's first command is a test: `./dev demo` (``python -m testbed.demo``, the entry point
the recipe runs) ends with every demo job cold on chain, narrated, with no traceback."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from testbed import demo
from testbed.env import TestbedEnv

pytestmark = [pytest.mark.testbed, pytest.mark.slow]

COLD = re.compile(r"on chain: (0x[0-9a-f]{8})\.\. \((.+?)\) -> (FINISHED|FAILED|CANCELLED)\b")


def test_the_demo_narrates_every_job_to_its_end(testbed_env: TestbedEnv) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "testbed.demo", "--timeout", "240"],
        capture_output=True,
        text=True,
        timeout=400,
    )
    text = out.stdout + out.stderr
    assert out.returncode == 0, text
    assert "Traceback" not in text
    assert "Warning" not in text, text
    ended = {title: status for _, title, status in COLD.findall(out.stdout)}
    assert ended == {"hello": "FINISHED", "fails": "FAILED", "3 tasks": "FINISHED"}, text
    assert "exit code 768 (exit 3)" in out.stdout
    assert {title for title, _, _ in demo.JOBS} == set(ended)
    assert "supervisor stopped (exit 0)" in out.stdout


def test_approving_a_registration_that_waits_for_nothing_is_done(testbed_env: TestbedEnv) -> None:
    """The demo approves once per registration: with nothing waiting, no transaction is sent
    (a second `approve` would revert with WaitingApprovalOnly)."""
    from testbed.grid import approve_if_waiting, approve_provider

    approve_provider(testbed_env)
    assert approve_if_waiting(testbed_env) is False
    assert approve_if_waiting(testbed_env) is False


def test_a_failing_step_is_named_with_its_log_and_no_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from testbed.processes import TestbedError

    def fail(layout: object, step: demo.Step, timeout: float) -> int:
        step("deploying the contracts", "/var/log/somewhere.log")
        raise TestbedError("deploy contracts failed: solc exited 1")

    monkeypatch.setattr(demo, "run", fail)
    assert demo.main([]) == 1
    out = capsys.readouterr().out
    assert "the demo failed while deploying the contracts: deploy contracts failed" in out
    assert "read /var/log/somewhere.log for more" in out
    assert "Traceback" not in out
