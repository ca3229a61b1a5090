"""dynamics.testing assertion helpers: each passes on a true law and raises on a
wrong quantity (a helper that cannot fail checks nothing)."""

from __future__ import annotations

import numpy as np
import pytest

from dynamics import GaussLegendre, LinearDEQ, rates
from dynamics.errors import InvalidInputError
from dynamics.instances.linear import scalar_instance
from dynamics.testing import (
    as_model,
    assert_conserved,
    assert_gd_drift,
    assert_gradient_matches,
    assert_rate_bound,
    fd_gradient,
)


@pytest.fixture(scope="module")
def inst():
    return scalar_instance(np.random.default_rng(3), 3, n=10)


def test_conserved_Q_passes_and_risk_fails(inst):
    """R1: Q = ||u||^2 + (1 - v)^2 is conserved along GF; the risk is not."""
    drift = assert_conserved(LinearDEQ.Q, inst.model, inst.theta0, 2.0)
    assert drift < 1e-9
    with pytest.raises(AssertionError, match="not conserved"):
        assert_conserved(inst.model.risk, inst.model, inst.theta0, 2.0)
    # ||u||^2 alone changes along the flow (only the sum with (1-v)^2 is conserved).
    with pytest.raises(AssertionError, match="not conserved"):
        assert_conserved(lambda th: th[:-1] @ th[:-1], inst.model, inst.theta0, 2.0)


def test_conserved_with_gauss_legendre(inst):
    """A Gauss rule conserves quadratic invariants to its stage-solve tolerance."""
    drift = assert_conserved(
        LinearDEQ.Q,
        inst.model,
        inst.theta0,
        1.0,
        integrator=GaussLegendre(order=4, tol=1e-13),
        h=0.05,
        tol=1e-11,
    )
    assert drift < 1e-11
    with pytest.raises(InvalidInputError):
        assert_conserved(LinearDEQ.Q, inst.model, inst.theta0, 1.0, h=0.05)


def test_gd_drift_identity_and_wrong_identities(inst):
    """R5: Q_{k+1} - Q_k = eta^2 ||g_k||^2 exactly; 0 or eta ||g||^2 are wrong."""
    eta = 0.5 * rates.gd_step_bound(inst.model, inst.theta0)
    exact = lambda th, g, e: e**2 * (g @ g)  # noqa: E731
    assert (
        assert_gd_drift(LinearDEQ.Q, inst.model, inst.theta0, eta, 50, predicted=exact)
        < 1e-12
    )
    with pytest.raises(AssertionError, match="GD drift identity violated"):
        assert_gd_drift(LinearDEQ.Q, inst.model, inst.theta0, eta, 50)
    with pytest.raises(AssertionError, match="GD drift identity violated"):
        assert_gd_drift(
            LinearDEQ.Q,
            inst.model,
            inst.theta0,
            eta,
            50,
            predicted=lambda th, g, e: e * (g @ g),
        )


def test_rate_bound_holds_and_a_faster_rate_fails(inst):
    """R4: R(t) - R_min <= R0 exp(-kappa t); 3 kappa is not a valid rate here."""
    kappa = rates.gf_rate(inst.model, inst.theta0)
    T = 5.0 / kappa
    slack = assert_rate_bound(
        inst.model, inst.theta0, kappa, T, min_risk=inst.model.min_risk
    )
    assert slack >= -1e-8
    with pytest.raises(AssertionError, match="rate bound violated"):
        assert_rate_bound(
            inst.model, inst.theta0, 3 * kappa, T, min_risk=inst.model.min_risk
        )


def test_gradient_matches_exact_and_fd(inst):
    """The exact IFT gradient matches central differences; a 1e-4 relative error or a
    wrong coordinate is caught."""
    m, th = inst.model, inst.theta0
    err = assert_gradient_matches(m.grad, th, risk=m.risk)
    assert err < 1e-7
    with pytest.raises(AssertionError, match="finite differences"):
        assert_gradient_matches(
            lambda t: (1 + 1e-4) * m.grad(t), th, risk=m.risk, fd_rtol=1e-6
        )
    bad = m.grad(th).copy()
    bad[0] += 1e-6 * max(1.0, np.linalg.norm(bad))
    with pytest.raises(AssertionError, match="exact gradient"):
        assert_gradient_matches(bad, th, expected=m.grad)
    with pytest.raises(InvalidInputError):
        assert_gradient_matches(m.grad, th)


def test_fd_gradient_of_a_quadratic_is_exact_to_rounding():
    """Central differences are exact for quadratics (no truncation term)."""
    A = np.array([[2.0, 1.0], [1.0, 3.0]])
    th = np.array([0.3, -1.2])
    np.testing.assert_allclose(
        fd_gradient(lambda t: t @ A @ t, th), 2 * A @ th, rtol=1e-9
    )


def test_as_model_wraps_a_callable(inst):
    m = as_model(inst.model.value_and_grad, n_params=inst.model.n_params)
    assert m.risk(inst.theta0) == inst.model.risk(inst.theta0)
    with pytest.raises(InvalidInputError):
        as_model(inst.model.value_and_grad)
    with pytest.raises(InvalidInputError):
        as_model(3)
