"""SingleIndexDEQ (docs/theory/single_index.md, R7): forward solve, IFT gradient,
Hessian, errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy.optimize import brentq
from support import TOL, assert_close, central_fd_grad

from dynamics import gradient_descent
from dynamics.batched.single_index import autograd_grad, autograd_hessian
from dynamics.errors import (
    NonFiniteError,
    ShapeError,
    UnknownOptionError,
    WellPosednessError,
)
from dynamics.flows.gradient_flow import integrate
from dynamics.instances.single_index import local_instance
from dynamics.integrators import RK4
from dynamics.models.activations import get_activation
from dynamics.models.scalar_root import solve_roots
from dynamics.models.single_index import SingleIndexDEQ

SMOOTH = ["sigmoid", "tanh", "sigma_eps:0.25", "gelu"]
TRAINABLE = SMOOTH + ["leaky_relu", "identity"]


def instance(name: str, seed: int = 0, d: int = 3, n: int = 40, v: float = 0.3):
    rng = np.random.default_rng(seed)
    inst = local_instance(rng, name, d=d, n=n, radius=0.5)
    theta = inst.theta0.copy()
    theta[-1] = v
    return inst, theta


@pytest.mark.claim("SIM-GRAD")
@pytest.mark.parametrize("name", TRAINABLE)
@pytest.mark.parametrize("v", [-0.6, 0.45])
def test_sim_grad_against_fd_and_autograd(name, v):
    """SIM-GRAD: w_i = 2 (f_i - y_i) s'(s_i)/(1 - v s'(s_i)) against central FD and
    reverse-mode autograd through a converged Newton solve."""
    inst, theta = instance(name, v=v)
    model = inst.model
    g = model.grad(theta)
    assert model.last_residual <= TOL["SIM-FP-residual"]
    assert_close(g, central_fd_grad(model.risk, theta), "SIM-GRAD-fd", "vs FD")
    assert_close(
        g,
        autograd_grad(model.X, model.y, model.act, theta),
        "SIM-GRAD-autograd",
        "vs autograd",
    )


@pytest.mark.claim("SIM-HESS")
@pytest.mark.parametrize("name", SMOOTH)
def test_sim_hess_against_fd_and_torch_func(name):
    """SIM-HESS: analytic Hessian against torch.func.hessian and an FD Hessian."""
    inst, theta = instance(name, seed=1, v=-0.4)
    H = inst.model.hessian(theta)
    assert_close(
        H,
        autograd_hessian(inst.model.X, inst.model.y, inst.model.act, theta),
        "SIM-HESS-torch",
        "vs torch.func.hessian",
    )
    fd = np.array(
        [
            central_fd_grad(lambda t, i=i: inst.model.grad(t)[i], theta)
            for i in range(theta.size)
        ]
    )
    assert_close(H, fd, "SIM-HESS-fd", "vs FD")
    np.testing.assert_allclose(H, H.T, atol=1e-14)


@pytest.mark.claim("SIM-HESS")
@pytest.mark.parametrize("name", SMOOTH + ["identity"])
def test_sim_hess_at_target(name):
    """SIM-HESS (R7): H* = (2/n) sum s'(z_i)^2 w_i w_i^T is the Hessian at theta*;
    positive definite for non-affine s, null vector (-xi, 1) for s = id."""
    inst = local_instance(np.random.default_rng(3), name, d=3, n=80)
    Hs = inst.model.hessian_at_target(inst.xi)
    assert_close(Hs, inst.model.hessian(inst.theta_star), 1e-12, "H* vs hessian")
    lam = np.linalg.eigvalsh(Hs)
    if name == "identity":
        null = Hs @ np.r_[-inst.xi, 1.0]
        assert np.linalg.norm(null) <= 1e-10 * np.linalg.norm(Hs, 2)
    else:
        assert lam[0] > 0


@pytest.mark.claim("SIM-FP")
@pytest.mark.parametrize("name", TRAINABLE)
def test_sim_fp_root_matches_brent(name):
    """SIM-FP: the vectorised Newton root equals bracketed Brent; residual <= 1e-13."""
    act = get_activation(name)
    a = np.linspace(-5, 5, 41)
    top = 1.0 / (act.sup_slope if act.increasing else act.lipschitz)
    for v in (-0.8 * top, 0.0, 0.8 * top) + ((-25.0,) if act.increasing else ()):
        sol = solve_roots(act, a, v)
        assert sol.result.ok and sol.residual <= TOL["SIM-FP-residual"]
        lo, hi = act.bracket(a, v)
        ref = [
            brentq(
                lambda z, ai=ai: z - act.sigma(ai + v * z),
                lo_i,
                hi_i,
                xtol=1e-15,
                rtol=8.9e-16,
            )
            for ai, lo_i, hi_i in zip(
                a,
                np.broadcast_to(lo, a.shape),
                np.broadcast_to(hi, a.shape),
                strict=True,
            )
        ]
        assert_close(sol.y, ref, "SIM-FP-brent", f"{name} v={v}")


def test_newton_cycle_is_broken():
    """A steep sigmoid (v = -40) sends plain Newton into a 2-cycle; the safeguard
    (bisection unless the step halves) must still converge."""
    act = get_activation("sigmoid")
    a = np.linspace(-6, 6, 201)
    sol = solve_roots(act, a, -40.0)
    assert sol.result.ok
    np.testing.assert_allclose(sol.y, act.sigma(a - 40.0 * sol.y), atol=1e-13)


def test_warm_start_does_not_change_the_root():
    inst, theta = instance("tanh", v=0.5)
    warm = SingleIndexDEQ(inst.model.X, inst.model.y, "tanh")
    cold = SingleIndexDEQ(inst.model.X, inst.model.y, "tanh", warm_start=False)
    for k in range(5):  # large moves: the warm start is poor, the root the same
        th = theta + 0.05 * k
        np.testing.assert_allclose(warm.predict(th), cold.predict(th), atol=1e-15)
    for k in range(5):  # GD-sized moves: one evaluation of sigma per solve
        th = th - 1e-5 * k
        np.testing.assert_allclose(warm.predict(th), cold.predict(th), atol=1e-15)
        assert warm.last_iterations == 1


@pytest.mark.claim("SIM-NONCONS")
@pytest.mark.parametrize("name", SMOOTH + ["identity"])
def test_sim_noncons_formula(name):
    """SIM-NONCONS: dQ/dt = -(2/n) sum w_i (s_i - s(s_i)) = <grad Q, -grad R>;
    zero for s = id, nonzero otherwise."""
    inst, theta = instance(name, seed=4, v=0.2)
    g = inst.model.grad(theta)
    ref = -2.0 * np.r_[theta[:-1], theta[-1] - 1.0] @ g
    got = inst.model.dQ_dt(theta)
    scale = np.linalg.norm(theta) * np.linalg.norm(g)
    assert abs(got - ref) <= TOL["SIM-NONCONS"] * scale
    if name == "identity":
        assert abs(got) <= 1e-13 * scale
    else:
        assert abs(got) > 1e-6 * scale


# ------------------------------------------------------------------ errors


def test_v_outside_the_guard_raises():
    inst, theta = instance("tanh", v=1.2)
    with pytest.raises(WellPosednessError, match="well-posedness"):
        inst.model.risk(theta)
    inst, theta = instance("gelu", v=-0.95)  # non-monotone: |v| L < 1 needed
    with pytest.raises(WellPosednessError):
        inst.model.grad(theta)
    inst, theta = instance("sigmoid", v=-30.0)  # increasing: any negative v is fine
    assert np.isfinite(inst.model.risk(theta))
    inst, theta = instance("sigma_eps:0.5", v=0.64)
    assert np.isfinite(inst.model.risk(theta))  # 0.64 * 1.5 < 1
    guarded = SingleIndexDEQ(
        inst.model.X, inst.model.y, inst.model.act, authors_guard=True
    )
    with pytest.raises(WellPosednessError, match="authors' guard"):
        guarded.risk(theta)  # |v| (1 + eps) = 0.96 >= 0.95


def test_non_finite_data_and_parameters_raise():
    X = np.ones((4, 2))
    y = np.zeros(4)
    bad = X.copy()
    bad[1, 0] = np.nan
    with pytest.raises(NonFiniteError):
        SingleIndexDEQ(bad, y, "tanh")
    with pytest.raises(NonFiniteError):
        SingleIndexDEQ(X, np.r_[0, 0, np.inf, 0], "tanh")
    with pytest.raises(NonFiniteError):
        SingleIndexDEQ(X, y, "tanh").risk(np.array([0.1, np.nan, 0.0]))
    with pytest.raises(NonFiniteError):
        SingleIndexDEQ(X, y, "tanh").predict(np.zeros(3), bad)


def test_unknown_activation_and_shapes():
    with pytest.raises(UnknownOptionError, match="choose one of"):
        SingleIndexDEQ(np.ones((3, 1)), np.zeros(3), "swish")
    with pytest.raises(ShapeError):
        SingleIndexDEQ(np.ones((3, 1)), np.zeros(4), "tanh")
    with pytest.raises(ShapeError):
        SingleIndexDEQ(np.ones((3, 1)), np.zeros(3), "tanh").risk(np.zeros(3))


# ------------------------------------------------------------ training


def test_gd_and_gf_run_through_the_shared_engine():
    inst = local_instance(np.random.default_rng(5), "tanh", d=2, n=50, radius=0.2)
    traj = gradient_descent(inst.model, inst.theta0, 0.5, 300, throw=True)
    assert traj.risks[-1] < 1e-3 * traj.risks[0]
    flow = integrate(inst.model, inst.theta0, 5.0, integrator=RK4(), h=0.05, throw=True)
    assert flow.risks[-1] < flow.risks[0]


def test_leaky_relu_trains_and_gd_reports_guard_violations():
    inst = local_instance(np.random.default_rng(6), "leaky_relu", d=2, n=50, radius=0.2)
    traj = gradient_descent(inst.model, inst.theta0, 0.2, 200, throw=True)
    assert traj.risks[-1] < traj.risks[0]
    inst, theta = instance("tanh", v=0.99)
    traj = gradient_descent(inst.model, theta, 50.0, 50)  # huge steps leave |v| < 1
    assert traj.result.value in ("guard_violated", "fixed_steps_completed")


@pytest.mark.slow
@settings(max_examples=40)
@given(
    seed=st.integers(0, 2**31 - 1),
    name=st.sampled_from(SMOOTH),
    d=st.integers(1, 4),
    frac=st.floats(-0.95, 0.95),
)
def test_sim_grad_property(seed, name, d, frac):
    """SIM-GRAD (property): random instances inside the guard, against central FD."""
    act = get_activation(name)
    rng = np.random.default_rng(seed)
    inst = local_instance(rng, act, d=d, n=30, radius=float(rng.uniform(0.1, 1.0)))
    theta = inst.theta0.copy()
    theta[-1] = frac / (act.sup_slope if act.increasing else act.lipschitz)
    assert_close(
        inst.model.grad(theta), central_fd_grad(inst.model.risk, theta), "SIM-GRAD-fd"
    )


@pytest.mark.claim("SIM-FP")
@given(
    seed=st.integers(0, 2**31 - 1),
    name=st.sampled_from(TRAINABLE),
    frac=st.floats(-0.95, 0.95),
    neg=st.booleans(),
)
def test_sim_fp_property(seed, name, frac, neg):
    """SIM-FP (property): inside the guard the Newton root equals Brent's, from cold
    and from a random (bad) warm start."""
    act = get_activation(name)
    rng = np.random.default_rng(seed)
    a = rng.normal(0, 4, 12)
    v = frac / (act.sup_slope if act.increasing else act.lipschitz)
    if neg and act.increasing:
        v = -abs(v) * 30.0
    lo, hi = act.bracket(a, v)
    ref = np.array(
        [
            brentq(
                lambda z, ai=ai: z - act.sigma(ai + v * z),
                lo_i,
                hi_i,
                xtol=1e-15,
                rtol=8.9e-16,
            )
            for ai, lo_i, hi_i in zip(
                a,
                np.broadcast_to(lo, a.shape),
                np.broadcast_to(hi, a.shape),
                strict=True,
            )
        ]
    )
    for y0 in (None, rng.normal(0, 10, a.size)):
        sol = solve_roots(act, a, v, y0=y0)
        assert sol.result.ok
        assert_close(sol.y, ref, "SIM-FP-brent", f"{name} v={v}")


@pytest.mark.claim("SIM-NONCONS")
@settings(max_examples=15)
@given(seed=st.integers(0, 2**31 - 1), name=st.sampled_from(SMOOTH))
def test_sim_noncons_property(seed, name):
    """SIM-NONCONS (property): the dQ/dt formula equals <grad Q, -grad R>."""
    rng = np.random.default_rng(seed)
    act = get_activation(name)
    inst = local_instance(rng, act, d=int(rng.integers(1, 4)), n=30, radius=0.6)
    theta = inst.theta0.copy()
    theta[-1] = rng.uniform(-0.9, 0.9) / act.lipschitz
    g = inst.model.grad(theta)
    ref = -2.0 * np.r_[theta[:-1], theta[-1] - 1.0] @ g
    scale = np.linalg.norm(
        theta - np.r_[np.zeros(theta.size - 1), 1.0]
    ) * np.linalg.norm(g)
    assert abs(inst.model.dQ_dt(theta) - ref) <= TOL["SIM-NONCONS"] * 2 * scale
