"""Assertion helpers: a property of the training dynamics, checked on your model.

Each helper runs the engine (gradient flow through :func:`dynamics.flow_ivp` or a
given integrator, gradient descent through :func:`dynamics.gradient_descent`),
measures one number, raises ``AssertionError`` with the measurement when it exceeds
the tolerance, and returns the measurement otherwise. Every default tolerance comes
from a rounding or integrator-error model stated beside it.

A "model" is any :class:`dynamics.models.base.AbstractModel` (e.g.
:class:`dynamics.LinearDEQ`) or a plain callable ``theta -> (risk, gradient)`` on
flat float64 parameter vectors, wrapped with :func:`as_model`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..errors import InvalidInputError
from ..flows.descent import gradient_descent
from ..flows.gradient_flow import flow_ivp, integrate
from ..integrators.base import AbstractIntegrator
from ..models.base import AbstractModel

__all__ = [
    "as_model",
    "assert_conserved",
    "assert_gd_drift",
    "assert_rate_bound",
    "assert_gradient_matches",
    "fd_gradient",
]

#: DOP853 at rtol 1e-12 makes a relative error ~ rtol per accepted step in each
#: coordinate; over the 1e2-1e4 steps of a flow to convergence a quadratic invariant
#: drifts by ~ rtol x steps <= 1e-8 (the LIN-GF-CONS catalogue tolerance is 1e-9 on
#: its shorter reference flows).
CONSERVED_TOL = 1e-8
#: One GD step evaluates the quantity twice in float64: a few hundred ulps of
#: max(1, |I|) covers the sums of O(P) products that form a quadratic invariant.
GD_DRIFT_TOL = 5e-11
#: DOP853 at rtol 1e-12 on R(t) down to 1e-12 R0: the relative error of R(t) is
#: amplified by R0 / R(t) <= 1e4 on the part of the flow that is judged.
RATE_TOL = 1e-8
RATE_WINDOW = 1e-12


class _FunctionModel(AbstractModel):
    """An :class:`AbstractModel` from a ``theta -> (risk, gradient)`` callable."""

    def __init__(self, value_and_grad: Callable, n_params: int):
        self._vg = value_and_grad
        self._n = int(n_params)

    @property
    def n_params(self) -> int:
        return self._n

    def risk(self, theta):
        return float(self._vg(np.asarray(theta, dtype=np.float64))[0])

    def value_and_grad(self, theta):
        r, g = self._vg(np.asarray(theta, dtype=np.float64))
        return float(r), np.asarray(g, dtype=np.float64).reshape(self._n)


def as_model(model, n_params: int | None = None) -> AbstractModel:
    """``model`` itself if it is an :class:`AbstractModel`; else wrap a callable.

    Args:
        model: an :class:`AbstractModel`, or ``theta -> (risk, gradient)``.
        n_params: length of theta (required for a callable).
    """
    if isinstance(model, AbstractModel):
        return model
    if not callable(model):
        raise InvalidInputError(
            "model must be an AbstractModel or a callable theta -> (risk, gradient); "
            f"got {type(model).__name__}"
        )
    if n_params is None:
        raise InvalidInputError("n_params is required when model is a callable")
    return _FunctionModel(model, n_params)


def _relative_change(a, b) -> float:
    a = np.atleast_1d(np.asarray(a, dtype=np.float64))
    b = np.atleast_1d(np.asarray(b, dtype=np.float64))
    return float(np.linalg.norm(b - a) / max(1.0, np.linalg.norm(a)))


def _ensure_ok(traj, what: str) -> None:
    if not traj.result.ok:
        raise AssertionError(
            f"{what} stopped early ({traj.result.name}): {traj.message}; the property "
            "was not checked"
        )


def assert_conserved(
    quantity: Callable[[np.ndarray], object],
    model,
    theta0,
    t_final: float,
    *,
    n_params: int | None = None,
    integrator: AbstractIntegrator | None = None,
    h: float | None = None,
    rtol: float = 1e-12,
    atol: float = 1e-14,
    tol: float = CONSERVED_TOL,
) -> float:
    """Assert that ``quantity(theta)`` is constant along the gradient flow.

    The flow d theta/dt = -grad R(theta) is integrated from ``theta0`` over
    [0, t_final]: by DOP853 at ``rtol``/``atol`` (default), or by ``integrator`` on
    a fixed step ``h`` (e.g. :class:`dynamics.GaussLegendre`, which conserves
    quadratic invariants to the stage-solve tolerance). The measured drift is
    ``max_t ||I(t) - I(0)|| / max(1, ||I(0)||)`` (Frobenius norm for arrays).

    Args:
        quantity: ``theta -> scalar or array``, the candidate invariant.
        model: an :class:`AbstractModel` or ``theta -> (risk, gradient)``.
        theta0: initial flat parameters.
        t_final: flow horizon.
        n_params: length of theta when ``model`` is a callable.
        integrator, h: a fixed-step integrator and its step (both or neither).
        rtol, atol: DOP853 tolerances when no integrator is given.
        tol: largest drift accepted (default: DOP853 error model, see
            ``CONSERVED_TOL``; pass about 10 x the stage tolerance for Gauss rules).

    Returns:
        The measured drift.

    Raises:
        AssertionError: the drift exceeds ``tol``, or the flow stopped early.
    """
    model = as_model(model, n_params)
    if (integrator is None) != (h is None):
        raise InvalidInputError("give both integrator and h, or neither")
    if integrator is None:
        traj = flow_ivp(model, theta0, t_final, rtol=rtol, atol=atol)
        how = f"DOP853 (rtol {rtol:g})"
    else:
        traj = integrate(model, theta0, t_final, integrator=integrator, h=h)
        how = f"{integrator!r}, h = {h:g}"
    _ensure_ok(traj, "the gradient flow")
    I0 = quantity(traj.thetas[0])
    drifts = [_relative_change(I0, quantity(th)) for th in traj.thetas]
    k = int(np.argmax(drifts))
    worst = drifts[k]
    if not worst <= tol:
        raise AssertionError(
            f"quantity not conserved along the gradient flow ({how}): relative drift "
            f"{worst:.3e} > tol {tol:.1e} at t = {traj.times[k]:.4g} "
            f"(I(0) = {np.asarray(I0)!r}, "
            f"I(t) = {np.asarray(quantity(traj.thetas[k]))!r})"
        )
    return worst


def assert_gd_drift(
    quantity: Callable[[np.ndarray], object],
    model,
    theta0,
    eta: float,
    steps: int,
    *,
    predicted: Callable[[np.ndarray, np.ndarray, float], object] | None = None,
    n_params: int | None = None,
    tol: float = GD_DRIFT_TOL,
) -> float:
    """Assert an exact per-step identity I(theta_{k+1}) - I(theta_k) = P_k under GD.

    Runs ``steps`` gradient-descent updates theta_{k+1} = theta_k - eta g_k and
    compares each step's change of the quantity with ``predicted(theta_k, g_k, eta)``
    (default: 0, i.e. conserved exactly by GD). For the linear DEQ's
    Q = ||u||^2 + (1 - v)^2 the identity is ``eta**2 * g @ g``; this is an exact
    algebraic identity, so the tolerance is rounding only. The residual is
    ``||dI_k - P_k|| / max(1, ||I_k||, ||I_{k+1}||)``.

    Returns:
        The worst per-step residual.

    Raises:
        AssertionError: a residual exceeds ``tol``, or GD stopped early.
    """
    model = as_model(model, n_params)
    traj = gradient_descent(model, theta0, eta, steps)
    _ensure_ok(traj, "gradient descent")
    worst, at = 0.0, 0
    for k in range(len(traj.thetas) - 1):
        a, b = traj.thetas[k], traj.thetas[k + 1]
        g = model.grad(a)
        Ia = np.asarray(quantity(a), dtype=np.float64)
        Ib = np.asarray(quantity(b), dtype=np.float64)
        P = 0.0 if predicted is None else np.asarray(predicted(a, g, eta))
        scale = max(1.0, float(np.linalg.norm(Ia)), float(np.linalg.norm(Ib)))
        res = float(np.linalg.norm(np.atleast_1d(Ib - Ia - P))) / scale
        if res > worst:
            worst, at = res, k
    if not worst <= tol:
        raise AssertionError(
            f"GD drift identity violated: residual {worst:.3e} > tol {tol:.1e} at step "
            f"{at} (eta = {eta:g})"
        )
    return worst


def assert_rate_bound(
    model,
    theta0,
    rate: float,
    t_final: float,
    *,
    min_risk: float = 0.0,
    n_params: int | None = None,
    tol: float = RATE_TOL,
    window: float = RATE_WINDOW,
) -> float:
    """Assert R(t) - R_min <= (R0 - R_min) exp(-rate t) along the gradient flow.

    The flow is integrated by DOP853 (rtol 1e-12) until ``t_final`` or until the
    excess risk falls below ``window`` x its initial value; the bound is judged at
    every accepted step t > 0 above that level, with relative slack ``tol``.

    Args:
        model: an :class:`AbstractModel` or ``theta -> (risk, gradient)``.
        theta0: initial parameters.
        rate: the claimed exponential rate (e.g. :func:`dynamics.rates.gf_rate`).
        t_final: horizon.
        min_risk: R_min, the infimum the risk decays to (0 for realizable data).

    Returns:
        The worst slack ``min_{t > 0} 1 - excess(t) / bound(t)`` (>= -tol on
        success; close to 0 when the bound is tight at the start).

    Raises:
        AssertionError: the excess risk exceeds the bound by more than ``tol``.
    """
    model = as_model(model, n_params)
    R0 = model.risk(np.asarray(theta0, dtype=np.float64)) - min_risk
    traj = flow_ivp(model, theta0, t_final, stop_risk=min_risk + window * R0)
    _ensure_ok(traj, "the gradient flow")
    ex = traj.risks - min_risk
    # t = 0 is equality by construction (bound(0) = R0): judged from the first step.
    keep = (ex > window * R0) & (traj.times > 0.0)
    if not np.any(keep):
        raise AssertionError(
            "no accepted step with excess risk above window x R0: the rate bound "
            "was not checked (lengthen t_final or lower window)"
        )
    bound = R0 * np.exp(-rate * traj.times[keep])
    slack = 1.0 - ex[keep] / bound
    k = int(np.argmin(slack))
    worst = float(slack[k])
    if not worst >= -tol:
        raise AssertionError(
            f"rate bound violated: R(t) - R_min = {ex[keep][k]:.4e} > bound "
            f"{bound[k]:.4e} at t = {traj.times[keep][k]:.4g} (rate {rate:.4g}, "
            f"relative excess {-worst:.2e} > tol {tol:.1e})"
        )
    return worst


def fd_gradient(risk: Callable[[np.ndarray], float], theta, h=None) -> np.ndarray:
    """Central finite-difference gradient of ``risk`` at ``theta``.

    Step h_i = eps^(1/3) max(1, |theta_i|) per coordinate (by default), which
    balances the O(h^2) truncation against the O(eps / h) rounding error.
    """
    theta = np.asarray(theta, dtype=np.float64)
    if h is None:
        h = np.finfo(np.float64).eps ** (1 / 3) * np.maximum(1.0, np.abs(theta))
    h = np.broadcast_to(np.asarray(h, dtype=np.float64), theta.shape)
    g = np.empty_like(theta)
    for i in range(theta.size):
        e = np.zeros_like(theta)
        e.flat[i] = h.flat[i]
        g.flat[i] = (risk(theta + e) - risk(theta - e)) / (2 * h.flat[i])
    return g


def assert_gradient_matches(
    grad,
    theta,
    *,
    risk: Callable[[np.ndarray], float] | None = None,
    expected=None,
    rtol: float = 1e-9,
    fd_rtol: float = 1e-6,
) -> float:
    """Assert that a gradient agrees with the exact gradient and/or a FD oracle.

    Args:
        grad: the gradient under test, an array or a callable ``theta -> array``
            (e.g. ``model.grad`` or the gradient a DEQ gradient method produced).
        theta: where to compare.
        risk: ``theta -> risk``; if given, compare with :func:`fd_gradient` (the
            oracle needs no derivative code).
        expected: the exact gradient (array or callable), if known.
        rtol: ``||g - expected|| <= rtol max(1, ||expected||)``; two float64
            evaluations of the same quantity agree to ~ eps x a condition number.
        fd_rtol: ``||g - g_FD|| <= fd_rtol max(1, ||g_FD||)``; central differences
            at h ~ eps^(1/3) are accurate to ~ eps^(2/3) ~ 4e-11 times the third
            derivative scale, so 1e-6 leaves room for curvature of order 1e4.

    Returns:
        The largest relative error measured.

    Raises:
        AssertionError: a comparison exceeds its tolerance.
    """
    if risk is None and expected is None:
        raise InvalidInputError("give risk (finite-difference oracle) or expected")
    theta = np.asarray(theta, dtype=np.float64)
    g = np.asarray(grad(theta) if callable(grad) else grad, dtype=np.float64)
    worst = 0.0
    if expected is not None:
        e = np.asarray(expected(theta) if callable(expected) else expected, float)
        err = float(np.linalg.norm(g - e) / max(1.0, np.linalg.norm(e)))
        worst = max(worst, err)
        if not err <= rtol:
            raise AssertionError(
                f"gradient differs from the exact gradient: relative error {err:.3e} "
                f"> rtol {rtol:.1e}"
            )
    if risk is not None:
        fd = fd_gradient(risk, theta)
        err = float(np.linalg.norm(g - fd) / max(1.0, np.linalg.norm(fd)))
        worst = max(worst, err)
        if not err <= fd_rtol:
            raise AssertionError(
                f"gradient differs from central finite differences: relative error "
                f"{err:.3e} > fd_rtol {fd_rtol:.1e}"
            )
    return worst
