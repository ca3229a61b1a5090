"""The GD driver and the exact GD drift identity of R5 (LIN-GD-DRIFT, LIN-GD-MONO)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, strategies as st
from support import TOL

from dynamics import RK4, Result, gradient_descent, integrate
from dynamics.errors import (
    ConvergenceError,
    NonFiniteError,
    ShapeError,
    SingularEquilibriumError,
    StepSizeError,
    WellPosednessError,
)
from dynamics.instances.linear import leg_model, scalar_instance, sweep_theta0
from dynamics.models.linear_deq import LinearDEQ
from dynamics.testing.strategies import linear_deq_instances, matrix_deq_instances

ETAS = st.floats(min_value=-4.0, max_value=0.0).map(lambda e: 10.0**e)


def record_gd(model, theta0, eta, steps):
    """Run the driver and keep the gradient of every step it took."""
    grads = []

    def direction(theta):
        r, g = model.value_and_grad(theta)
        grads.append(g)
        return r, g

    traj = gradient_descent(model, theta0, eta, steps, direction=direction)
    return traj, grads


@pytest.mark.claim("LIN-GD-DRIFT")
@given(linear_deq_instances(max_d=4, near_singular=None), ETAS, st.integers(1, 6))
def test_lin_gd_drift_scalar_property(inst, eta, steps):
    """LIN-GD-DRIFT (R5): Q_{k+1} - Q_k = eta^2 ||grad R_k||^2 for any eta."""
    traj, grads = record_gd(inst.model, inst.theta0, eta, steps)
    for k in range(len(traj.thetas) - 1):
        qa, qb = LinearDEQ.Q(traj.thetas[k]), LinearDEQ.Q(traj.thetas[k + 1])
        res = qb - qa - eta**2 * grads[k] @ grads[k]
        assert abs(res) <= TOL["LIN-GD-DRIFT"] * max(qa, qb, 1.0)
        assert qb - qa >= -TOL["LIN-GD-MONO"] * max(qa, qb, 1.0)


@pytest.mark.claim("LIN-GD-DRIFT")
@given(matrix_deq_instances(max_m=3), ETAS, st.integers(1, 4))
def test_lin_gd_drift_matrix_property(inst, eta, steps):
    """LIN-GD-DRIFT (R5): C_{k+1} - C_k = eta^2 (G_W G_W^T + G_U G_U^T); with a
    readout also C'_{k+1} - C'_k = eta^2 (G_W^T G_W + G_B^T G_B)."""
    m = inst.model
    traj, grads = record_gd(m, inst.theta0, eta, steps)
    for k in range(len(traj.thetas) - 1):
        a, b = traj.thetas[k], traj.thetas[k + 1]
        GW, GU, GB = m.unpack(grads[k])
        ca, cb = m.C(a), m.C(b)
        scale = max(np.linalg.norm(ca), np.linalg.norm(cb), 1.0)
        res = cb - ca - eta**2 * (GW @ GW.T + GU @ GU.T)
        assert np.abs(res).max() <= TOL["LIN-GD-DRIFT"] * scale
        if m.readout:
            pa, pb = m.C_readout(a), m.C_readout(b)
            scale = max(np.linalg.norm(pa), np.linalg.norm(pb), 1.0)
            res = pb - pa - eta**2 * (GW.T @ GW + GB.T @ GB)
            assert np.abs(res).max() <= TOL["LIN-GD-DRIFT"] * scale


def test_gd_records_every_step_and_max_step(rng):
    inst = scalar_instance(rng, 2)
    traj = gradient_descent(inst.model, inst.theta0, 0.01, 30)
    assert traj.result is Result.fixed_steps_completed
    assert traj.thetas.shape == (31, 3) and traj.risks.shape == (31,)
    np.testing.assert_allclose(traj.times, 0.01 * np.arange(31))
    step = 0.01 * traj.grad_norms[:-1].max()
    assert traj.stats["max_step_length"] == pytest.approx(step, rel=1e-15)
    np.testing.assert_array_equal(traj.thetas[0], inst.theta0)


def test_gd_is_deterministic_on_the_protocol():
    model = leg_model()
    a = gradient_descent(model, sweep_theta0(6), 0.01, 200)
    b = gradient_descent(model, sweep_theta0(6), 0.01, 200)
    np.testing.assert_array_equal(a.thetas, b.thetas)


@pytest.mark.parametrize("eta", [0.0, -0.1, float("nan"), float("inf"), "a"])
def test_non_positive_eta_raises(rng, eta):
    inst = scalar_instance(rng, 2)
    with pytest.raises(StepSizeError):
        gradient_descent(inst.model, inst.theta0, eta, 5)


def test_bad_theta_shape_raises(rng):
    inst = scalar_instance(rng, 2)
    with pytest.raises(ShapeError):
        gradient_descent(inst.model, np.zeros(5), 0.1, 5)


def test_start_on_singular_point_returns_singular_code(rng):
    inst = scalar_instance(rng, 1)
    traj = gradient_descent(inst.model, np.array([0.0, 1.0]), 0.01, 5)
    assert traj.result is Result.singular
    assert "step 0" in traj.message
    with pytest.raises(SingularEquilibriumError, match="singular"):
        gradient_descent(inst.model, np.array([0.0, 1.0]), 0.01, 5, throw=True)


def _step_onto_v_equal_one(model):
    """theta0, eta whose first GD step lands on v = 1 (to rounding)."""
    for v0 in (0.5, 1.5, 0.2, 1.8):
        th0 = np.array([0.7, v0])
        gv = model.grad(th0)[-1]
        eta = (v0 - 1.0) / gv
        if eta > 0:
            return th0, eta
    raise AssertionError("no start found")


def test_step_onto_singular_set_stops_with_singular_code():
    """A step that lands on v = 1 ends the run with Result.singular, keeping the
    failing iterate (risk NaN) for inspection; throw=True raises instead."""
    model = leg_model()
    th0, eta = _step_onto_v_equal_one(model)
    traj = gradient_descent(model, th0, eta, 10)
    assert traj.result is Result.singular
    assert "step 1" in traj.message
    assert np.isnan(traj.risks[-1]) and np.isfinite(traj.risks[0])
    assert abs(1.0 - traj.thetas[-1][-1]) <= 1e-12
    with pytest.raises(SingularEquilibriumError):
        gradient_descent(model, th0, eta, 10, throw=True)


def test_gd_crosses_singular_line_at_protocol_step():
    """Pitfall P2: GD (not GF) can jump across v = 1 near (0, 1) at eta = 0.01."""
    model = leg_model()
    crossed = 0
    for s in range(20):
        traj = gradient_descent(model, sweep_theta0(s), 0.01, 200)
        gaps = 1.0 - traj.thetas[:, -1]
        crossed += bool(np.any(np.sign(gaps) != np.sign(gaps[0])))
    assert crossed >= 1


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (SingularEquilibriumError, Result.singular),
        (WellPosednessError, Result.guard_violated),
        (ConvergenceError, Result.diverged),
        (NonFiniteError, Result.nonfinite),
    ],
)
def test_descent_and_flow_map_step_errors_alike(error, expected):
    """GD (explicit Euler) and the gradient-flow integrators share one mapping from
    the error a step raises to the result code (a failed inner solve is
    ``diverged`` for both, not ``nonfinite`` for GD)."""
    model = scalar_instance(np.random.default_rng(0), d=2).model
    theta0 = np.array([0.3, -0.2, 0.2])

    def direction(theta):
        if theta[-1] < 0.15:
            raise error("planted")
        return 1.0, np.array([0.0, 0.0, 1.0])

    gd = gradient_descent(model, theta0, eta=0.1, steps=5, direction=direction)
    flow = integrate(model, theta0, 0.5, integrator=RK4(), h=0.1, direction=direction)
    assert gd.result is expected and flow.result is expected
    assert gd.stats["steps_taken"] == 1


def test_gd_reports_final_risk_and_gradient(rng):
    """GD has no stopping criterion, so a run that did every step reports
    ``fixed_steps_completed`` (ok, but never ``successful``/converged, even when the
    risk barely moved); the progress is reported: the initial/final risk and final
    direction norm equal an independent evaluation of the model at the first and last
    iterate (same arithmetic, so to rounding), and the message states them."""
    inst = scalar_instance(rng, 2)
    traj = gradient_descent(inst.model, inst.theta0, 1e-6, 3)
    assert traj.result is Result.fixed_steps_completed
    assert traj.result.ok and not traj.result.converged
    assert "3 fixed steps ran (no stopping criterion)" in traj.message
    assert f"{traj.stats['risk_final']:.4g}" in traj.message
    r0, _ = inst.model.value_and_grad(traj.thetas[0])
    r1, d1 = inst.model.value_and_grad(traj.thetas[-1])
    assert traj.stats["risk_initial"] == pytest.approx(r0, rel=1e-12)
    assert traj.stats["risk_final"] == pytest.approx(r1, rel=1e-12)
    assert traj.stats["grad_norm_final"] == pytest.approx(np.linalg.norm(d1), rel=1e-12)
    # A tiny step barely moves the risk, and the stats make that visible.
    assert abs(traj.stats["risk_final"] - r0) <= 1e-3 * abs(r0)
