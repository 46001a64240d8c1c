"""Third-party warnings never reach an operator as raw text: the known harmless ones are silenced
at their source, and every other one becomes one log record (one JSON document in JSON mode)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: Every module of the daemon and its command line, imported the way `grid-supervisor` does:
#: warnings routed first, then the imports, with every other warning an error.
IMPORT_EVERYTHING = """
import pkgutil, importlib, warnings
from runtime.logs import route_warnings_to_logging
route_warnings_to_logging()
warnings.simplefilter("error")
route_warnings_to_logging()  # its filters before the blanket "error"
import cli.main
for name in cli.main.COMMAND_MODULES:
    importlib.import_module(name)
for package in ("runtime", "actors", "config", "cli", "protos", "contracts", "testbed"):
    root = importlib.import_module(package)
    for info in pkgutil.walk_packages(root.__path__, package + "."):
        if info.name in ("protos.generate", "testbed.__main__", "cli.__main__"):
            continue
        importlib.import_module(info.name)
print("imported")
"""


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-W", "error", "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_whole_command_line_imports_without_a_warning() -> None:
    out = run_python(IMPORT_EVERYTHING)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "imported"
    assert out.stderr == ""


def test_a_warning_is_one_json_record_in_json_mode() -> None:
    out = run_python(
        "import warnings\n"
        "from runtime.logs import configure_logging\n"
        "configure_logging('info', 'json')\n"
        "warnings.simplefilter('default')\n"
        "warnings.warn('first line\\n  second line', UserWarning)\n"
    )
    assert out.returncode == 0, out.stderr
    lines = out.stderr.splitlines()
    assert len(lines) == 1, out.stderr
    record = json.loads(lines[0])
    assert record["logger"] == "py.warnings"
    assert record["level"] == "warning"
    assert record["message"].startswith("UserWarning: first line second line (")


def test_a_warning_is_one_line_before_logging_is_configured() -> None:
    """Commands other than `run` never configure logging; a warning is still one line."""
    out = run_python(
        "import warnings\n"
        "from runtime.logs import route_warnings_to_logging\n"
        "route_warnings_to_logging()\n"
        "warnings.simplefilter('default')\n"
        "warnings.warn('a\\nb', RuntimeWarning)\n"
    )
    assert out.returncode == 0, out.stderr
    assert out.stderr.splitlines() == [out.stderr.strip()]
    assert "RuntimeWarning: a b" in out.stderr


def test_the_known_harmless_warnings_are_silenced_at_their_source() -> None:
    """asyncssh's DSA warnings are silenced only when they come from asyncssh: the same text
    from anywhere else still warns."""
    out = run_python(
        "import warnings\n"
        "from runtime.logs import quiet_known_warnings\n"
        "quiet_known_warnings()\n"
        "import asyncssh\n"
        "warnings.warn('DSA is deprecated and support will be removed', UserWarning)\n"
    )
    assert out.returncode == 1  # import asyncssh passed; the warning of __main__ is an error
    assert "UserWarning: DSA is deprecated" in out.stderr
