"""Scalar-state linear DEQ: closed-form IFT gradient, Hessian, errors
(docs/theory/linear.md)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from support import TOL

from dynamics import LinearDEQ, MatrixLinearDEQ
from dynamics.errors import NonFiniteError, ShapeError, SingularEquilibriumError
from dynamics.instances.linear import scalar_instance
from dynamics.testing.strategies import linear_deq_instances
from proofs_check.checks.lin_static import autograd_grad, central_fd, gradcheck_ok


def rel(a, b) -> float:
    return float(np.linalg.norm(np.asarray(a) - b) / np.linalg.norm(b))


@pytest.mark.claim("LIN-GRAD")
@pytest.mark.parametrize("near", [False, True])
@pytest.mark.parametrize("d", [1, 3])
def test_lin_grad_scalar_matches_fd_and_autograd(d, near):
    """LIN-GRAD (a): grad_u R = g_beta/(1-v), d_v R = <g_beta, beta>/(1-v)."""
    inst = scalar_instance(np.random.default_rng(d + 10 * near), d, near_singular=near)
    g = inst.model.grad(inst.theta0)
    assert rel(g, autograd_grad(inst.model, inst.theta0)) <= TOL["LIN-GRAD-autograd"]
    assert rel(g, central_fd(inst.model, inst.theta0)) <= TOL["LIN-GRAD-fd"]
    assert gradcheck_ok(inst.model, inst.theta0)


@pytest.mark.claim("LIN-GRAD")
@given(linear_deq_instances(max_d=4, near_singular=None))
def test_lin_grad_scalar_formula_property(inst):
    """LIN-GRAD (a), property: the gradient equals the spec's formula in g_beta."""
    m, th = inst.model, inst.theta0
    gap = 1.0 - th[-1]
    beta = th[:-1] / gap
    g_beta = 2.0 / m.n * m.X.T @ (m.X @ beta - m.y)
    expected = np.concatenate([g_beta / gap, [g_beta @ beta / gap]])
    np.testing.assert_allclose(m.grad(th), expected, rtol=1e-12, atol=0)
    assert rel(m.grad(th), autograd_grad(m, th)) <= TOL["LIN-GRAD-autograd"]


def test_value_and_grad_risk_matches_risk(rng):
    inst = scalar_instance(rng, 3)
    r, _ = inst.model.value_and_grad(inst.theta0)
    assert r == inst.model.risk(inst.theta0)
    th = torch.tensor(inst.theta0)
    beta = th[:-1] / (1 - th[-1])
    X, y = torch.as_tensor(inst.model.X), torch.as_tensor(inst.model.y)
    assert abs(r - float(torch.mean((X @ beta - y) ** 2))) <= 1e-14 * max(r, 1.0)


@pytest.mark.parametrize("near", [False, True])
def test_hessian_matches_fd_of_gradient(near):
    """R6: Hessian J^T (2 Sigma) J + (1-v)^-2 [[0, g], [g^T, 2<g, beta>]] vs FD."""
    inst = scalar_instance(np.random.default_rng(7), 2, near_singular=near)
    m, th = inst.model, inst.theta0
    h = np.finfo(float).eps ** (1 / 3) * min(1.0, abs(1 - th[-1]))
    fd = np.empty((th.size, th.size))
    for i in range(th.size):
        e = np.zeros_like(th)
        e[i] = h
        fd[:, i] = (m.grad(th + e) - m.grad(th - e)) / (2 * h)
    H = m.hessian(th)
    np.testing.assert_allclose(H, H.T, rtol=0, atol=1e-12 * np.abs(H).max())
    assert rel(H, fd) <= 1e-6
    # Reverse-over-reverse (pitfall P10: nested forward mode through solve is unsafe).
    hess_t = torch.autograd.functional.hessian(
        lambda t: _torch_risk(m, t), torch.tensor(th)
    )
    assert rel(H, hess_t.numpy()) <= 1e-10


def _torch_risk(m, t):
    beta = t[:-1] / (1 - t[-1])
    X, y = torch.as_tensor(m.X), torch.as_tensor(m.y)
    return torch.mean((X @ beta - y) ** 2)


def test_scalar_equals_matrix_with_m1(rng):
    """The scalar model is the matrix model with m = 1, W = v, U = u^T
    (docs/theory/linear.md)."""
    inst = scalar_instance(rng, 3)
    s = inst.model
    mm = MatrixLinearDEQ(s.X, s.y, m=1)
    u, v = inst.theta0[:-1], inst.theta0[-1]
    th_m = mm.pack([[v]], u[None, :])
    r_s, g_s = s.value_and_grad(inst.theta0)
    r_m, g_m = mm.value_and_grad(th_m)
    assert abs(r_s - r_m) <= 1e-14 * r_s
    np.testing.assert_allclose(g_m[0], g_s[-1], rtol=1e-12)  # d/dW == d/dv
    np.testing.assert_allclose(g_m[1:], g_s[:-1], rtol=1e-12)  # d/dU == d/du
    assert abs(s.Q(inst.theta0) - mm.C(th_m)[0, 0]) <= 1e-14 * s.Q(inst.theta0)


def test_closed_form_allows_v_beyond_one(rng):
    """Pitfall P1: |v| > 1 is legitimate; the forward pass is the closed form."""
    inst = scalar_instance(rng, 2)
    th = inst.model.pack([0.3, -0.2], 2.5)
    beta = np.array([0.3, -0.2]) / (1 - 2.5)
    np.testing.assert_allclose(inst.model.predict(th), inst.model.X @ beta, rtol=1e-14)


def test_singular_v_equal_one_raises(rng):
    inst = scalar_instance(rng, 2)
    th = inst.model.pack([0.1, 0.2], 1.0)
    with pytest.raises(SingularEquilibriumError, match="1 - v"):
        inst.model.risk(th)
    with pytest.raises(SingularEquilibriumError):
        inst.model.value_and_grad(th)
    with pytest.raises(SingularEquilibriumError):
        inst.model.hessian(inst.model.pack([0.0, 0.0], 1.0 + 1e-15))


def test_nan_data_raises_nonfinite():
    X = np.ones((5, 2))
    X[2, 1] = np.nan
    with pytest.raises(NonFiniteError, match="non-finite"):
        LinearDEQ(X, np.ones(5))
    with pytest.raises(NonFiniteError):
        LinearDEQ(np.ones((5, 2)), np.array([1, 2, np.inf, 4, 5.0]))


def test_nan_theta_raises_nonfinite(rng):
    inst = scalar_instance(rng, 2)
    with pytest.raises(NonFiniteError):
        inst.model.risk(np.array([0.1, np.nan, 0.3]))


def test_shape_mismatch_raises(rng):
    with pytest.raises(ShapeError, match="rows"):
        LinearDEQ(np.ones((5, 2)), np.ones(4))
    with pytest.raises(ShapeError):
        LinearDEQ(np.ones(5), np.ones(5))
    inst = scalar_instance(rng, 2)
    with pytest.raises(ShapeError, match="3 entries"):
        inst.model.grad(np.zeros(4))
