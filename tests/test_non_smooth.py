"""Non-smooth activations (pitfall P5): ReLU is in the table, trains, and every
computation that needs sigma in C^2 refuses it with NonSmoothActivationError."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import brentq

from dynamics import NonSmoothActivationError
from dynamics.errors import InvalidInputError
from dynamics.flows.descent import gradient_descent
from dynamics.models.activations import RELU, get_activation
from dynamics.models.single_index import SingleIndexDEQ

NON_SMOOTH = ["relu", "leaky_relu"]


def _model(name, n=40, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    act = get_activation(name)
    return SingleIndexDEQ(x[:, None], act.sigma(2.0 * x), act), x


def test_relu_entry_values_and_kink_convention():
    """relu(z) = max(z, 0); relu'(z) = 1 for z >= 0 (the scripts' relu'(0) = 1)."""
    z = np.array([-2.0, -1e-300, 0.0, 1e-300, 3.5])
    np.testing.assert_array_equal(RELU.sigma(z), [0.0, 0.0, 0.0, 1e-300, 3.5])
    np.testing.assert_array_equal(RELU.dsigma(z), [0.0, 0.0, 1.0, 1.0, 1.0])
    assert not RELU.smooth and RELU.increasing and not RELU.affine
    assert RELU.well_posed(0.99) and not RELU.well_posed(1.0)
    assert RELU.well_posed(-50.0)  # increasing: any negative v


@pytest.mark.parametrize("v", [-3.0, -0.5, 0.0, 0.4, 0.9])
def test_relu_roots_match_brent(v):
    """The engine's ReLU fixed points equal Brent's on the closed-form bracket."""
    a = np.linspace(-4.0, 4.0, 33) + 0.01
    model = SingleIndexDEQ(np.ones((a.size, 1)), np.zeros(a.size), "relu")
    y = model.predict(np.array([1.0, v]), a[:, None])
    ref = [
        brentq(
            lambda t, ai=ai: t - max(ai + v * t, 0.0),
            -1.0,
            1.0 + 2 * abs(ai) / (1 - min(v, 0.9)),
        )
        for ai in a
    ]
    # Closed form for v < 1: y = max(a, 0) / (1 - v).
    np.testing.assert_allclose(
        y, np.maximum(a, 0.0) / (1.0 - v), rtol=1e-13, atol=1e-13
    )
    np.testing.assert_allclose(y, ref, rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("name", NON_SMOOTH)
def test_smoothness_helpers_refuse_non_smooth(name):
    """Hessian, H* and dQ/dt need sigma in C^2 (R7): refused, with the reason."""
    model, _ = _model(name)
    theta = np.array([1.5, 0.2])
    for call in (
        lambda: model.hessian(theta),
        lambda: model.hessian_at_target(np.array([2.0])),
        lambda: model.dQ_dt(theta),
    ):
        with pytest.raises(NonSmoothActivationError, match="C\\^2") as info:
            call()
        assert isinstance(info.value, InvalidInputError)
        assert "not differentiable at 0" in str(info.value)


@pytest.mark.parametrize("name", NON_SMOOTH)
def test_sim_theorem_points_refuse_non_smooth(name):
    """The SIM-* theorem checks draw their instances through sim_points, which
    refuses a non-smooth activation instead of checking a theorem through a kink."""
    from proofs_check.checks.sim import sim_points
    from proofs_check.registry import Context

    with pytest.raises(NonSmoothActivationError, match="SIM-GRAD"):
        next(sim_points(Context(), "SIM-GRAD", 1, activations=(name,)))


def test_autograd_hessian_refuses_non_smooth():
    pytest.importorskip("torch")
    from dynamics.batched.single_index import autograd_hessian

    model, _ = _model("leaky_relu")
    with pytest.raises(NonSmoothActivationError):
        autograd_hessian(model.X, model.y, model.act, np.array([1.5, 0.2]))


def test_smooth_activations_still_compute():
    """The refusal is only for non-smooth entries: tanh's Hessian is computed."""
    model, _ = _model("tanh")
    H = model.hessian(np.array([1.5, 0.2]))
    assert H.shape == (2, 2) and np.allclose(H, H.T) and np.linalg.eigvalsh(H)[0] > 0


def test_relu_trains_with_the_gradient_of_its_branch():
    """ReLU DEQs train (GD decreases the risk) with the a.e. gradient; the IFT
    gradient away from the kink equals a central difference of the risk."""
    model, _ = _model("relu", n=60, seed=3)
    theta = np.array([1.2, 0.3])
    _, g = model.value_and_grad(theta)
    h = 1e-6
    fd = [
        (model.risk(theta + h * e) - model.risk(theta - h * e)) / (2 * h)
        for e in np.eye(2)
    ]
    np.testing.assert_allclose(g, fd, rtol=1e-7, atol=1e-9)
    traj = gradient_descent(model, theta, 0.1, 100, throw=True)
    assert traj.risks[-1] < 1e-3 * traj.risks[0]
