"""proofs_check.on_data: catalogued claims judged on a user's X, y, theta0."""

from __future__ import annotations

import numpy as np
import pytest

from dynamics.errors import InvalidInputError
from dynamics.instances.linear import matrix_instance
from proofs_check.on_data import run_claim
from proofs_check.registry import Status


@pytest.fixture(scope="module")
def user_data():
    rng = np.random.default_rng(11)
    X = rng.standard_normal((12, 3))
    y = X @ np.array([0.5, -1.0, 2.0])
    theta0 = np.array([0.2, -0.1, 0.3, 0.4])
    return X, y, theta0


@pytest.mark.parametrize("claim", ["LIN-GF-CONS", "LIN-GD-DRIFT", "LIN-GF-RATE"])
def test_claims_pass_on_user_data(user_data, claim):
    res = run_claim(claim, *user_data)
    assert res.status is Status.passed, res.reason
    assert (
        res.worst_margin >= 0 if claim != "LIN-GF-RATE" else res.worst_margin >= -1e-8
    )


def test_gd_drift_on_the_matrix_deq():
    inst = matrix_instance(np.random.default_rng(2), 2, 3, n=10)
    m = inst.model
    res = run_claim("LIN-GD-DRIFT", m.X, m.Y, inst.theta0, m=2, eta=1e-3, steps=30)
    assert res.status is Status.passed, res.reason


def test_unknown_claim_is_a_named_error(user_data):
    with pytest.raises(InvalidInputError, match="supports"):
        run_claim("APX-LOCAL", *user_data)


def test_a_run_that_stops_early_fails_with_a_reason(user_data):
    """A start on the singular set v = 1 has no equilibrium: fail, never pass."""
    X, y, _ = user_data
    res = run_claim("LIN-GD-DRIFT", X, y, np.array([0.0, 0.0, 0.0, 1.0]), eta=1e-3)
    assert res.status is Status.failed and "stopped early" in res.reason


@pytest.mark.parametrize("claim", ["LIN-COND", "LIN-GD-RATE"])
def test_conditioning_and_gd_rate_pass_on_user_data(user_data, claim):
    """R3 (|1-v(t)| >= r0/sqrt(1+bbar^2) along GF) and R6 (a) (eta <= 1/ell =>
    R_k - R_min <= q^k R_0) hold on a user's scalar instance, with a margin that is
    not an equality by construction (LIN-COND's identity part is left out of it)."""
    res = run_claim(claim, *user_data)
    assert res.status is Status.passed, res.reason
    assert res.worst_margin > 1e-6, res.reason


def test_conditioning_and_gd_rate_on_the_matrix_deq():
    """LIN-COND (b) and the conditional LIN-GD-RATE on the matrix DEQ; the matrix
    GD rate needs an explicit eta (R6 derives 1/ell only for the scalar model)."""
    inst = matrix_instance(np.random.default_rng(2), 2, 3, n=10)
    m = inst.model
    res = run_claim("LIN-COND", m.X, m.Y, inst.theta0, m=2)
    assert res.status is Status.passed, res.reason
    res = run_claim("LIN-GD-RATE", m.X, m.Y, inst.theta0, m=2, eta=1e-2, steps=300)
    assert res.status is Status.passed and "conditional" in res.reason, res.reason
    with pytest.raises(InvalidInputError, match="needs eta"):
        run_claim("LIN-GD-RATE", m.X, m.Y, inst.theta0, m=2)


def test_planted_bugs_turn_the_new_claims_to_fail(user_data, monkeypatch):
    """Each can fail: a conditioning floor twice too high, and a GD rate constant ten
    times too large (the R6 bound is loose by a factor ~3-10 on this instance, so a
    factor 10 is what the measurement can resolve here), both turn to fail."""
    from dynamics import rates

    floor, factor = rates.cond_lower_bound, rates.gd_rate_factor
    monkeypatch.setattr(rates, "cond_lower_bound", lambda mo, t: 2 * floor(mo, t))
    assert run_claim("LIN-COND", *user_data).status is Status.failed
    monkeypatch.setattr(
        rates,
        "gd_rate_factor",
        lambda mo, t, eta, lf=2.0: 1 - 10 * (1 - factor(mo, t, eta, lf)),
    )
    assert run_claim("LIN-GD-RATE", *user_data).status is Status.failed
