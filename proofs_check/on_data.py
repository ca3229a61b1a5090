"""Run a catalogued numeric claim on your own data and initialisation.

The registered checks draw their own seeded instances; the functions here judge the
same claim, with the same catalogue tolerance, on a user's ``X``, ``y`` and
``theta0``, and return a :class:`CheckResult` like ``verify`` does::

    from proofs_check.on_data import run_claim
    res = run_claim("LIN-GF-CONS", X, y, theta0)
    print(res.status, res.measured, res.reason)

Supported claims (where a check's structure allows one user instance):
``LIN-GF-CONS`` (conserved Q, or C and C' for the matrix DEQ, along gradient flow),
``LIN-GD-DRIFT`` (the exact per-step GD drift identity) and ``LIN-GF-RATE`` (the R4
exponential envelope of the risk). ``y`` of shape (n,) means the scalar linear DEQ
(theta = (u, v)); pass ``m`` for the matrix DEQ (theta = (vec W, vec U[, vec B])).
"""

from __future__ import annotations

import math

import numpy as np

from dynamics import rates
from dynamics.errors import InvalidInputError
from dynamics.measure import tol_margin
from dynamics.models.linear_deq import LinearDEQ
from dynamics.models.matrix_deq import MatrixLinearDEQ
from dynamics.testing import assert_conserved, assert_gd_drift, assert_rate_bound

from .catalogue import tol
from .registry import CheckResult, judged

__all__ = ["SUPPORTED", "run_claim", "linear_model"]

SUPPORTED = ("LIN-GF-CONS", "LIN-GD-DRIFT", "LIN-GF-RATE")
#: The flows stop where the R4 envelope guarantees R <= 1e-12 R0 (as the checks do).
_DECADES = 12.0


def linear_model(X, y, *, m: int | None = None, readout: bool = False):
    """The scalar (``m`` None) or matrix linear DEQ on the user's data."""
    if m is None:
        return LinearDEQ(X, y)
    Y = np.asarray(y, dtype=np.float64)
    return MatrixLinearDEQ(X, Y if Y.ndim == 2 else Y[:, None], m, readout=readout)


def _invariant(model):
    if isinstance(model, LinearDEQ):
        return LinearDEQ.Q
    if model.readout:
        return lambda th: np.concatenate(
            [model.C(th).ravel(), model.C_readout(th).ravel()]
        )
    return model.C


def _gd_drift_predicted(model):
    """eta^2 ||g||^2 for Q; eta^2 (G_W G_W^T + G_U G_U^T) for C (and C')."""
    if isinstance(model, LinearDEQ):
        return lambda th, g, eta: eta**2 * float(g @ g)

    def pred(th, g, eta):
        G = model.unpack(g)
        out = [(G.W @ G.W.T + G.U @ G.U.T).ravel()]
        if model.readout:
            out.append((G.W.T @ G.W + G.B.T @ G.B).ravel())
        return eta**2 * (
            out[0].reshape(model.C(th).shape) if len(out) == 1 else np.concatenate(out)
        )

    return pred


def _horizon(model, theta0, t_final):
    if t_final is not None:
        return float(t_final)
    if isinstance(model, MatrixLinearDEQ) and model.readout:
        raise InvalidInputError(
            "with a trained readout there is no rate bound to size the horizon: "
            "pass t_final"
        )
    return _DECADES * math.log(10.0) / rates.gf_rate(model, theta0)


def run_claim(
    claim_id: str,
    X,
    y,
    theta0,
    *,
    m: int | None = None,
    readout: bool = False,
    t_final: float | None = None,
    eta: float | None = None,
    steps: int = 200,
) -> CheckResult:
    """Judge ``claim_id`` on the linear DEQ over ``(X, y)`` started at ``theta0``.

    Args:
        claim_id: one of :data:`SUPPORTED`.
        X: (n, d) inputs; y: (n,) targets (scalar DEQ) or (n, k) (matrix DEQ).
        theta0: initial flat parameters of that model.
        m, readout: state dimension and trained readout of the matrix DEQ.
        t_final: flow horizon (default: where the R4 envelope reaches 1e-12 R0).
        eta, steps: GD step size (default 0.5 / the step bound of R5, i.e. a stable
            step) and number of updates, for LIN-GD-DRIFT.

    Returns:
        A :class:`CheckResult` (status pass or fail) with the measurement.
    """
    if claim_id not in SUPPORTED:
        raise InvalidInputError(
            f"run_claim supports {', '.join(SUPPORTED)}; got {claim_id!r} (the other "
            "claims need their own protocols: run `verify --claims ID`)"
        )
    model = linear_model(X, y, m=m, readout=readout)
    theta0 = np.asarray(theta0, dtype=np.float64)
    try:
        if claim_id == "LIN-GF-CONS":
            tolerance = tol(claim_id, "dop853")
            T = _horizon(model, theta0, t_final)
            measured = assert_conserved(
                _invariant(model), model, theta0, T, tol=math.inf
            )
            return judged(
                measured <= tolerance,
                measured=measured,
                predicted=0.0,
                worst_margin=tol_margin(measured, tolerance),
                tolerance=tolerance,
                instances=1,
                reason=f"DOP853 relative drift {measured:.2e} over t in [0, {T:.4g}]",
            )
        if claim_id == "LIN-GD-DRIFT":
            tolerance = tol(claim_id, "drift")
            if eta is None:
                eta = 0.5 * rates.gd_step_bound(model, theta0)
            measured = assert_gd_drift(
                _invariant(model),
                model,
                theta0,
                eta,
                steps,
                predicted=_gd_drift_predicted(model),
                tol=math.inf,
            )
            return judged(
                measured <= tolerance,
                measured=measured,
                predicted=0.0,
                worst_margin=tol_margin(measured, tolerance),
                tolerance=tolerance,
                instances=1,
                reason=f"worst per-step residual {measured:.2e} over {steps} GD steps "
                f"at eta = {eta:.4g}",
            )
        tolerance = tol(claim_id, "envelope")
        T = _horizon(model, theta0, t_final)
        kappa = rates.gf_rate(model, theta0)
        slack = assert_rate_bound(
            model, theta0, kappa, T, min_risk=model.min_risk, tol=math.inf
        )
        return judged(
            slack >= -tolerance,
            measured=slack,
            predicted=0.0,
            worst_margin=slack,
            tolerance=tolerance,
            instances=1,
            reason=f"R(t) - R_min <= R0 exp(-{kappa:.4g} t) with worst slack "
            f"{slack:.3g} over t in [0, {T:.4g}]",
        )
    except AssertionError as exc:  # the flow or GD run stopped early
        return judged(False, instances=1, reason=str(exc))
