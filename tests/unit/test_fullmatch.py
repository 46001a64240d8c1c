"""Validation patterns match the whole text: ``re.match("...$")`` lets a trailing newline through
(``$`` matches before it), so an address or a job id with one passed (issue 11)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from actors.grid import address, job_id
from runtime.systemd import format_notification

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("actors", "runtime", "config", "cli", "testbed", "bench")
ADDRESS = "0x" + "ab" * 20
JOB = "0x" + "cd" * 32


@pytest.mark.parametrize("suffix", ["\n", "\r\n", " ", "\n\n", "\x00"])
def test_addresses_and_job_ids_with_anything_after_them_are_refused(suffix: str) -> None:
    with pytest.raises(ValueError, match="not an address"):
        address(ADDRESS + suffix)
    with pytest.raises(ValueError, match="not a job id"):
        job_id(JOB + suffix)
    assert address(ADDRESS.upper().replace("0X", "0x")) == ADDRESS
    assert job_id(JOB) == JOB


def test_a_notification_key_with_a_newline_is_refused() -> None:
    with pytest.raises(ValueError, match="field name"):
        format_notification({"READY\n": 1})


def anchored_patterns() -> list[str]:
    """``file:line`` of every string literal starting with ``^`` or ending with ``$`` passed to
    ``re.compile``/``re.match``/``re.search`` in the project's packages."""
    found = []
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                if not (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and isinstance(node.func.value, ast.Name)
                    and node.func.value.id == "re"
                    and node.func.attr in ("compile", "match", "search")
                    and node.args
                    and isinstance(node.args[0], ast.Constant)
                    and isinstance(node.args[0].value, str)
                ):
                    continue
                pattern = node.args[0].value
                multiline = any("MULTILINE" in ast.unparse(arg) for arg in node.args[1:])
                if not multiline and (pattern.startswith("^") or pattern.endswith("$")):
                    found.append(f"{path.relative_to(REPO)}:{node.lineno}")
    return found


def test_no_validation_pattern_is_anchored_by_hand() -> None:
    """A whole-text check is written ``re.fullmatch`` / ``pattern.fullmatch`` (``^`` and ``$``
    only under re.MULTILINE, where they mean a line)."""
    assert anchored_patterns() == []
