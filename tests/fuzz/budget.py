"""How many inputs each fuzz test tries: ``GRID_FUZZ_EXAMPLES`` (default 50, a few seconds per
module on two cores); ``./dev fuzz`` runs the long profile (see docs/fuzzing.md).

Every fuzz test is decorated with ``@fuzz()`` (``@fuzz(0.2)`` for one that costs five times as
much per input), so one variable scales the whole folder and no test has its own timing bound.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, Phase, settings

DEFAULT_EXAMPLES = 50


def examples() -> int:
    """The budget of one fuzz test of weight 1 (``GRID_FUZZ_EXAMPLES``)."""
    text = os.environ.get("GRID_FUZZ_EXAMPLES", "").strip()
    return int(text) if text.isascii() and text.isdigit() and int(text) > 0 else DEFAULT_EXAMPLES


def fuzz(weight: float = 1.0) -> settings:
    """Hypothesis settings for one fuzz test: ``weight`` times the budget, no deadline (a slow
    input is not a failure), no health check that only complains about slowness or size, and no
    "explain" phase (it reruns a failure hundreds of times to comment on it)."""
    return settings(
        max_examples=max(1, round(examples() * weight)),
        deadline=None,
        phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
            HealthCheck.function_scoped_fixture,
        ],
    )
