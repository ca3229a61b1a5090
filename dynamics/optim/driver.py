"""The loop that runs any :class:`~.optimizers.Optimizer` on a DEQ model.

It mirrors :func:`dynamics.gradient_descent`: same arguments, same failure handling
(a singular equilibrium, a guard violation or a non-finite value stops the run with a
:class:`~dynamics.Result` code; ``throw=True`` raises the named error instead), and a
:class:`~dynamics.Trajectory` record, extended with what momentum methods need: the
incoming velocity ``theta_k - theta_{k-1}`` at each record, the gradient each step
used (taken at the lookahead point for Nesterov), and the trace of the quantity that
gradient flow conserves (Q for the scalar linear DEQ, C = (I-W)(I-W)^T + U U^T for
the matrix one).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .._result import Result
from .._validate import param_vector, positive_int
from ..errors import DEQError, SingularEquilibriumError, WellPosednessError
from ..flows.trajectory import Trajectory, progress_message
from ..models.base import AbstractModel
from ..models.linear_deq import LinearDEQ
from ..models.matrix_deq import MatrixLinearDEQ
from .optimizers import Adam, HeavyBall, Nesterov, Optimizer, RMSProp


@dataclasses.dataclass(frozen=True)
class OptimTrajectory(Trajectory):
    """A :class:`~dynamics.Trajectory` of a momentum or adaptive run.

    Extra attributes (one row per record, like ``thetas``):
        velocities: (K, P) ``theta_k - theta_{k-1}`` (zero at k = 0: start at rest).
        grads: (K, P) the gradient used by the step leaving record k, taken at the
            lookahead point (NaN on the last record, where no step was taken).
        steps_taken_from: (K, P) ``theta_{k+1} - theta_k`` for each record (NaN on
            the last record).
        conserved: Q_k (K,) for a :class:`LinearDEQ`, C_k (K, m, m) for a
            :class:`MatrixLinearDEQ`, None for other models.
        optimizer: the optimiser's hyperparameters.
    """

    velocities: np.ndarray | None = None
    grads: np.ndarray | None = None
    steps_taken_from: np.ndarray | None = None
    conserved: np.ndarray | None = None
    optimizer: dict = dataclasses.field(default_factory=dict)


def conserved_quantity(model, theta) -> np.ndarray | float | None:
    """Q (scalar linear DEQ) or C (matrix linear DEQ) at ``theta``; None otherwise."""
    if isinstance(model, LinearDEQ):
        return LinearDEQ.Q(theta)
    if isinstance(model, MatrixLinearDEQ):
        return model.C(theta)
    return None


def optimize(
    model: AbstractModel,
    theta0,
    optimizer: Optimizer,
    steps: int,
    *,
    record_every: int = 1,
    throw: bool = False,
) -> OptimTrajectory:
    """Run ``steps`` updates of ``optimizer`` from ``theta0`` (at rest).

    Args:
        model: the DEQ (owns its data).
        theta0: initial flat parameters.
        optimizer: a :class:`HeavyBall`, :class:`Nesterov`, :class:`Adam` or
            :class:`RMSProp` (hyperparameters validated when it was built).
        steps: number of updates.
        record_every: record every this many updates (the last one is always kept).
        throw: raise the named error if the run stops early instead of returning it.

    Returns:
        An :class:`OptimTrajectory`; ``stats['max_step_length']`` is
        max_k ||theta_{k+1} - theta_k||. Its ``result`` is ``fixed_steps_completed``
        when every step ran (never ``successful``: there is no stopping criterion);
        ``message`` then says how far the risk and the gradient moved.
    """
    if not isinstance(optimizer, Optimizer):
        raise TypeError(
            f"optimizer must be an Optimizer (HeavyBall, Nesterov, Adam, RMSProp); "
            f"got {type(optimizer).__name__}"
        )
    steps = positive_int("steps", steps, minimum=0)
    record_every = positive_int("record_every", record_every)
    theta = param_vector(theta0, model.n_params).copy()
    state = optimizer.init_state(model.n_params)
    needs_risk_apart = type(optimizer).lookahead is not Optimizer.lookahead
    rows: list[tuple] = []
    result, message, max_step = Result.fixed_steps_completed, "", 0.0
    velocity = np.zeros_like(theta)
    k = 0
    nan = np.full_like(theta, np.nan)
    while True:
        keep = k % record_every == 0 or k == steps
        try:
            if k == steps:
                risk, grad = model.risk(theta), nan
            elif needs_risk_apart:
                risk = model.risk(theta)
                grad = model.value_and_grad(optimizer.lookahead(theta, state))[1]
            else:
                risk, grad = model.value_and_grad(theta)
        except SingularEquilibriumError as exc:
            result, message = Result.singular, f"step {k}: {exc}"
            break
        except WellPosednessError as exc:
            result, message = Result.guard_violated, f"step {k}: {exc}"
            break
        except DEQError as exc:
            result, message = Result.nonfinite, f"step {k}: {exc}"
            break
        gnorm = float(np.linalg.norm(grad))
        if not np.isfinite(risk) or (k < steps and not np.isfinite(gnorm)):
            result, message = Result.nonfinite, f"step {k}: non-finite risk or gradient"
            break
        if k == steps:
            rows.append((k, theta.copy(), risk, np.nan, velocity, nan, nan))
            break
        step = optimizer.update(grad, state)
        if not np.all(np.isfinite(step)):
            result, message = Result.nonfinite, f"step {k}: non-finite update"
            break
        new = theta + step
        if keep:
            rows.append((k, theta.copy(), risk, gnorm, velocity, grad, new - theta))
        max_step = max(max_step, float(np.linalg.norm(new - theta)))
        velocity = new - theta
        theta = new
        k += 1
    if not result.ok and (not rows or rows[-1][0] != k):
        # Keep the last finite iterate so the failure point can be inspected.
        rows.append((k, theta.copy(), np.nan, np.nan, velocity, nan, nan))
    ks, th, rs, gn, vel, gr, st = zip(*rows, strict=True)
    thetas = np.array(th)
    if result.ok:
        finite = [(r, g) for r, g in zip(rs, gn, strict=True) if np.isfinite(r)]
        message = progress_message(
            k,
            {
                "risk_initial": rs[0],
                "risk_final": rs[-1],
                # the last record has no gradient: report the last one computed
                "grad_norm_final": next(
                    (g for _, g in reversed(finite) if np.isfinite(g)), np.nan
                ),
            },
        )
    conserved = None
    if isinstance(model, (LinearDEQ, MatrixLinearDEQ)):
        conserved = np.array([conserved_quantity(model, t) for t in thetas])
    traj = OptimTrajectory(
        times=np.array(ks, float) * getattr(optimizer, "eta", 1.0),
        steps=np.array(ks),
        thetas=thetas,
        risks=np.array(rs),
        grad_norms=np.array(gn),
        result=result,
        message=message,
        stats={"max_step_length": max_step, "steps_taken": k},
        velocities=np.array(vel),
        grads=np.array(gr),
        steps_taken_from=np.array(st),
        conserved=conserved,
        optimizer=optimizer.describe(),
    )
    if throw:
        traj.raise_on_failure()
    return traj


def heavy_ball(model, theta0, eta: float, mu: float, steps: int, **kw):
    """Heavy-ball momentum run; see :func:`optimize` for the keyword arguments."""
    return optimize(model, theta0, HeavyBall(eta, mu), steps, **kw)


def nesterov(model, theta0, eta: float, mu: float, steps: int, **kw):
    """Nesterov momentum run; see :func:`optimize`."""
    return optimize(model, theta0, Nesterov(eta, mu), steps, **kw)


def adam(
    model, theta0, eta: float, steps: int, *, beta1=0.9, beta2=0.999, eps=1e-8, **kw
):
    """Adam run; see :func:`optimize`."""
    return optimize(model, theta0, Adam(eta, beta1, beta2, eps), steps, **kw)


def rmsprop(model, theta0, eta: float, steps: int, *, alpha=0.99, eps=1e-8, **kw):
    """RMSProp run; see :func:`optimize`."""
    return optimize(model, theta0, RMSProp(eta, alpha, eps), steps, **kw)
