"""Matrix linear DEQ z = W z + U x with optional readout: IFT gradients, errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from support import TOL

from dynamics import MatrixLinearDEQ
from dynamics.errors import NonFiniteError, ShapeError, SingularEquilibriumError
from dynamics.instances.linear import MIN_SIGMA_A0, matrix_instance
from dynamics.testing.strategies import matrix_deq_instances
from proofs_check.checks.lin_static import autograd_grad, central_fd, gradcheck_ok


def rel(a, b) -> float:
    return float(np.linalg.norm(np.asarray(a) - b) / np.linalg.norm(b))


@pytest.mark.claim("LIN-GRAD")
@pytest.mark.parametrize(
    ("m", "d", "k", "readout"),
    [
        (1, 2, 1, False),
        (2, 3, 2, False),
        (3, 3, 3, False),
        (2, 2, 3, True),
        (3, 4, 1, True),
    ],
)
def test_lin_grad_matrix_matches_fd_and_autograd(m, d, k, readout):
    """LIN-GRAD (b): grad_U = A^-T G, grad_W = A^-T G M^T, grad_B = G_out M^T."""
    inst = matrix_instance(
        np.random.default_rng(m * 100 + d * 10 + k), m, d, k=k, readout=readout
    )
    g = inst.model.grad(inst.theta0)
    assert rel(g, autograd_grad(inst.model, inst.theta0)) <= TOL["LIN-GRAD-autograd"]
    assert rel(g, central_fd(inst.model, inst.theta0)) <= TOL["LIN-GRAD-fd"]
    assert gradcheck_ok(inst.model, inst.theta0)


@pytest.mark.claim("LIN-GRAD")
@given(matrix_deq_instances(max_m=3))
def test_lin_grad_matrix_formula_property(inst):
    """LIN-GRAD (b), property: the blocks match the spec's formulas on random shapes."""
    mdl, th = inst.model, inst.theta0
    W, U, B = mdl.unpack(th)
    A = np.eye(mdl.m) - W
    M = np.linalg.inv(A) @ U
    pred = mdl.X @ M.T if B is None else mdl.X @ M.T @ B.T
    G_out = 2.0 / mdl.n * (pred - mdl.Y).T @ mdl.X
    G = G_out if B is None else B.T @ G_out
    GU = np.linalg.inv(A).T @ G
    gW, gU, gB = mdl.unpack(mdl.grad(th))
    scale = max(np.abs(mdl.grad(th)).max(), 1e-300)
    np.testing.assert_allclose(gU, GU, rtol=0, atol=1e-10 * scale)
    np.testing.assert_allclose(gW, GU @ M.T, rtol=0, atol=1e-10 * scale)
    if B is not None:
        np.testing.assert_allclose(gB, G_out @ M.T, rtol=0, atol=1e-10 * scale)
    assert rel(mdl.grad(th), autograd_grad(mdl, th)) <= TOL["LIN-GRAD-autograd"]


def test_instances_have_no_spectral_radius_constraint():
    """P-GF / pitfall P1: W0 is only kept away from singular I - W0."""
    rng = np.random.default_rng(3)
    radii = []
    for _ in range(40):
        inst = matrix_instance(rng, 3, 3)
        W = inst.model.unpack(inst.theta0).W
        assert np.linalg.svd(np.eye(3) - W, compute_uv=False)[-1] >= MIN_SIGMA_A0
        radii.append(np.abs(np.linalg.eigvals(W)).max())
        assert inst.model.min_risk <= 1e-20  # realizable targets
    assert max(radii) > 1.0


def test_readout_instances_are_realizable():
    inst = matrix_instance(np.random.default_rng(5), 2, 4, k=3, readout=True)
    assert np.linalg.matrix_rank(inst.M_star) <= 2
    assert inst.model.min_risk <= 1e-20


def test_singular_I_minus_W_raises(rng):
    inst = matrix_instance(rng, 2, 2)
    th = inst.model.pack(np.eye(2), np.ones((2, 2)))
    with pytest.raises(SingularEquilibriumError, match="singular"):
        inst.model.risk(th)
    with pytest.raises(SingularEquilibriumError):
        inst.model.value_and_grad(th)
    W = np.array([[1.0, 0.0], [0.0, 0.5]])  # I - W has a zero singular value
    with pytest.raises(SingularEquilibriumError):
        inst.model.grad(inst.model.pack(W, np.ones((2, 2))))


def test_nan_data_raises_nonfinite():
    X = np.ones((6, 2))
    X[0, 0] = np.nan
    with pytest.raises(NonFiniteError):
        MatrixLinearDEQ(X, np.ones((6, 2)), m=2)
    with pytest.raises(NonFiniteError):
        MatrixLinearDEQ(np.ones((6, 2)), np.full((6, 2), np.inf), m=2)


def test_shape_mismatch_raises(rng):
    with pytest.raises(ShapeError, match="rows"):
        MatrixLinearDEQ(np.ones((6, 2)), np.ones((5, 2)), m=2)
    with pytest.raises(ShapeError, match="readout"):
        MatrixLinearDEQ(np.ones((6, 2)), np.ones((6, 3)), m=2)
    inst = matrix_instance(rng, 2, 3, k=2, readout=True)
    with pytest.raises(ShapeError):
        inst.model.pack(np.zeros((2, 2)), np.zeros((2, 3)))  # B missing
    with pytest.raises(ShapeError):
        inst.model.grad(np.zeros(inst.model.n_params + 1))
    plain = matrix_instance(rng, 2, 3)
    with pytest.raises(ShapeError):
        plain.model.C_readout(plain.theta0)
