"""proofs_check.discovery.safe_expr: strings become SymPy expressions without eval."""

from __future__ import annotations

import pytest
import sympy as sp

from dynamics.errors import InvalidInputError
from proofs_check.discovery.safe_expr import parse_expression

a, b = sp.symbols("a b", real=True)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("a*b", a * b),
        ("a^2 - 3*b/2", a**2 - sp.Rational(3, 2) * b),
        ("-tanh(a) + exp(b) * pi", -sp.tanh(a) + sp.exp(b) * sp.pi),
        ("Rational(1, 3) * sqrt(a)", sp.sqrt(a) / 3),
    ],
)
def test_parses_arithmetic_over_the_map_symbols(text, expected):
    got = parse_expression(text, [a, b])
    assert sp.simplify(got - expected) == 0
    assert got.free_symbols <= {a, b}  # the map's own (real) symbols, not new ones


@pytest.mark.parametrize(
    "text, match",
    [
        ("__import__('os').system('true')", "not allowed"),
        ("a.__class__", "not allowed"),
        ("(lambda: 1)()", "not allowed"),
        ("c + a", "'c'"),
        ("exp(a, base=2)", "not allowed"),
        ("'a'", "not allowed"),
        ("9**9**9", "exponent"),
        ("a +", "cannot parse"),
    ],
)
def test_refuses_everything_else(text, match):
    with pytest.raises(InvalidInputError, match=match):
        parse_expression(text, [a, b])
