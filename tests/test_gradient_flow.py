"""Gradient-flow drivers: conservation (R1), the GF limit (R4), honest result codes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from support import TOL

from dynamics import rates
from dynamics._result import Result
from dynamics.errors import (
    ConvergenceError,
    InvalidInputError,
    SingularEquilibriumError,
)
from dynamics.flows.gradient_flow import flow_ivp, gradient_field, integrate
from dynamics.instances.linear import matrix_instance, scalar_instance
from dynamics.integrators import RK4, GaussLegendre, ImplicitMidpoint
from dynamics.integrators._implicit_rk import fd_jacobian
from dynamics.models.linear_deq import LinearDEQ
from dynamics.testing.strategies import linear_deq_instances, matrix_deq_instances


def invariant_drift(model, thetas) -> float:
    """max_t ||I(t) - I(0)||_F / max(1, ||I(0)||_F) over Q, or C (and C')."""

    def inv(th):
        if isinstance(model, LinearDEQ):
            return [np.array([LinearDEQ.Q(th)])]
        out = [model.C(th)]
        return out + [model.C_readout(th)] if model.readout else out

    ref = inv(thetas[0])
    return max(
        np.linalg.norm(a - b) / max(1.0, np.linalg.norm(b))
        for th in thetas
        for a, b in zip(inv(th), ref, strict=True)
    )


def stiffness(model, theta) -> float:
    """||Hessian(theta)||_2 by forward differences of the gradient field."""
    field = gradient_field(model)
    return float(
        np.max(
            np.abs(np.linalg.eigvals(fd_jacobian(field, 0.0, theta, field(0.0, theta))))
        )
    )


def short_horizon(model, theta0) -> float:
    """Ten stiffness time constants: the fast transient, cheap for DOP853."""
    return 10.0 / stiffness(model, theta0)


def test_gradient_field_is_minus_the_gradient(rng):
    inst = scalar_instance(rng, 3)
    field = gradient_field(inst.model)
    np.testing.assert_array_equal(
        field(0.7, inst.theta0), -inst.model.grad(inst.theta0)
    )
    calls = []

    def direction(theta):
        calls.append(1)
        r, g = inst.model.value_and_grad(theta)
        return r, 2.0 * g

    field = gradient_field(inst.model, direction)
    np.testing.assert_allclose(
        field(0.0, inst.theta0), -2 * inst.model.grad(inst.theta0)
    )
    assert calls


@pytest.mark.claim("LIN-GF-CONS")
@given(linear_deq_instances(max_d=4, near_singular=None))
def test_lin_gf_cons_scalar_property(inst):
    """LIN-GF-CONS (R1): Q(theta(t)) = Q(theta0) along GF (DOP853, midpoint)."""
    T = short_horizon(inst.model, inst.theta0)
    ref = flow_ivp(inst.model, inst.theta0, T, throw=True)
    assert invariant_drift(inst.model, ref.thetas) <= TOL["LIN-GF-CONS-dop853"]
    # Midpoint on every 4th accepted DOP853 step: short steps where the field is stiff.
    grid = np.append(ref.times[:-1:4], ref.times[-1])
    mid = integrate(
        inst.model,
        inst.theta0,
        ref.times[-1],
        grid=grid,
        throw=True,
        integrator=ImplicitMidpoint(jacobian=lambda t, th: -inst.model.hessian(th)),
    )
    assert invariant_drift(inst.model, mid.thetas) <= TOL["LIN-GF-CONS-implicit"]


@pytest.mark.claim("LIN-GF-CONS")
@given(matrix_deq_instances(max_m=3, readout=None))
def test_lin_gf_cons_matrix_property(inst):
    """LIN-GF-CONS (R1): C(t) = C0, and C'(t) = C'0 with a readout, along GF."""
    T = short_horizon(inst.model, inst.theta0)
    ref = flow_ivp(inst.model, inst.theta0, T, throw=True)
    assert invariant_drift(inst.model, ref.thetas) <= TOL["LIN-GF-CONS-dop853"]
    if inst.model.readout:  # hence ||U||_F^2 - ||B||_F^2 is constant too

        def gap(th):
            W, U, B = inst.model.unpack(th)
            return np.sum(U**2) - np.sum(B**2)

        g = np.array([gap(th) for th in ref.thetas])
        assert np.max(np.abs(g - g[0])) <= 1e-9 * max(1.0, abs(g[0]))


@pytest.mark.claim("LIN-GF-CONS")
@pytest.mark.parametrize("readout", [False, True])
def test_gauss_rules_conserve_matrix_invariants(rng, readout):
    inst = matrix_instance(rng, 3, 4, k=2 if readout else None, readout=readout)
    T = short_horizon(inst.model, inst.theta0)
    for integ in (ImplicitMidpoint(), GaussLegendre(), GaussLegendre(order=6)):
        tr = integrate(
            inst.model, inst.theta0, T, integrator=integ, h=T / 40, throw=True
        )
        assert invariant_drift(inst.model, tr.thetas) <= TOL["LIN-GF-CONS-implicit"]
    rk = integrate(inst.model, inst.theta0, T, integrator=RK4(), h=T / 40, throw=True)
    assert invariant_drift(inst.model, rk.thetas) > 1e3 * TOL["LIN-GF-CONS-implicit"]


@pytest.mark.claim("LIN-GF-CONS")
def test_dop853_drift_falls_when_tolerance_tightens():
    """P8: a general-purpose integrator's drift shrinks with its tolerance."""
    inst = scalar_instance(np.random.default_rng(3), 4, near_singular=True)
    T = 20.0 / rates.gf_rate(inst.model, inst.theta0)
    drifts = [
        invariant_drift(
            inst.model,
            flow_ivp(
                inst.model, inst.theta0, T, rtol=rtol, atol=rtol * 1e-2, throw=True
            ).thetas,
        )
        for rtol in (1e-6, 1e-9, 1e-12)
    ]
    assert drifts[0] > 10 * drifts[1] > 100 * drifts[2], drifts
    assert drifts[2] <= TOL["LIN-GF-CONS-dop853"]


@pytest.mark.claim("LIN-GF-LIMIT")
@pytest.mark.parametrize(
    "seed, d, near, flip",
    [(0, 1, False, False), (1, 3, True, False), (2, 2, False, True)],
)
def test_gf_limit_matches_closed_form(seed, d, near, flip):
    """LIN-GF-LIMIT (R4): theta(T) -> (beta* (1-v_inf), v_inf) on the same branch."""
    inst = scalar_instance(np.random.default_rng(seed), d, near_singular=near)
    theta0 = inst.theta0.copy()
    if flip:
        theta0[-1] = 2.0 - theta0[-1]  # the same sphere, the other branch of v = 1
    T = (
        1.05
        * np.log(1e18 * inst.model.risk(theta0))
        / rates.gf_rate(inst.model, theta0)
    )
    tr = flow_ivp(inst.model, theta0, T, stop_risk=1e-18, throw=True)
    assert tr.risks[-1] <= 1e-14
    limit = rates.gf_limit(inst.model, theta0)
    assert np.linalg.norm(tr.final - limit) <= TOL["LIN-GF-LIMIT"]
    assert np.sign(1.0 - limit[-1]) == np.sign(1.0 - theta0[-1])


def test_radau_with_exact_hessian_matches_dop853(rng):
    """P8: the stiff solver with the exact Jacobian -H gives the same flow."""
    inst = scalar_instance(rng, 2, near_singular=True)
    T = short_horizon(inst.model, inst.theta0)
    a = flow_ivp(inst.model, inst.theta0, T, throw=True)
    b = flow_ivp(
        inst.model,
        inst.theta0,
        T,
        method="Radau",
        rtol=1e-11,
        jac=lambda t, th: -inst.model.hessian(th),
        throw=True,
    )
    assert b.stats["njev"] >= 1
    np.testing.assert_allclose(b.final, a.final, rtol=0, atol=1e-8)


def test_integrate_grid_records_and_stats(rng):
    inst = scalar_instance(rng, 2)
    tr = integrate(
        inst.model, inst.theta0, 1.0, integrator=GaussLegendre(), h=0.03, record_every=5
    )
    assert tr.result is Result.successful
    n = int(np.ceil(1.0 / 0.03))
    assert tr.stats["steps_taken"] == n and tr.times[-1] == 1.0
    assert list(tr.steps) == list(range(0, n, 5)) + ([n] if n % 5 else [])
    np.testing.assert_allclose(tr.risks, [inst.model.risk(t) for t in tr.thetas])
    grid = np.array([0.0, 0.1, 0.15, 0.6, 1.0])
    tg = integrate(inst.model, inst.theta0, 1.0, integrator=RK4(), grid=grid)
    np.testing.assert_array_equal(tg.times, grid)
    assert tg.stats["h"] == pytest.approx(0.45) and tg.stats["h_min"] == pytest.approx(
        0.05
    )
    zero = integrate(inst.model, inst.theta0, 0.0, integrator=RK4(), h=0.1)
    assert zero.result is Result.successful and len(zero.times) == 1
    with pytest.raises(InvalidInputError):
        integrate(inst.model, inst.theta0, 1.0, integrator=RK4())
    with pytest.raises(InvalidInputError):
        integrate(inst.model, inst.theta0, 1.0, integrator=RK4(), h=0.1, grid=grid)
    with pytest.raises(InvalidInputError):
        integrate(inst.model, inst.theta0, 1.0, integrator=RK4(), grid=[0.0, 0.5])
    with pytest.raises(InvalidInputError):
        integrate(inst.model, inst.theta0, 1.0, integrator="rk4", h=0.1)


def test_flow_ivp_t_eval_and_stop_risk(rng):
    inst = scalar_instance(rng, 3)
    T = 10.0 / rates.gf_rate(inst.model, inst.theta0)
    t_eval = np.linspace(0.0, T, 7)
    tr = flow_ivp(inst.model, inst.theta0, T, t_eval=t_eval)
    np.testing.assert_array_equal(tr.times, t_eval)
    assert tr.stats["dense"] is not None and not tr.stats["stopped"]
    np.testing.assert_allclose(tr.stats["dense"](T), tr.final)
    stop = 1e-3 * inst.model.risk(inst.theta0)
    ts = flow_ivp(inst.model, inst.theta0, T, t_eval=t_eval, stop_risk=stop)
    assert ts.stats["stopped"] and ts.risks[-1] <= stop < ts.risks[-2]
    assert ts.times[-1] == ts.stats["t_reached"] < T
    with pytest.raises(InvalidInputError):
        flow_ivp(inst.model, inst.theta0, T, t_eval=[0.5, 0.2])
    with pytest.raises(InvalidInputError):
        flow_ivp(inst.model, inst.theta0, 0.0)


def test_singular_start_is_labelled_not_raised():
    X = np.linspace(0.1, 1.0, 10)[:, None]
    model = LinearDEQ(X, 2.0 * X[:, 0])
    theta0 = np.array([0.3, 1.0])  # v = 1: no equilibrium
    for tr in (
        flow_ivp(model, theta0, 1.0),
        integrate(model, theta0, 1.0, integrator=RK4(), h=0.1),
        integrate(model, theta0, 1.0, integrator=ImplicitMidpoint(), h=0.1),
    ):
        assert tr.result is Result.singular
        assert "1 - v" in tr.message
        np.testing.assert_array_equal(tr.final, theta0)
    with pytest.raises(SingularEquilibriumError):
        flow_ivp(model, theta0, 1.0, throw=True)
    with pytest.raises(SingularEquilibriumError):
        integrate(model, theta0, 1.0, integrator=RK4(), h=0.1, throw=True)


def test_failed_stage_solve_and_nonfinite_direction_are_labelled(rng):
    inst = scalar_instance(rng, 2)
    T = 100.0 / rates.gf_rate(inst.model, inst.theta0)
    # Fixed-point stage iteration cannot converge with a step this large.
    tr = integrate(
        inst.model,
        inst.theta0,
        T,
        h=T,
        integrator=ImplicitMidpoint(solver="fixed_point"),
    )
    assert tr.result is Result.diverged and "stage" in tr.message
    with pytest.raises(ConvergenceError):
        tr.raise_on_failure()

    def nan_direction(theta):
        return float("nan"), np.full_like(theta, np.nan)

    tr = integrate(
        inst.model, inst.theta0, 1.0, integrator=RK4(), h=0.1, direction=nan_direction
    )
    assert tr.result is Result.nonfinite


def test_scalar_multiple_direction_keeps_q(rng):
    """A direction c(theta) * grad R (approximate backprop, docs/theory/approximate.md)
    keeps Q too."""
    inst = scalar_instance(rng, 3)
    theta0 = inst.theta0.copy()
    theta0[-1] = min(theta0[-1], 0.5)  # JFB's factor 1 - v is positive on v < 1

    def jfb(theta):
        r, g = inst.model.value_and_grad(theta)
        return r, (1.0 - theta[-1]) * g

    tr = flow_ivp(inst.model, theta0, short_horizon(inst.model, theta0), direction=jfb)
    assert tr.result is Result.successful
    assert invariant_drift(inst.model, tr.thetas) <= TOL["LIN-GF-CONS-dop853"]
