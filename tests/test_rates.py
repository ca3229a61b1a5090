"""dynamics.rates: the R3/R4/R6 constants against their definitions and brute force."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given

from dynamics import LinearDEQ, MatrixLinearDEQ, gradient_descent, rates
from dynamics.errors import InvalidInputError, ShapeError, StepSizeError
from dynamics.instances.linear import matrix_instance, scalar_instance
from dynamics.testing.strategies import linear_deq_instances, matrix_deq_instances


def test_scalar_constants_match_definitions(rng):
    inst = scalar_instance(rng, 3)
    m, th = inst.model, inst.theta0
    lam, Lam = np.linalg.eigvalsh(m.X.T @ m.X / m.n)[[0, -1]]
    R0 = m.risk(th)
    Q0 = th[:-1] @ th[:-1] + (1 - th[-1]) ** 2
    bb = np.linalg.norm(inst.beta_star) + math.sqrt(R0 / lam)
    assert rates.beta_bar(m, th) == pytest.approx(bb, rel=1e-12)
    dl = math.sqrt(Q0 / (1 + bb**2))
    assert rates.delta(m, th) == pytest.approx(dl, rel=1e-12)
    assert rates.cond_lower_bound(m, th) == pytest.approx(dl, rel=1e-12)
    ell = (2 * Lam * (1 + bb**2) + 2 * math.sqrt(Lam * R0) * (1 + 2 * bb)) / (
        dl / 2
    ) ** 2
    assert rates.smoothness_ell(m, th) == pytest.approx(ell, rel=1e-12)
    assert rates.gd_step_bound(m, th) == pytest.approx(1 / ell, rel=1e-12)
    assert rates.gf_rate(m, th) == pytest.approx(4 * lam / Q0, rel=1e-12)
    eta = 0.003
    q = 1 - 2 * eta * lam / (Q0 + 2 * eta * R0)
    assert rates.gd_rate_factor(m, th, eta) == pytest.approx(q, rel=1e-12)
    assert rates.gd_envelope(m, th, eta, 3) == pytest.approx(R0 * q**3, rel=1e-12)
    assert rates.gf_envelope(m, th, 0.0) == pytest.approx(R0, rel=1e-12)


def test_half_loss_halves_the_gradient_constants(rng):
    """Pitfall P7: a 1/2-MSE (loss_factor 1) halves kappa and ell; the GD factor uses
    c eta lam / (K0 + c eta R0)."""
    inst = scalar_instance(rng, 2)
    m, th = inst.model, inst.theta0
    assert rates.gf_rate(m, th, 1.0) == pytest.approx(rates.gf_rate(m, th) / 2)
    assert rates.smoothness_ell(m, th, 1.0) == pytest.approx(
        rates.smoothness_ell(m, th) / 2
    )
    # GD on R/2 with step 2 eta is GD on R with step eta: same factor.
    assert rates.gd_rate_factor(m, th, 0.02, 1.0) == pytest.approx(
        rates.gd_rate_factor(m, th, 0.01, 2.0), rel=1e-14
    )
    with pytest.raises(InvalidInputError):
        rates.gf_rate(m, th, 0.0)


def test_matrix_constants_match_definitions(rng):
    inst = matrix_instance(rng, 3, 4)
    m, th = inst.model, inst.theta0
    lam = np.linalg.eigvalsh(m.X.T @ m.X / m.n)[0]
    R0 = m.risk(th)
    W, U, _ = m.unpack(th)
    A = np.eye(3) - W
    ev = np.linalg.eigvalsh(A @ A.T + U @ U.T)
    mb = np.linalg.norm(inst.M_star, 2) + math.sqrt(R0 / lam)
    assert rates.m_bar(m, th) == pytest.approx(mb, rel=1e-12)
    assert rates.cond_lower_bound(m, th) == pytest.approx(
        ev[0] / (1 + mb**2), rel=1e-12
    )
    assert rates.gf_rate(m, th) == pytest.approx(4 * lam / ev[-1], rel=1e-12)
    q = 1 - 2 * 0.01 * lam / (ev[-1] + 2 * 0.01 * R0)
    assert rates.gd_rate_factor(m, th, 0.01) == pytest.approx(q, rel=1e-12)


def test_scalar_and_matrix_m1_rates_agree(rng):
    """For m = 1, lambda_max(C0) = Q0, so the conditional (b) factor equals (a)."""
    inst = scalar_instance(rng, 3)
    s = inst.model
    mm = MatrixLinearDEQ(s.X, s.y, m=1)
    th_m = mm.pack([[inst.theta0[-1]]], inst.theta0[None, :-1])
    assert rates.gd_rate_factor(mm, th_m, 0.01) == pytest.approx(
        rates.gd_rate_factor(s, inst.theta0, 0.01), rel=1e-12
    )
    assert rates.gf_rate(mm, th_m) == pytest.approx(rates.gf_rate(s, inst.theta0))
    assert rates.m_bar(mm, th_m) == pytest.approx(rates.beta_bar(s, inst.theta0))
    assert rates.cond_lower_bound(mm, th_m) == pytest.approx(
        rates.cond_lower_bound(s, inst.theta0) ** 2, rel=1e-12
    )


@given(linear_deq_instances(max_d=3, near_singular=None))
def test_beta_bar_bounds_the_sublevel_set(inst):
    """R3: every beta with R(beta) <= R0 has ||beta|| <= beta_bar (brute force)."""
    m, th = inst.model, inst.theta0
    R0 = m.risk(th)
    bb = rates.beta_bar(m, th)
    rng = np.random.default_rng(0)
    L = np.linalg.cholesky(m.sigma_hat)
    for _ in range(50):
        z = rng.normal(size=m.d)
        z *= math.sqrt(R0) * rng.uniform() ** (1 / m.d) / np.linalg.norm(z)
        beta = m.beta_star + np.linalg.solve(L.T, z)  # R(beta) = ||z||^2 <= R0
        assert np.linalg.norm(beta) <= bb * (1 + 1e-12)


@given(linear_deq_instances(max_d=3, near_singular=None))
def test_ell_bounds_the_hessian_on_its_region(inst):
    """R6 (a): ||Hessian||_2 <= ell on {|1-v| >= delta/2, ||beta|| <= beta_bar,
    R <= R0} (the g-bound of the derivation uses R <= R0), by brute-force sampling."""
    m, th = inst.model, inst.theta0
    R0, bb, dl = m.risk(th), rates.beta_bar(m, th), rates.delta(m, th)
    ell = rates.smoothness_ell(m, th)
    rng = np.random.default_rng(1)
    L = np.linalg.cholesky(m.sigma_hat)
    worst = 0.0
    for _ in range(60):
        z = rng.normal(size=m.d)
        z *= math.sqrt(R0) * rng.uniform() / np.linalg.norm(z)
        beta = m.beta_star + np.linalg.solve(L.T, z)
        if np.linalg.norm(beta) > bb:
            continue
        gap = (dl / 2) * (1 + rng.exponential()) * rng.choice([-1, 1])
        theta = np.concatenate([beta * gap, [1 - gap]])
        worst = max(worst, np.linalg.norm(m.hessian(theta), 2) / ell)
    assert worst <= 1.0


@given(linear_deq_instances(max_d=3, near_singular=None))
def test_gf_rate_is_a_pl_constant_on_the_initial_sphere(inst):
    """R4: ||grad R||^2 >= kappa R at every point of the sphere Q = Q0 (v != 1)."""
    m, th = inst.model, inst.theta0
    kappa = rates.gf_rate(m, th)
    r0 = math.sqrt(LinearDEQ.Q(th))
    rng = np.random.default_rng(2)
    for _ in range(40):
        p = rng.normal(size=m.d + 1)
        p *= r0 / np.linalg.norm(p)
        theta = p + np.concatenate([np.zeros(m.d), [1.0]])
        if abs(1 - theta[-1]) < 1e-6:
            continue
        r, g = m.value_and_grad(theta)
        assert g @ g >= kappa * (r - m.min_risk) * (1 - 1e-12)


@given(linear_deq_instances(max_d=4, near_singular=None))
def test_gf_limit_is_on_sphere_zero_risk_line_and_branch(inst):
    """R4: theta_inf lies on the initial sphere and the zero-risk line, same branch."""
    m, th = inst.model, inst.theta0
    lim = rates.gf_limit(m, th)
    assert LinearDEQ.Q(lim) == pytest.approx(LinearDEQ.Q(th), rel=1e-12)
    assert m.risk(lim) <= 1e-20 * max(1.0, m.risk(th))
    assert np.sign(1 - lim[-1]) == np.sign(1 - th[-1])


@given(matrix_deq_instances(max_m=3, readout=False))
def test_matrix_cond_bound_holds_along_descending_gd(inst):
    """R3/R5: sigma_min(I - W_k)^2 >= lambda_min(C0)/(1 + M_bar^2) along GD while the
    risk does not increase (C_k >= C0)."""
    m, th = inst.model, inst.theta0
    bound = rates.cond_lower_bound(m, th)
    s0 = np.linalg.svd(m.A(th), compute_uv=False)[-1]
    eta = (
        0.1
        * s0**2
        / (2 * m.lambda_max * (1 + np.linalg.norm(m.end_to_end(th), 2) ** 2))
    )
    traj = gradient_descent(m, th, eta, 30)
    ok = np.concatenate([[True], np.diff(traj.risks) <= 0])
    for k in range(len(traj.thetas)):
        if not ok[: k + 1].all():
            break
        s = np.linalg.svd(m.A(traj.thetas[k]), compute_uv=False)[-1]
        assert s**2 >= bound * (1 - 1e-9)


def test_non_realizable_data_use_the_excess_risk(rng):
    """Spec §1: for non-realizable data R0 is replaced by R0 - min R."""
    inst = scalar_instance(rng, 2, n=40)
    X = inst.model.X
    y = inst.model.y + 0.3 * rng.normal(size=40)
    m = LinearDEQ(X, y)
    assert m.min_risk > 1e-3
    R0 = m.risk(inst.theta0) - m.min_risk
    assert rates.excess_risk(m, inst.theta0) == pytest.approx(R0)
    assert rates.beta_bar(m, inst.theta0) == pytest.approx(
        np.linalg.norm(m.beta_star) + math.sqrt(R0 / m.lambda_min)
    )
    assert rates.gf_envelope(m, inst.theta0, 0.0) == pytest.approx(m.risk(inst.theta0))


def test_errors(rng):
    ro = matrix_instance(rng, 2, 2, k=2, readout=True)
    with pytest.raises(ShapeError, match="readout"):
        rates.gf_rate(ro.model, ro.theta0)
    mi = matrix_instance(rng, 2, 2)
    with pytest.raises(ShapeError):
        rates.smoothness_ell(mi.model, mi.theta0)
    with pytest.raises(ShapeError):
        rates.beta_bar(mi.model, mi.theta0)
    with pytest.raises(ShapeError):
        rates.gf_limit(mi.model, mi.theta0)
    s = scalar_instance(rng, 2)
    with pytest.raises(ShapeError):
        rates.m_bar(s.model, s.theta0)
    with pytest.raises(StepSizeError):
        rates.gd_rate_factor(s.model, s.theta0, -1.0)
    X = np.ones((6, 2))  # rank 1: lambda_min = 0
    with pytest.raises(InvalidInputError, match="lambda_min"):
        rates.gf_rate(LinearDEQ(X, np.ones(6)), np.array([0.1, 0.2, 0.3]))
    with pytest.raises(InvalidInputError):
        rates.gf_rate(object(), np.zeros(2))
