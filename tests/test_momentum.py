"""The momentum and adaptive optimisers of :mod:`dynamics.optim` and the exact laws
they satisfy on the linear DEQs (LIN-MOM-DRIFT, LIN-MOM-SPHERE)."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

from dynamics import Result, gradient_descent
from dynamics.errors import (
    HyperparameterError,
    SingularEquilibriumError,
    StepSizeError,
)
from dynamics.instances import leg_model, leg_perturbation, matrix_instance
from dynamics.models.linear_deq import LinearDEQ
from dynamics.optim import Adam, HeavyBall, Nesterov, RMSProp, optimize
from proofs_check.symbolic.momentum import lin_sym_mom_scalar

torch = pytest.importorskip("torch")


@pytest.fixture
def matrix_case():
    inst = matrix_instance(np.random.default_rng(5), 2, 3)
    return inst.model, inst.theta0


# ------------------------------------------------------------------ validation


@pytest.mark.parametrize(
    "build, error",
    [
        (lambda: HeavyBall(0.0, 0.5), StepSizeError),
        (lambda: HeavyBall(-1e-3, 0.5), StepSizeError),
        (lambda: HeavyBall(1e-3, 1.0), HyperparameterError),
        (lambda: Nesterov(1e-3, -0.1), HyperparameterError),
        (lambda: Nesterov(1e-3, float("nan")), HyperparameterError),
        (lambda: Adam(1e-3, beta1=1.0), HyperparameterError),
        (lambda: Adam(1e-3, beta2=-0.5), HyperparameterError),
        (lambda: Adam(1e-3, eps=0.0), HyperparameterError),
        (lambda: RMSProp(1e-3, alpha=1.5), HyperparameterError),
        (lambda: RMSProp(1e-3, eps=-1e-8), HyperparameterError),
        (lambda: Adam(float("inf")), StepSizeError),
    ],
)
def test_bad_hyperparameters_raise_named_errors(build, error):
    with pytest.raises(error):
        build()


def test_optimizer_must_be_an_object():
    with pytest.raises(TypeError, match="Optimizer"):
        optimize(leg_model(), leg_perturbation(), "adam", 3)


def test_singular_start_is_reported_and_raised():
    model, th = leg_model(), np.array([0.3, 1.0])
    traj = optimize(model, th, HeavyBall(1e-2, 0.5), 5)
    assert traj.result is Result.singular and "1 - v" in traj.message
    with pytest.raises(SingularEquilibriumError):
        optimize(model, th, Nesterov(1e-2, 0.5), 5, throw=True)


def test_a_full_run_is_fixed_steps_completed_with_its_progress():
    """A momentum/Adam run has no stopping criterion: when every step ran its result
    is fixed_steps_completed (ok, never successful), and the message gives the first
    and last recorded risk (equal to an independent evaluation at those iterates)."""
    model, th = leg_model(), leg_perturbation()
    for opt in (HeavyBall(1e-2, 0.5), Adam(1e-3)):
        traj = optimize(model, th, opt, 7, record_every=3)
        assert traj.result is Result.fixed_steps_completed and traj.result.ok
        assert not traj.result.converged
        r0, rf = model.risk(traj.thetas[0]), model.risk(traj.thetas[-1])
        assert f"risk {r0:.4g} -> {rf:.4g}" in traj.message
        assert traj.message.startswith("7 fixed steps ran")


def test_record_every_keeps_the_last_step():
    traj = optimize(leg_model(), leg_perturbation(), HeavyBall(1e-2, 0.5), 7,
                    record_every=3)
    assert traj.steps.tolist() == [0, 3, 6, 7]
    assert traj.conserved.shape == (4,)


# --------------------------------------------------------------------- oracles


@pytest.mark.parametrize("cls", [HeavyBall, Nesterov])
def test_mu_zero_is_gradient_descent_bit_for_bit(cls, matrix_case):
    """HB and Nesterov with mu = 0 are GD: the same iterates, exactly."""
    for model, th in [(leg_model(), leg_perturbation()), matrix_case]:
        gd = gradient_descent(model, th, 0.01, 50)
        mom = optimize(model, th, cls(0.01, 0.0), 50)
        assert np.array_equal(gd.thetas, mom.thetas)
        assert np.array_equal(gd.risks, mom.risks)


def _torch_sgd(model, th0, eta, mu, nesterov, steps):
    p = torch.nn.Parameter(torch.tensor(th0))
    opt = torch.optim.SGD([p], lr=eta, momentum=mu, nesterov=nesterov)
    out = [p.detach().numpy().copy()]
    for _ in range(steps):
        p.grad = torch.tensor(model.grad(p.detach().numpy().copy()))
        opt.step()
        out.append(p.detach().numpy().copy())
    return np.array(out)


def test_heavy_ball_equals_torch_sgd_momentum(matrix_case):
    """torch's SGD momentum (b = mu b + g, p -= eta b) is heavy ball."""
    model, th = matrix_case
    ours = optimize(model, th, HeavyBall(0.05, 0.8), 60).thetas
    ref = _torch_sgd(model, th, 0.05, 0.8, False, 60)
    np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=1e-13)


def test_nesterov_lookahead_is_torch_nesterov_sequence(matrix_case):
    """Nesterov-Sutskever and torch's Nesterov form are one method: torch's iterate
    p_k is our lookahead y_k = theta_k + mu (theta_k - theta_{k-1})."""
    model, th = matrix_case
    mu = 0.7
    traj = optimize(model, th, Nesterov(0.05, mu), 60)
    y = traj.thetas + mu * traj.velocities
    ref = _torch_sgd(model, th, 0.05, mu, True, 60)
    # torch starts its parameter at theta_0 = y_0 (velocity zero at rest).
    np.testing.assert_allclose(y, ref, rtol=1e-12, atol=1e-13)


def test_adam_first_step_closed_form():
    """From rest, bias correction makes Adam's first step -eta g / (|g| + eps)."""
    model, th = leg_model(), leg_perturbation()
    g = model.grad(th)
    traj = optimize(model, th, Adam(1e-2, 0.9, 0.999, 1e-8), 1)
    np.testing.assert_allclose(traj.thetas[1] - th, -1e-2 * g / (np.abs(g) + 1e-8),
                               rtol=1e-14)


def test_rmsprop_first_step_closed_form():
    """RMSProp has no bias correction: -eta g / (sqrt(1 - alpha) |g| + eps)."""
    model, th = leg_model(), leg_perturbation()
    g = model.grad(th)
    traj = optimize(model, th, RMSProp(1e-3, 0.99, 1e-8), 1)
    np.testing.assert_allclose(
        traj.thetas[1] - th, -1e-3 * g / (np.sqrt(0.01) * np.abs(g) + 1e-8),
        rtol=1e-14)


# ----------------------------------------------------------- the exact laws


@pytest.mark.parametrize("method", ["heavy-ball", "nesterov"])
def test_sympy_drift_expression_matches_the_driver(method):
    """LIN-MOM-DRIFT: the SymPy-derived Q(theta_{k+1}) - Q(theta_k), lambdified and
    evaluated at a recorded state, equals the driver's measured change."""
    der = lin_sym_mom_scalar(d=1, method=method)
    d = der.data
    u1, v, g1 = sp.symbols("u1 v g1", real=True)
    f = sp.lambdify([u1, v, *d["p"], g1, d["eta"], d["mu"]], d["dq"])
    model, mu, eta = leg_model(), 0.8, 0.05
    cls = HeavyBall if method == "heavy-ball" else Nesterov
    traj = optimize(model, leg_perturbation(), cls(eta, mu), 6)
    for k in range(1, 5):
        th, p = traj.thetas[k], traj.velocities[k]
        at = th if method == "heavy-ball" else th + mu * p  # symbols = lookahead
        g = float(model.g_beta(model.beta(at))[0])
        pred = f(at[0], at[1], p[0], p[1], g, eta, mu)
        meas = LinearDEQ.Q(traj.thetas[k + 1]) - LinearDEQ.Q(th)
        assert abs(pred - meas) <= 1e-13 * max(1.0, LinearDEQ.Q(th))
        # and the change is not trivially small: the test has teeth
        assert abs(meas) > 1e-6


@pytest.mark.parametrize("cls", [HeavyBall, Nesterov])
def test_velocity_corrected_quantity(cls, matrix_case):
    """E = Q + 2 mu/(1-mu) <theta - c, p> gains exactly (1+mu)/(1-mu) ||Delta||^2 per
    heavy-ball step; Q never decreases for either method (LIN-MOM-SPHERE)."""
    model, th = leg_model(), leg_perturbation()
    mu, eta = 0.9, 0.02
    t = optimize(model, th, cls(eta, mu), 80)
    rel = t.thetas - np.array([0.0, 1.0])
    P = np.einsum("ij,ij->i", rel, t.velocities)
    E = t.conserved + 2 * mu / (1 - mu) * P
    assert np.all(np.diff(t.conserved) >= -1e-14 * t.conserved[1:])
    if cls is HeavyBall:
        d2 = np.einsum("ij,ij->i", t.steps_taken_from[:-1], t.steps_taken_from[:-1])
        np.testing.assert_allclose(np.diff(E), (1 + mu) / (1 - mu) * d2,
                                   rtol=1e-9, atol=1e-14)
    # matrix: C is Loewner non-decreasing
    model, th = matrix_case
    t = optimize(model, th, cls(0.05, mu), 40)
    for a, b in zip(t.conserved, t.conserved[1:]):
        assert np.linalg.eigvalsh(b - a)[0] >= -1e-13 * np.linalg.norm(b)


def test_adam_can_shrink_q():
    """Adam is not bound by the law: from the P-LEG start (0, 2) Q shrinks."""
    t = optimize(leg_model(), np.array([0.0, 2.0]), Adam(1e-3), 1000)
    assert t.conserved[-1] < 0.5 * t.conserved[0]
