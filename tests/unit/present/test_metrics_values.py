"""How a sample's value is written (``metrics.fmt``): whole numbers without a point,
the looked-up small numbers exactly as the general rule writes them."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from monitor.present.metrics import fmt


def general_rule(value: float) -> str:
    """What Prometheus' text format reads back as ``value``, written without the lookup."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return str(int(value)) if float(value).is_integer() else repr(float(value))


@given(st.one_of(st.integers(-1000, 100_000), st.floats(), st.booleans(),
                 st.integers(0, 300).map(float)))
def test_a_value_is_written_as_the_general_rule_writes_it(value: float) -> None:
    assert fmt(value) == general_rule(value)


def test_zero_in_every_guise_is_zero() -> None:
    assert {fmt(v) for v in (0, 0.0, -0.0, False)} == {"0"}
    assert {fmt(v) for v in (1, 1.0, True)} == {"1"}
