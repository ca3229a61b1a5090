"""Approximate-backprop objects (docs/theory/approximate.md): factors, linear factors
c(v), directions."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, strategies as st
from support import assert_close

from dynamics import gradient_descent
from dynamics.errors import InvalidInputError, UnknownOptionError
from dynamics.gradients import (
    JFB,
    Damped,
    ExactIFT,
    Neumann,
    Phantom,
    approx_direction,
    parse_backprop,
)
from dynamics.instances.linear import matrix_instance
from dynamics.instances.single_index import (
    APX_LIN_STARTS,
    apx_lin_model,
    local_instance,
)
from dynamics.testing.strategies import linear_deq_instances

METHODS = [
    ExactIFT(),
    JFB(),
    Neumann(1),
    Neumann(2),
    Neumann(3),
    Neumann(4),
    Damped(2, 0.5),
    Damped(3, 0.3),
    Damped(2, 1.0),
    Phantom(5, 0.5),
    Phantom(1, 0.25),
]
IDS = [m.label for m in METHODS]
V = np.r_[np.linspace(-3.0, 0.99, 200), np.linspace(1.01, 3.0, 100)]


@pytest.mark.claim("APX-NEUMANN-FACTOR")
@pytest.mark.parametrize("m", METHODS, ids=IDS)
def test_linear_factor_equals_factor_times_one_minus_v(m):
    """APX-NEUMANN-FACTOR: c(v) = factor(v) (1 - v), numerically and in SymPy."""
    np.testing.assert_allclose(
        m.inverse_factor(V) * (1 - V), m.linear_factor(V), rtol=1e-12, atol=1e-12
    )
    v = sp.Symbol("v")
    diff = sp.expand(m.inverse_factor(v) * (1 - v) - m.linear_factor(v))
    # Float parameters (lambda = 0.3) leave rounding-size coefficients, not zeros.
    assert all(abs(float(c)) < 1e-14 for c in sp.Poly(diff, v).coeffs()) or diff == 0


def test_closed_forms_of_the_spec_table():
    v = np.linspace(-3, 3, 61)
    np.testing.assert_allclose(JFB().linear_factor(v), 1 - v)
    np.testing.assert_allclose(Neumann(3).linear_factor(v), 1 - v**3)
    np.testing.assert_allclose(
        Damped(2, 0.5).linear_factor(v),
        (1 - v) * (3 + v) / 4,
        # where the factor is 0 (v = 1, -3) both sides cancel terms of size
        # <= (1 + lambda |1 - v|)^2 <= 9: a few ulps of that
        atol=32 * np.finfo(float).eps * 9,
    )
    # The authors' population-form factors are the table entries / (1 - v).
    np.testing.assert_allclose(Neumann(2).inverse_factor(v), 1 + v)
    np.testing.assert_allclose(Damped(2, 0.5).inverse_factor(v), 0.5 * (1.5 + 0.5 * v))


@pytest.mark.claim("APX-STALL")
def test_even_neumann_vanishes_at_minus_one():
    """APX-STALL mechanism: c(-1) = 0 and c < 0 for v < -1 for even m; odd m and
    damped-2 (lambda = 1/2) stay positive on v < 1 (damped-2 until v = -3)."""
    for m in (2, 4, 6):
        assert Neumann(m).linear_factor(-1.0) == 0.0
        assert np.all(Neumann(m).linear_factor(V[V < -1]) < 0)
    for m in (1, 3, 5):
        assert np.all(Neumann(m).linear_factor(V[V < 1]) > 0)
    d2 = Damped(2, 0.5)
    assert d2.linear_factor(-3.0) == 0.0
    assert np.all(d2.linear_factor(V[(V > -3) & (V < 1)]) > 0)


def test_local_factors():
    """APX-LOCAL: c0 = 1 for exact, JFB, Neumann-m; 1 - (1 - lambda)^m otherwise."""
    for m in (ExactIFT(), JFB(), Neumann(2), Neumann(7)):
        assert m.local_factor == 1
    assert Damped(2, 0.5).local_factor == 0.75
    # 1 - 0.5^5 is exact in binary; allow the ulps of a five-factor product
    assert Phantom(5, 0.5).local_factor == pytest.approx(
        31 / 32, rel=8 * np.finfo(float).eps
    )
    assert sp.nsimplify(Damped(2, sp.Rational(1, 2)).local_factor) == sp.Rational(3, 4)


@pytest.mark.parametrize("k,lam", [(1, 1.0), (3, 0.25), (5, 0.5), (8, 0.9)])
def test_phantom_unrolled_chain_rule_equals_closed_form(k, lam):
    J = np.linspace(-2, 2, 41)
    p = Phantom(k, lam)
    np.testing.assert_allclose(
        p.unrolled_factor(J), p.inverse_factor(J), rtol=1e-13, atol=1e-14
    )
    np.testing.assert_allclose(p.inverse_factor(J), Damped(k, lam).inverse_factor(J))


def test_validation_and_registry():
    for bad in (
        lambda: Neumann(0),
        lambda: Neumann(2.5),
        lambda: Neumann(True),
        lambda: Damped(2, 0.0),
        lambda: Damped(2, 1.5),
        lambda: Phantom(0, 0.5),
        lambda: Damped(2, "x"),
    ):
        with pytest.raises(InvalidInputError):
            bad()
    with pytest.raises(dataclasses.FrozenInstanceError):
        Neumann(2).m = 3  # type: ignore[misc]
    assert parse_backprop("neumann:3") == Neumann(3)
    assert parse_backprop("damped:2:0.5") == Damped(2, 0.5)
    assert parse_backprop("phantom:5") == Phantom(5, 0.5)
    assert parse_backprop("jfb") == JFB() and parse_backprop("exact") == ExactIFT()
    with pytest.raises(UnknownOptionError):
        parse_backprop("anderson")
    for bad in ("neumann", "jfb:2", "neumann:x", "damped:1:2:3"):
        with pytest.raises(InvalidInputError):
            parse_backprop(bad)


@pytest.mark.claim("APX-NEUMANN-FACTOR")
@given(
    inst=linear_deq_instances(max_d=3),
    v=st.floats(-2.5, 3.0).filter(lambda x: abs(1 - x) > 0.05),
    idx=st.integers(0, len(METHODS) - 1),
)
def test_linear_direction_is_c_times_exact(inst, v, idx):
    """APX-NEUMANN-FACTOR (property): on the scalar linear DEQ the approximate
    direction is c(v) x the exact gradient, orthogonal to (u, -(1 - v))."""
    m = METHODS[idx]
    theta = inst.theta0.copy()
    theta[-1] = v
    exact = inst.model.grad(theta)
    _, d = approx_direction(inst.model, m)(theta)
    assert_close(d, m.linear_factor(v) * exact, "APX-NEUMANN-FACTOR")
    gen = np.r_[theta[:-1], -(1 - v)]
    assert abs(d @ gen) <= 1e-12 * max(np.linalg.norm(d) * np.linalg.norm(gen), 1e-300)


@pytest.mark.claim("APX-JFB")
@pytest.mark.parametrize("name", ["tanh", "sigmoid", "sigma_eps:0.5", "gelu"])
def test_single_index_directions(name):
    """APX-JFB: single-index JFB equals the exact gradient at v = 0; Neumann-m tends
    to the exact gradient when |v sigma'| < 1; damped-1 is lambda x JFB."""
    inst = local_instance(np.random.default_rng(7), name, d=3, n=50, radius=0.5)
    theta = inst.theta0.copy()
    theta[-1] = 0.0
    exact = inst.model.grad(theta)
    assert_close(approx_direction(inst.model, JFB())(theta)[1], exact, "APX-JFB")
    theta[-1] = 0.4
    exact = inst.model.grad(theta)
    assert_close(approx_direction(inst.model, Neumann(200))(theta)[1], exact, 1e-12)
    assert_close(
        approx_direction(inst.model, Damped(1, 0.3))(theta)[1],
        0.3 * approx_direction(inst.model, JFB())(theta)[1],
        1e-14,
    )
    risk, _ = approx_direction(inst.model, Neumann(2))(theta)
    assert risk == pytest.approx(inst.model.risk(theta), rel=1e-14)


def test_direction_rejects_other_models_and_objects():
    inst = matrix_instance(np.random.default_rng(0), 2, 2)
    with pytest.raises(InvalidInputError):
        approx_direction(inst.model, JFB())
    with pytest.raises(InvalidInputError):
        approx_direction(apx_lin_model(), "jfb")


@pytest.mark.claim("APX-STALL")
def test_counterexample_through_the_gd_driver():
    """P-APX-LIN from (sqrt 8, 0): Neumann-2 stalls at b = -1 with positive risk,
    Neumann-3 reaches the float floor (5000 steps, eta 0.02)."""
    model = apx_lin_model()
    stall = gradient_descent(
        model,
        APX_LIN_STARTS[0],
        0.02,
        5000,
        direction=approx_direction(model, Neumann(2)),
    )
    assert abs(stall.final[-1] + 1) <= 1e-6 and stall.risks[-1] > 1e-3
    conv = gradient_descent(
        model,
        APX_LIN_STARTS[0],
        0.02,
        5000,
        direction=approx_direction(model, Neumann(3)),
    )
    assert conv.risks[-1] <= 1e-20
    assert conv.final[-1] < -1  # past the barrier: v_inf = 1 - 3/sqrt(2) < -1
    assert 1 - 3 / math.sqrt(2) < -1
