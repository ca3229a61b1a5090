"""Bad input to the engine raises a named error (dynamics.errors) saying what was wrong
and what to do; legitimate input that sat near a rejection threshold is accepted.

Each test here reproduces a defect that used to pass silently (a wrong answer or a raw
IndexError) and states the rule it now checks.
"""

from __future__ import annotations

import numpy as np
import pytest

from dynamics import gradient_descent, rates
from dynamics._result import Result
from dynamics.errors import (
    InvalidInputError,
    NonSmoothActivationError,
    RankDeficientError,
    ShapeError,
    SingularEquilibriumError,
    StepSizeError,
)
from dynamics.gradients import JFB, Unrolled
from dynamics.gradients.directions import approx_direction
from dynamics.models.activations import get_activation
from dynamics.models.linear_deq import LinearDEQ
from dynamics.models.matrix_deq import MatrixLinearDEQ
from dynamics.models.scalar_root import solve_roots
from dynamics.models.single_index import SingleIndexDEQ
from dynamics.solvers import Anderson


def test_linear_deq_with_no_feature_is_a_shape_error():
    """X with 0 columns used to die in an IndexError inside eigvalsh's result."""
    with pytest.raises(ShapeError, match="0 columns"):
        LinearDEQ(np.zeros((3, 0)), np.zeros(3))


def test_matrix_deq_with_no_sample_is_a_shape_error():
    """X with 0 rows used to build a model whose risk is 0/0."""
    with pytest.raises(ShapeError, match="at least one sample"):
        MatrixLinearDEQ(np.zeros((0, 2)), np.zeros((0, 2)), m=2)


def test_large_u_with_resolved_gap_is_not_singular():
    """1 - v = 1e-7 carries ~9 correct digits (rounding ~eps64 |v|), so u = 1e6 with
    v = 1 - 1e-7 has the well-defined predictor beta = u / (1 - v); the old test,
    relative to ||u||, called it singular."""
    rng = np.random.default_rng(0)
    model = LinearDEQ(rng.normal(size=(5, 2)), rng.normal(size=5))
    v = 1.0 - 1e-7
    beta = model.beta(model.pack([1e6, -1e6], v))
    gap = 1.0 - v  # exact in binary: v and 1 are within a factor 2 (Sterbenz)
    np.testing.assert_allclose(beta, np.array([1e6, -1e6]) / gap, rtol=4e-16)
    # the approximate-backprop directions use the same relative test
    theta = model.pack([1e6, -1e6], v)
    risk, _ = approx_direction(model, JFB())(theta)
    assert risk == pytest.approx(model.risk(theta), rel=1e-12)
    with pytest.raises(SingularEquilibriumError):
        approx_direction(model, JFB())(model.pack([1.0, 1.0], 1.0 + 1e-15))


def test_rate_helpers_refuse_rank_deficient_data():
    """n < d: lambda_min(Sigma_hat) is rounding (~1e-16), and the bounds divide by it;
    they used to return constants ~1e8 times too large as if valid."""
    rng = np.random.default_rng(1)
    model = LinearDEQ(rng.normal(size=(2, 4)), rng.normal(size=2))
    theta = model.pack(np.full(4, 0.1), 0.2)
    with pytest.raises(RankDeficientError, match="n = 2 samples but d = 4"):
        rates.linear_constants(model, theta)
    # n >= d but two equal columns: rank-deficient all the same
    X = rng.normal(size=(10, 3))
    X[:, 2] = X[:, 1]
    model = LinearDEQ(X, rng.normal(size=10))
    with pytest.raises(RankDeficientError, match="rank-deficient"):
        rates.beta_bar(model, model.pack(np.full(3, 0.1), 0.2))


@pytest.mark.parametrize("eta", ["0.1", True, np.True_, None, [0.1]])
def test_step_size_must_be_a_real_number(eta):
    """eta='0.1' used to run (float('0.1')) and eta=True took unit steps."""
    rng = np.random.default_rng(2)
    model = LinearDEQ(rng.normal(size=(8, 2)), rng.normal(size=8))
    theta = model.pack([0.1, 0.1], 0.2)
    with pytest.raises(StepSizeError):
        gradient_descent(model, theta, eta, 2)
    with pytest.raises(StepSizeError):
        rates.gd_rate_factor(model, theta, eta)


def test_numpy_step_sizes_still_pass():
    rng = np.random.default_rng(2)
    model = LinearDEQ(rng.normal(size=(8, 2)), rng.normal(size=8))
    theta = model.pack([0.1, 0.1], 0.2)
    a = gradient_descent(model, theta, np.float64(0.05), 3)
    b = gradient_descent(model, theta, 0.05, 3)
    np.testing.assert_array_equal(a.thetas, b.thetas)


@pytest.mark.parametrize("lam", [float("inf"), float("nan"), 0.0, -1.0])
def test_anderson_lam_must_be_positive_and_finite(lam):
    with pytest.raises(InvalidInputError, match="lam"):
        Anderson(lam=lam)


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_unrolled_flags_must_be_booleans(value):
    """checkpoint='yes' used to be accepted (and 'no' would have meant True)."""
    with pytest.raises(InvalidInputError, match="checkpoint"):
        Unrolled(checkpoint=value)
    with pytest.raises(InvalidInputError, match="record_trajectory"):
        Unrolled(record_trajectory=value)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_root_solve_never_calls_nan_roots_successful():
    """GELU at |<u, x>| ~ 1e200 overflows; the solve used to return all-NaN roots with
    result 'successful' (the bracket-collapse and certificate branches)."""
    act = get_activation("gelu")
    a = np.random.default_rng(3).normal(size=5) * 1e200
    for v in (0.0, 0.5):
        sol = solve_roots(act, a, v)
        assert not np.all(np.isfinite(sol.y))
        assert sol.result is Result.nonfinite


def test_root_solve_still_succeeds_on_ordinary_input():
    act = get_activation("gelu")
    a = np.random.default_rng(3).normal(size=5)
    sol = solve_roots(act, a, 0.5)
    assert sol.result is Result.successful
    np.testing.assert_allclose(sol.y, act.sigma(a + 0.5 * sol.y), rtol=0, atol=1e-12)


def test_second_order_helpers_refuse_a_non_smooth_activation():
    """Leaky ReLU has no sigma'' at 0: the Hessian, H* and dQ/dt formulas used to
    return numbers anyway. The first-order gradient stays available (training)."""
    rng = np.random.default_rng(4)
    model = SingleIndexDEQ(rng.normal(size=(6, 2)), rng.normal(size=6), "leaky_relu")
    theta = np.array([0.3, 0.2, 0.1])
    with pytest.raises(NonSmoothActivationError, match="leaky_relu"):
        model.hessian(theta)
    with pytest.raises(NonSmoothActivationError):
        model.hessian_at_target(theta[:2])
    with pytest.raises(NonSmoothActivationError):
        model.dQ_dt(theta)
    # away from the kink the IFT gradient is still right (central differences)
    _, grad = model.value_and_grad(theta)
    h = 1e-6
    fd = [
        (model.risk(theta + h * e) - model.risk(theta - h * e)) / (2 * h)
        for e in np.eye(3)
    ]
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-8)
