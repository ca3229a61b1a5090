"""Run a catalogued numeric claim on your own data and initialisation.

The registered checks draw their own seeded instances; the functions here judge the
same claim, with the same catalogue tolerance, on a user's ``X``, ``y`` and
``theta0``, and return a :class:`CheckResult` like ``verify`` does::

    from proofs_check.on_data import run_claim
    res = run_claim("LIN-GF-CONS", X, y, theta0)
    print(res.status, res.measured, res.reason)

Supported claims (where a check's structure allows one user instance):
``LIN-GF-CONS`` (conserved Q, or C and C' for the matrix DEQ, along gradient flow),
``LIN-GD-DRIFT`` (the exact per-step GD drift identity), ``LIN-GF-RATE`` (the R4
exponential envelope of the risk), ``LIN-COND`` (the R3 conditioning floor along
gradient flow) and ``LIN-GD-RATE`` (the R6 linear rate of gradient descent; for the
matrix DEQ, or a step above 1/ell, conditional on the descent inequality, judged on
the prefix where it held). ``y`` of shape (n,) means the scalar linear DEQ
(theta = (u, v)); pass ``m`` for the matrix DEQ (theta = (vec W, vec U[, vec B])).
"""

from __future__ import annotations

import math

import numpy as np

from dynamics import flow_ivp, rates
from dynamics._validate import positive_step
from dynamics.errors import InvalidInputError
from dynamics.measure import tol_margin
from dynamics.models.linear_deq import LinearDEQ
from dynamics.models.matrix_deq import MatrixLinearDEQ
from dynamics.testing import assert_conserved, assert_gd_drift, assert_rate_bound

from .catalogue import tol
from .registry import CheckResult, judged

__all__ = ["SUPPORTED", "run_claim", "linear_model"]

SUPPORTED = ("LIN-GF-CONS", "LIN-GD-DRIFT", "LIN-GF-RATE", "LIN-COND", "LIN-GD-RATE")
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
        eta, steps: GD step size (default half the R6 step bound 1/ell of the scalar
            model; required for the matrix DEQ, which has no explicit 1/ell) and
            number of updates, for LIN-GD-DRIFT and LIN-GD-RATE.

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
    if claim_id == "LIN-COND":
        return _cond(model, theta0, t_final)
    if claim_id == "LIN-GD-RATE":
        return _gd_rate(model, theta0, eta, steps)
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


def _default_eta(model, theta0, eta, claim_id):
    if eta is not None:
        return eta
    if isinstance(model, LinearDEQ):
        return 0.5 * rates.gd_step_bound(model, theta0)
    raise InvalidInputError(
        f"{claim_id} on the matrix DEQ needs eta: R6 derives an explicit step bound "
        "1/ell only for the scalar model (pass eta=...)"
    )


def _cond(model, theta0, t_final) -> CheckResult:
    """LIN-COND (R3) on one user instance, judged as the registered check judges it."""
    from .checks.lin_gf_cond import cond_matrix_margins, cond_scalar_margins

    if isinstance(model, MatrixLinearDEQ) and model.readout:
        raise InvalidInputError(
            "LIN-COND's a-priori floor is derived without a trained readout "
            "(readout=False)"
        )
    tolerance = tol("LIN-COND", "bound")
    T = _horizon(model, theta0, t_final)
    traj = flow_ivp(model, theta0, T)
    if not traj.result.ok:
        return judged(
            False, instances=1, reason=f"the flow stopped early: {traj.message}"
        )
    if isinstance(model, LinearDEQ):
        got = cond_scalar_margins(model, theta0, traj.thetas)
        measured, what = got["min_gap"], "|1 - v(t)|"
        # |1-v| = r0 / sqrt(1 + ||beta||^2) is an identity (slack 0 by construction):
        # it must hold to rounding but is not the bound's margin.
        margin = got["apriori_slack"]
        identity_ok = got["identity_slack"] >= -tolerance
    else:
        got = cond_matrix_margins(model, theta0, traj.thetas)
        keys = ("middle_slack", "apriori_slack", "upper_slack")
        measured, what = got["min_sigma_min_sq"], "sigma_min(I - W(t))^2"
        margin, identity_ok = min(got[k] for k in keys), True
    sign_ok = got.get("sign_constant", True)
    reason = (
        f"min over t in [0, {T:.4g}] of {what} = {measured:.4g} against the floor "
        f"{got['bound']:.4g}; worst relative slack {margin:.3g}"
    )
    if not sign_ok:
        reason += "; sign(1 - v) changed along the flow"
    if not identity_ok:
        reason += (
            f"; the identity |1-v| = r0/sqrt(1+||beta||^2) is off by "
            f"{-got['identity_slack']:.2e}"
        )
    return judged(
        margin >= -tolerance and sign_ok and identity_ok,
        measured=measured,
        predicted=got["bound"],
        worst_margin=margin,
        tolerance=tolerance,
        instances=1,
        reason=reason,
    )


def _gd_rate(model, theta0, eta, steps) -> CheckResult:
    """LIN-GD-RATE (R6) on one user instance. Unconditional for the scalar model with
    eta <= 1/ell (R6 a: the descent inequality must then hold at every step too);
    otherwise judged on the prefix of steps where the descent inequality held (R6 b),
    and the report says how long that prefix was."""
    from .cases.lin_gd import TOL_GD_RATE, analyse_gd, rate_slack

    steps = int(steps)
    eta = positive_step("eta", _default_eta(model, theta0, eta, "LIN-GD-RATE"))
    unconditional = isinstance(model, LinearDEQ) and eta <= rates.gd_step_bound(
        model, theta0
    )
    q = rates.gd_rate_factor(model, theta0, eta)
    run = analyse_gd(model, theta0, eta, steps)
    upto = None if unconditional else run.prefix
    slack, judged_steps = rate_slack(run, q, upto=upto)
    descent_ok = bool(run.descent[:judged_steps].all())
    ok = (
        judged_steps > 0
        and slack >= 0.0
        and run.traj.result.ok
        and (descent_ok or not unconditional)
    )
    kind = (
        "eta <= 1/ell (unconditional)"
        if unconditional
        else f"conditional: descent inequality held for {run.prefix} of {steps} steps"
    )
    reason = (
        f"worst relative slack of R_k - R_min <= (1+tol) q^k R_0 with q = {q:.6g}: "
        f"{slack:.3g} over {judged_steps} steps at eta = {eta:.4g}; {kind}"
    )
    if judged_steps == 0:
        reason += "; no step was judged (the risk is at the float floor already)"
    if unconditional and not descent_ok:
        reason += "; the descent inequality failed although R6 (a) proves it"
    if not run.traj.result.ok:
        reason += f"; the run stopped early: {run.traj.message}"
    return judged(
        ok,
        measured=slack,
        predicted=0.0,
        worst_margin=slack,
        tolerance=TOL_GD_RATE,
        instances=1,
        reason=reason,
    )
