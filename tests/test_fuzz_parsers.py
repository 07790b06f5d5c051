"""Fuzzing every parser a user feeds: a parsed result or a one-line UserError, nothing else.

200 examples per parser here (derandomized, so CI is reproducible); `python
benchmarks/fuzz_parsers.py --examples N` runs more with fresh seeds.
"""

from __future__ import annotations

import pytest
from fuzz_targets import TARGETS, FuzzTarget, outcome
from hypothesis import HealthCheck, given, settings

CI_EXAMPLES = 200


@pytest.mark.parametrize("target", TARGETS, ids=[t.name for t in TARGETS])
def test_parser_gives_a_result_or_a_one_line_user_error(target: FuzzTarget) -> None:
    seen: set[str] = set()

    @settings(
        max_examples=CI_EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(target.inputs)
    def check(value: object) -> None:
        seen.add(outcome(target, value))

    check()
    assert "refused" in seen  # the inputs do reach the parser's error paths
