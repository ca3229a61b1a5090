"""Gradient flow d theta / dt = -grad R(theta) over any :class:`AbstractModel`.

Two drivers share the :class:`Trajectory` record of gradient descent:

- :func:`integrate`: any one-step :class:`AbstractIntegrator` (RK4, implicit
  midpoint, Gauss-Legendre, or an adaptive SciPy solve per interval) on a fixed step
  ``h`` or a given step grid;
- :func:`flow_ivp`: one adaptive SciPy solve over the whole horizon with dense output
  (DOP853 at rtol 1e-12, atol 1e-14 by default; Radau/BDF with an exact Jacobian for
  stiff starts near a singular equilibrium, pitfall P8).

Neither raises by default: a singular equilibrium, a guard violation, a stage solve or
adaptive solve that gives up, or non-finite values end the run with the matching
:class:`Result` code and the last finite state recorded. ``throw=True`` raises the
named error instead.
"""

from __future__ import annotations

import math

import numpy as np

from .._result import Result
from .._validate import finite_array, param_vector, positive_int, positive_step
from ..errors import (
    DEQError,
    InvalidInputError,
)
from ..integrators._implicit_rk import Jacobian
from ..integrators.base import AbstractIntegrator, Field
from ..integrators.scipy_ivp import ScipyIVP
from ..models.base import AbstractModel
from .descent import Direction
from .trajectory import Recorder, Trajectory, failure_result


def gradient_field(model: AbstractModel, direction: Direction | None = None) -> Field:
    """The field (t, theta) -> -d(theta) of the (approximate) gradient flow.

    Args:
        model: the DEQ (owns its data).
        direction: ``theta -> (risk, d)``; defaults to ``model.value_and_grad`` (the
            exact IFT gradient), as in :func:`dynamics.flows.descent.gradient_descent`.
    """
    step_fn = model.value_and_grad if direction is None else direction

    def field(t: float, theta: np.ndarray) -> np.ndarray:
        del t  # autonomous
        return -np.asarray(step_fn(theta)[1], dtype=np.float64)

    return field


def _horizon(t_final) -> float:
    try:
        t_final = float(t_final)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"t_final must be a number; got {t_final!r}") from exc
    if not (math.isfinite(t_final) and t_final >= 0.0):
        raise InvalidInputError(f"t_final must be finite and >= 0; got {t_final!r}")
    return t_final


def _step_grid(t_final: float, h, grid) -> np.ndarray:
    """The step times 0 = t_0 < ... < t_N = t_final from ``h`` or ``grid``."""
    if (h is None) == (grid is None):
        raise InvalidInputError(
            "give exactly one of h (a fixed step) and grid (the step times)"
        )
    if grid is not None:
        g = finite_array("grid", grid, ndim=1)
        if (
            g.size < 1
            or g[0] != 0.0
            or np.any(np.diff(g) <= 0.0)
            or abs(g[-1] - t_final) > 1e-12 * max(1.0, t_final)
        ):
            raise InvalidInputError(
                f"grid must increase strictly from 0 to t_final = {t_final!r}"
            )
        g = g.copy()
        g[-1] = t_final
        return g
    h = positive_step("h", h)
    # The 1e-9 slack keeps t_final / h = 100.00000000000001 at 100 steps.
    n = math.ceil(t_final / h - 1e-9) if t_final > 0.0 else 0
    if not n:
        return np.zeros(1)
    g = np.arange(n + 1) * (t_final / n)
    g[-1] = t_final
    return g


def integrate(
    model: AbstractModel,
    theta0,
    t_final: float,
    *,
    integrator: AbstractIntegrator,
    h: float | None = None,
    grid=None,
    record_every: int = 1,
    direction: Direction | None = None,
    throw: bool = False,
) -> Trajectory:
    """Integrate the gradient flow from ``theta0`` over [0, t_final] on a step grid.

    With ``h`` the step is fixed at ``t_final / ceil(t_final / h)`` (at most ``h``), so
    the grid ends exactly at ``t_final``. With ``grid`` the steps go from one grid time
    to the next (e.g. the accepted steps of an adaptive reference solve, which are
    short where the field is stiff).

    Args:
        model: the DEQ.
        theta0: initial flat parameters.
        t_final: horizon, >= 0.
        integrator: any :class:`AbstractIntegrator`.
        h: largest step, positive (give ``h`` or ``grid``, not both).
        grid: strictly increasing times from 0 to ``t_final``.
        record_every: record every this many steps (the last one is always kept).
        direction: ``theta -> (risk, d)``; defaults to the exact gradient.
        throw: raise the named error if the run stops early instead of returning its
            ``result``.

    Returns:
        A :class:`Trajectory` with ``times`` = flow times, ``steps`` = integrator step
        indices. ``stats``: ``nfev`` (field evaluations of the integrator),
        ``nfev_record`` (risk evaluations for the records), ``h`` (the largest step
        used), ``h_min`` (the smallest), ``steps_taken``, ``t_reached``,
        ``integrator`` (its repr).
    """
    if not isinstance(integrator, AbstractIntegrator):
        raise InvalidInputError(
            f"integrator must be an AbstractIntegrator; got {type(integrator).__name__}"
        )
    t_final = _horizon(t_final)
    times = _step_grid(t_final, h, grid)
    n_steps = times.size - 1
    record_every = positive_int("record_every", record_every)
    theta = param_vector(theta0, model.n_params).copy()
    step_fn = model.value_and_grad if direction is None else direction
    field = gradient_field(model, direction)
    rec = Recorder(record_every)
    result, message = Result.successful, ""
    nfev = nfev_record = 0
    k = 0
    while True:
        t = float(times[k])
        if k % record_every == 0 or k == n_steps:
            try:
                risk, d = step_fn(theta)
            except DEQError as exc:
                result, message = failure_result(exc), f"step {k} (t = {t!r}): {exc}"
                break
            nfev_record += 1
            gnorm = float(np.linalg.norm(d))
            if not (np.isfinite(risk) and np.isfinite(gnorm)):
                result = Result.nonfinite
                message = f"step {k} (t = {t!r}): non-finite risk or gradient"
                break
            rec.add(t, k, theta, float(risk), gnorm, force=(k == n_steps))
        if k == n_steps:
            break
        try:
            new, nf = integrator.step(field, t, theta, float(times[k + 1]) - t)
        except DEQError as exc:
            result, message = failure_result(exc), f"step {k} (t = {t!r}): {exc}"
            break
        nfev += nf
        if not np.all(np.isfinite(new)):
            result, message = (
                Result.nonfinite,
                f"step {k} (t = {t!r}): non-finite state",
            )
            break
        theta = new
        k += 1
    if result is not Result.successful and (not rec.rows or rec.rows[-1][1] != k):
        # Keep the last finite state so that the failure point can be inspected.
        rec.rows.append((float(times[k]), k, theta.copy(), np.nan, np.nan))
    steps = np.diff(times)
    traj = rec.build(
        result,
        message,
        nfev=nfev,
        nfev_record=nfev_record,
        h=float(steps.max()) if n_steps else 0.0,
        h_min=float(steps.min()) if n_steps else 0.0,
        steps_taken=k,
        t_reached=float(times[k]),
        integrator=repr(integrator),
    )
    return traj.raise_on_failure() if throw else traj


def flow_ivp(
    model: AbstractModel,
    theta0,
    t_final: float,
    *,
    t_eval=None,
    method: str = "DOP853",
    rtol: float = 1e-12,
    atol: float = 1e-14,
    jac: Jacobian | None = None,
    direction: Direction | None = None,
    stop_risk: float | None = None,
    throw: bool = False,
) -> Trajectory:
    """Reference gradient-flow trajectory: one adaptive SciPy solve with dense output.

    Args:
        model: the DEQ.
        theta0: initial flat parameters.
        t_final: horizon, > 0.
        t_eval: increasing times in [0, t_final] to record at (from the dense
            output); by default every accepted step.
        method: a ``solve_ivp`` method name (DOP853, RK45, RK23, Radau, BDF, LSODA).
        rtol, atol: tolerances (defaults 1e-12, 1e-14; pitfall P8).
        jac: ``(t, theta) -> d field / d theta`` for Radau/BDF/LSODA; for the exact
            gradient flow of a model with a Hessian,
            ``lambda t, th: -model.hessian(th)``.
        direction: ``theta -> (risk, d)``; defaults to the exact gradient.
        stop_risk: end the solve (successfully) at the first accepted step whose risk
            is <= this; the horizon then ends there (``stats['t_reached']``), and
            ``t_eval`` points beyond it are replaced by one record at that time.
            Costs one risk evaluation per accepted step.
        throw: raise the named error if the run stops early.

    Returns:
        A :class:`Trajectory`; ``steps`` holds the number of accepted steps taken
        before each record. ``stats``: ``nfev``, ``njev``, ``nlu`` (SciPy's counters),
        ``nfev_record``, ``n_accepted``, ``t_reached``, ``stopped`` (by
        ``stop_risk``), ``method``, ``rtol``, ``atol``,
        and ``dense``: SciPy's ``OdeSolution`` over [0, t_reached] (not JSON-able; drop
        it before serialising), or None if no step was accepted.
    """
    t_final = _horizon(t_final)
    if t_final == 0.0:
        raise InvalidInputError("flow_ivp needs t_final > 0")
    theta0 = param_vector(theta0, model.n_params).copy()
    if t_eval is not None:
        t_eval = finite_array("t_eval", t_eval, ndim=1)
        if (
            t_eval.size == 0
            or np.any(np.diff(t_eval) <= 0.0)
            or t_eval[0] < 0.0
            or t_eval[-1] > t_final
        ):
            raise InvalidInputError(
                "t_eval must be non-empty, strictly increasing and "
                f"inside [0, t_final = {t_final!r}]"
            )
    step_fn = model.value_and_grad if direction is None else direction
    ivp = ScipyIVP(method=method, rtol=rtol, atol=atol, jacobian=jac)
    terminate = None
    if stop_risk is not None:
        stop_risk = float(stop_risk)
        if not stop_risk >= 0.0:
            raise InvalidInputError(f"stop_risk must be >= 0; got {stop_risk!r}")

        def terminate(t: float, theta: np.ndarray) -> bool:
            del t
            try:
                return float(step_fn(theta)[0]) <= stop_risk
            except DEQError:  # the solver's next field evaluation will report it
                return False

    sol = ivp.solve(
        gradient_field(model, direction), 0.0, theta0, t_final, terminate=terminate
    )
    t_reached = float(sol.t[-1])
    if t_eval is None:
        times, thetas = sol.t, sol.y
    else:
        times = t_eval[t_eval <= t_reached]
        thetas = (
            np.atleast_2d(sol.dense(times).T)
            if sol.dense is not None
            else np.repeat(theta0[None, :], times.size, axis=0)
        )
        if sol.stopped and (times.size == 0 or times[-1] < t_reached):
            times = np.append(times, t_reached)
            thetas = np.vstack([thetas, sol.y[-1]])
    if sol.ok:
        result, message = Result.successful, ""
    elif sol.error is not None:
        result, message = failure_result(sol.error), sol.message
    else:
        result, message = Result.diverged, sol.message
    rows = []
    for t, th in zip(times, thetas, strict=True):
        try:
            risk, d = step_fn(th)
        except DEQError as exc:
            if result is Result.successful:
                result, message = failure_result(exc), f"t = {t!r}: {exc}"
            risk, d = np.nan, np.full_like(th, np.nan)
        rows.append(
            (
                float(t),
                int(np.searchsorted(sol.t, t, side="right") - 1),
                np.array(th, dtype=np.float64),
                float(risk),
                float(np.linalg.norm(d)),
            )
        )
    if not sol.ok and (not rows or rows[-1][0] < t_reached):
        rows.append((t_reached, sol.t.size - 1, sol.y[-1].copy(), np.nan, np.nan))
    if not rows:
        rows.append((0.0, 0, theta0.copy(), np.nan, np.nan))
    rec = Recorder(1)
    rec.rows = rows
    traj = rec.build(
        result,
        message,
        nfev=sol.nfev,
        njev=sol.njev,
        nlu=sol.nlu,
        nfev_record=len(rows),
        n_accepted=sol.t.size - 1,
        t_reached=t_reached,
        stopped=sol.stopped,
        method=method,
        rtol=rtol,
        atol=atol,
        dense=sol.dense,
    )
    return traj.raise_on_failure() if throw else traj
