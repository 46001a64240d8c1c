"""The fuzz suite: one module per input surface, each test bounded by :mod:`tests.fuzz.budget`."""

from __future__ import annotations

from tests.fuzz.budget import examples


def pytest_report_header() -> str:
    return f"fuzz budget: {examples()} inputs per test of weight 1 (GRID_FUZZ_EXAMPLES)"
