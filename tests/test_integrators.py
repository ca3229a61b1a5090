"""One-step integrators: order of accuracy, structure preservation, honest failure."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

from dynamics.errors import (
    ConvergenceError,
    InvalidInputError,
    SingularEquilibriumError,
    UnknownOptionError,
)
from dynamics.integrators import (
    RK4,
    AbstractIntegrator,
    GaussLegendre,
    ImplicitMidpoint,
    ScipyIVP,
)

# A damped rotation: y' = L y has the closed-form solution expm(t L) y0.
L = np.array([[-0.1, 1.0], [-1.0, -0.1]])
Y0 = np.array([1.0, 0.5])


def linear(t, y):
    del t
    return L @ y


def rotation(t, y):
    """y' = J y with J skew: |y|^2 is a quadratic invariant."""
    del t
    return np.array([y[1], -y[0]])


def run(integrator: AbstractIntegrator, field, y0, h: float, n: int):
    y, nfev = np.array(y0, dtype=float), 0
    for k in range(n):
        y, nf = integrator.step(field, k * h, y, h)
        nfev += nf
    return y, nfev


def fitted_order(integrator, hs, T=1.0) -> float:
    exact = scipy.linalg.expm(T * L) @ Y0
    errs = [
        np.linalg.norm(run(integrator, linear, Y0, h, round(T / h))[0] - exact)
        for h in hs
    ]
    return float(np.polyfit(np.log(hs), np.log(errs), 1)[0])


@pytest.mark.parametrize(
    "integrator, order",
    [
        (RK4(), 4),
        (ImplicitMidpoint(), 2),
        (GaussLegendre(order=2), 2),
        (GaussLegendre(), 4),
        (GaussLegendre(order=6), 6),
        (ImplicitMidpoint(solver="fixed_point"), 2),
        (GaussLegendre(jacobian=lambda t, y: L), 4),
    ],
    ids=[
        "rk4",
        "midpoint",
        "gl2",
        "gl4",
        "gl6",
        "midpoint-fixed-point",
        "gl4-exact-jac",
    ],
)
def test_order_of_accuracy(integrator, order):
    """Slope of log(error) against log(h) on a linear ODE: within 0.25 of the order."""
    hs = (
        np.array([0.2, 0.1, 0.05, 0.025]) if order < 6 else np.array([0.5, 0.25, 0.125])
    )
    slope = fitted_order(integrator, hs)
    assert abs(slope - order) <= 0.25, f"fitted order {slope:.3f}, expected {order}"


@pytest.mark.parametrize(
    "integrator",
    [
        ImplicitMidpoint(),
        GaussLegendre(),
        GaussLegendre(order=6),
        ImplicitMidpoint(solver="fixed_point"),
    ],
    ids=["midpoint", "gl4", "gl6", "midpoint-fixed-point"],
)
def test_quadratic_invariant_kept_by_gauss_rules(integrator):
    """Cooper's condition: |y|^2 is conserved to the stage-solve tolerance, any h."""
    y, _ = run(integrator, rotation, Y0, 0.1, 1000)
    drift = abs(y @ y - Y0 @ Y0) / (Y0 @ Y0)
    assert drift <= 10 * integrator.tol * 10, drift  # 1000 steps of O(tol) rounding


def test_quadratic_invariant_drifts_under_rk4():
    y, _ = run(RK4(), rotation, Y0, 0.1, 1000)
    drift = abs(y @ y - Y0 @ Y0) / (Y0 @ Y0)
    assert drift > 1e-6, drift  # O(h^4) per unit time: about 1.4e-5 here


def test_nonlinear_invariant_kept_to_tolerance():
    """A nonlinear field with a quadratic invariant: y' = |y|^2 J y."""

    def field(t, y):
        del t
        return (y @ y) * np.array([y[1], -y[0]])

    for integ in (ImplicitMidpoint(), GaussLegendre()):
        y, _ = run(integ, field, Y0, 0.05, 400)
        assert abs(y @ y - Y0 @ Y0) <= 1e-13 * (Y0 @ Y0)


def test_stage_solve_without_real_solution_raises():
    """y' = y^2, y0 = 1, h = 1: the midpoint stage equation Z^2 + 1 = 0 has no root."""

    def square(t, y):
        del t
        return y * y

    with pytest.raises(ConvergenceError):
        ImplicitMidpoint().step(square, 0.0, np.array([1.0]), 1.0)


def test_fixed_point_stage_solve_diverges_on_stiff_field():
    """Fixed-point iteration contracts only when h |A| Lip < 1; here h Lip / 2 = 5."""

    def stiff(t, y):
        del t
        return -100.0 * y

    with pytest.raises(ConvergenceError, match="stopped contracting"):
        ImplicitMidpoint(solver="fixed_point").step(stiff, 0.0, np.array([1.0]), 0.1)
    # Newton solves the same (linear) stage equation at once.
    y, _ = ImplicitMidpoint().step(stiff, 0.0, np.array([1.0]), 0.1)
    # one Newton solve of a linear stage equation: a few ulps of |y| ~ 1
    assert abs(y[0] - (1 - 5.0) / (1 + 5.0)) <= 16 * np.finfo(float).eps


def test_iteration_limit_raises_instead_of_returning_unconverged_stage():
    def field(t, y):
        del t
        return np.sin(y) + y**2

    with pytest.raises(ConvergenceError, match="did not reach"):
        GaussLegendre(max_iter=1, solver="fixed_point").step(
            field, 0.0, np.array([0.3]), 0.1
        )


def test_field_error_inside_stage_solve_is_a_convergence_error():
    """A stage iterate that crosses a pole is a failed stage solve, not a result."""

    def pole(t, y):
        del t
        if y[0] >= 1.0:
            raise SingularEquilibriumError("crossed the pole at y = 1")
        return np.array([1.0 / (1.0 - y[0])])

    with pytest.raises(ConvergenceError, match="left the field's domain"):
        ImplicitMidpoint().step(pole, 0.0, np.array([0.5]), 1.0)


def test_step_does_not_mutate_input():
    y = Y0.copy()
    for integ in (RK4(), ImplicitMidpoint(), GaussLegendre(), ScipyIVP()):
        integ.step(linear, 0.0, y, 0.1)
        np.testing.assert_array_equal(y, Y0)


def test_supplied_and_fd_jacobians_agree():
    a, _ = run(GaussLegendre(), linear, Y0, 0.3, 10)
    b, _ = run(GaussLegendre(jacobian=lambda t, y: L), linear, Y0, 0.3, 10)
    # not rounding: the two Newton iterations stop at the stage-solve tolerance, so
    # the runs agree to ~ 10 steps x that tolerance
    tol = GaussLegendre().tol
    np.testing.assert_allclose(a, b, rtol=0, atol=10 * 10 * tol)


def test_unknown_options_are_rejected():
    with pytest.raises(UnknownOptionError):
        ImplicitMidpoint(solver="anderson")
    with pytest.raises(UnknownOptionError):
        GaussLegendre(order=5)
    with pytest.raises(UnknownOptionError):
        ScipyIVP(method="Euler")
    with pytest.raises(TypeError):
        RK4(tol=1e-10)  # RK4 has no options: nothing is silently accepted
    with pytest.raises(InvalidInputError):
        ImplicitMidpoint(tol=1e-17)
    with pytest.raises(InvalidInputError):
        ScipyIVP(rtol=1e-15)  # SciPy would silently raise it to 100 eps
    with pytest.raises(InvalidInputError):
        ScipyIVP(method="DOP853", jacobian=lambda t, y: L)


def test_scipy_ivp_matches_closed_form_and_keeps_dense_output():
    sol = ScipyIVP().solve(linear, 0.0, Y0, 2.0)
    assert sol.ok and not sol.stopped
    for t in (0.3, 1.1, 2.0):
        np.testing.assert_allclose(
            sol.dense(t), scipy.linalg.expm(t * L) @ Y0, rtol=0, atol=1e-11
        )
    y, nfev = ScipyIVP().step(linear, 0.0, Y0, 2.0)
    assert nfev > 0
    np.testing.assert_allclose(y, scipy.linalg.expm(2.0 * L) @ Y0, rtol=0, atol=1e-11)


def test_scipy_ivp_terminate_and_radau_with_exact_jacobian():
    stiff = np.diag([-1.0, -1e4])
    sol = ScipyIVP(
        method="Radau", rtol=1e-10, atol=1e-14, jacobian=lambda t, y: stiff
    ).solve(lambda t, y: stiff @ y, 0.0, np.ones(2), 5.0)
    assert sol.ok and sol.njev >= 1
    assert abs(sol.y[-1, 0] - np.exp(-5.0)) <= 1e-9
    sol = ScipyIVP().solve(
        linear, 0.0, Y0, 50.0, terminate=lambda t, y: np.linalg.norm(y) < 0.5
    )
    assert sol.ok and sol.stopped and sol.t[-1] < 50.0
    assert np.linalg.norm(sol.y[-1]) < 0.5 <= np.linalg.norm(sol.y[-2])


def test_scipy_ivp_labels_failures():
    def singular_after_one(t, y):
        if t > 1.0:
            raise SingularEquilibriumError("singular beyond t = 1")
        return -y

    sol = ScipyIVP().solve(singular_after_one, 0.0, Y0, 3.0)
    assert not sol.ok and isinstance(sol.error, SingularEquilibriumError)
    assert sol.t[-1] <= 1.0 + 1e-12
    with pytest.raises(SingularEquilibriumError):
        ScipyIVP().step(singular_after_one, 0.0, Y0, 3.0)

    def blow_up(t, y):  # y' = y^2 blows up at t = 1: the step size underflows
        del t
        return y * y

    sol = ScipyIVP().solve(blow_up, 0.0, np.array([1.0]), 2.0)
    assert not sol.ok and sol.error is None and "failed" in sol.message
    with pytest.raises(ConvergenceError):
        ScipyIVP().step(blow_up, 0.0, np.array([1.0]), 2.0)
