"""Full-batch gradient descent theta_{k+1} = theta_k - eta d(theta_k).

GD is explicit Euler on the gradient-flow field, and it records into the same
:class:`Trajectory` as the integrators. The update direction ``d`` defaults to the
exact gradient; an approximate-backprop direction is passed in as a callable.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .._result import Result
from .._validate import param_vector, positive_int, positive_step
from ..errors import DEQError
from ..models.base import AbstractModel
from .trajectory import Recorder, Trajectory, failure_result, progress_message

Direction = Callable[[np.ndarray], tuple[float, np.ndarray]]


def gradient_descent(
    model: AbstractModel,
    theta0,
    eta: float,
    steps: int,
    *,
    direction: Direction | None = None,
    record_every: int = 1,
    throw: bool = False,
) -> Trajectory:
    """Run ``steps`` GD updates from ``theta0`` with step size ``eta``.

    Args:
        model: the DEQ (owns its data).
        theta0: initial flat parameters.
        eta: step size, positive.
        steps: number of updates.
        direction: ``theta -> (risk, update direction)``; defaults to
            ``model.value_and_grad`` (the exact IFT gradient).
        record_every: record every this many updates (the last one is always kept).
        throw: raise the named error if the run stops early (singular equilibrium,
            guard violation, non-finite values) instead of returning its ``result``.

    Returns:
        A :class:`Trajectory`. Its ``result`` is ``fixed_steps_completed`` when every
        requested step ran with a finite risk and direction: that is *all* it means.
        GD has no stopping criterion, so it never reports ``successful`` (which
        would read as "converged"); the risk may have barely moved. Judge progress
        from ``stats`` (also summarised in ``message``): ``risk_initial``,
        ``risk_final``, ``grad_norm_final`` (norm of the last direction) and
        ``max_step_length`` (max_k eta ||d_k||).
    """
    eta = positive_step("eta", eta)
    steps = positive_int("steps", steps, minimum=0)
    record_every = positive_int("record_every", record_every)
    theta = param_vector(theta0, model.n_params).copy()
    step_fn = model.value_and_grad if direction is None else direction
    rec = Recorder(record_every)
    result, message, max_step = Result.fixed_steps_completed, "", 0.0
    k = 0
    while True:
        try:
            risk, d = step_fn(theta)
        except DEQError as exc:
            result, message = failure_result(exc), f"step {k}: {exc}"
            break
        gnorm = float(np.linalg.norm(d))
        if not (np.isfinite(risk) and np.isfinite(gnorm)):
            result, message = Result.nonfinite, f"step {k}: non-finite risk or gradient"
            break
        rec.add(k * eta, k, theta, risk, gnorm, force=(k == steps))
        if k == steps:
            break
        max_step = max(max_step, eta * gnorm)
        theta = theta - eta * d
        k += 1
    if not result.ok and rec.rows and rec.rows[-1][1] != k:
        # Keep the last finite iterate so the failure point can be inspected.
        rec.rows.append((k * eta, k, theta.copy(), np.nan, np.nan))
    if not rec.rows:
        rec.rows.append((0.0, 0, theta.copy(), np.nan, np.nan))
    finite = [r for r in rec.rows if np.isfinite(r[3])]
    stats = {
        "risk_initial": finite[0][3] if finite else np.nan,
        "risk_final": finite[-1][3] if finite else np.nan,
        "grad_norm_final": finite[-1][4] if finite else np.nan,
    }
    if result.ok:
        message = progress_message(k, stats)
    traj = rec.build(result, message, max_step_length=max_step, steps_taken=k, **stats)
    return traj.raise_on_failure() if throw else traj
