"""Pointwise linear-DEQ claims: LIN-GRAD, LIN-FACTOR (numeric), LIN-PL (R3, R4).

Each check draws many seeded instances (:mod:`dynamics.instances`: dimensions, data,
initialisations) plus random parameter points on both sides of the singular set, and
reports the worst margin. Margins: for a tolerance check, ``1 - error / tolerance``;
for an inequality, the relative slack ``(lhs - rhs) / |rhs|`` of ``lhs >= rhs``. Both
are >= 0 when the claim held (an inequality also passes down to ``-tolerance``).

The instance streams are in :mod:`proofs_check.cases.lin` (shared with the GD, GF
and momentum checks); the torch closed forms below are LIN-GRAD's own oracle.
"""

from __future__ import annotations

import math

import numpy as np

from dynamics.measure import (
    FD_STEP,
    central_difference,
    rel_norm,
    rel_slack,
    tol_margin,
)
from dynamics.models.base import LOSS_FACTOR
from dynamics.models.linear_deq import LinearDEQ
from dynamics.models.matrix_deq import MatrixLinearDEQ

from ..cases.lin import matrix_cases, n_instances, scalar_cases, singular_scale
from ..catalogue import tol
from ..registry import CheckResult, Context, check, judged

#: Tolerances of the claim catalogue (float64).
TOL_AUTOGRAD = tol("LIN-GRAD", "autograd")  # against autograd through the closed form
TOL_FD = tol("LIN-GRAD", "fd")  # against central finite differences
TOL_FACTOR = tol("LIN-FACTOR", "numeric")
TOL_PL_IDENTITY = tol("LIN-PL", "identity")
TOL_PL_INEQ = tol("LIN-PL", "inequality")  # relative


# ------------------------------------------------------------ torch closed forms


def torch_risk(model, theta_t):
    """The no-1/2 MSE risk through the closed form, in torch (for autograd, LIN-GRAD).

    Scalar: mean((X u / (1 - v) - y)^2). Matrix: ||B (I - W)^-1 U X - Y||_F^2 / n with a
    linear solve (first-order reverse mode through ``solve`` is exact; pitfall P10
    concerns nested forward mode only).
    """
    import torch

    if isinstance(model, LinearDEQ):
        X = torch.as_tensor(model.X)
        y = torch.as_tensor(model.y)
        beta = theta_t[:-1] / (1.0 - theta_t[-1])
        return torch.mean((X @ beta - y) ** 2)
    assert isinstance(model, MatrixLinearDEQ)
    m, d, k = model.m, model.d, model.k
    W = theta_t[: m * m].reshape(m, m)
    U = theta_t[m * m : m * m + m * d].reshape(m, d)
    M = torch.linalg.solve(torch.eye(m, dtype=theta_t.dtype) - W, U)
    pred = torch.as_tensor(model.X) @ M.T
    if model.readout:
        pred = pred @ theta_t[m * m + m * d :].reshape(k, m).T
    return torch.sum((pred - torch.as_tensor(model.Y)) ** 2) / model.n


def autograd_grad(model, theta) -> np.ndarray:
    import torch

    th = torch.tensor(theta, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(torch_risk(model, th), th)
    return g.detach().numpy()


def numpy_risk_function(model):
    """A torch ``autograd.Function`` whose backward is the model's own NumPy gradient,
    so that ``torch.autograd.gradcheck`` tests *our* gradient against its FD."""
    import torch

    class _Risk(torch.autograd.Function):
        @staticmethod
        def forward(ctx, theta):
            r, g = model.value_and_grad(theta.detach().numpy())
            ctx.save_for_backward(torch.as_tensor(g))
            return torch.tensor(r, dtype=theta.dtype)

        @staticmethod
        def backward(ctx, grad_out):
            (g,) = ctx.saved_tensors
            return grad_out * g

    return _Risk.apply


def gradcheck_ok(model, theta) -> bool:
    import torch

    th = torch.tensor(theta, dtype=torch.float64, requires_grad=True)
    # The default eps = 1e-6 is an absolute step: scale it to the distance from the
    # singular set so the FD in gradcheck stays in its accurate regime near v = 1.
    eps = 1e-6 * min(1.0, singular_scale(model, theta))
    return bool(
        torch.autograd.gradcheck(
            numpy_risk_function(model),
            (th,),
            eps=eps,
            atol=1e-6,
            rtol=1e-5,
            raise_exception=False,
        )
    )


def central_fd(model, theta) -> np.ndarray:
    """Central FD gradient with step eps^(1/3) * scale, scale = min(1, distance to the
    singular set): the risk varies on that length scale near v = 1 or singular I - W."""
    h = FD_STEP * min(1.0, singular_scale(model, theta))
    return central_difference(model.risk, theta, h)


# --------------------------------------------------------------------- LIN-GRAD


def _lin_grad(cases) -> CheckResult:
    worst_ad = worst_fd = 0.0
    where_ad = where_fd = ""
    gc_fail: list[str] = []
    count = 0
    for label, model, theta in cases:
        g = model.grad(theta)
        e_ad = rel_norm(g, autograd_grad(model, theta))
        e_fd = rel_norm(g, central_fd(model, theta))
        if e_ad > worst_ad:
            worst_ad, where_ad = e_ad, label
        if e_fd > worst_fd:
            worst_fd, where_fd = e_fd, label
        if not gradcheck_ok(model, theta):
            gc_fail.append(label)
        count += 1
    margin = min(tol_margin(worst_ad, TOL_AUTOGRAD), tol_margin(worst_fd, TOL_FD))
    ok = worst_ad <= TOL_AUTOGRAD and worst_fd <= TOL_FD and not gc_fail
    reason = (
        f"worst rel error vs autograd {worst_ad:.2e} (tol {TOL_AUTOGRAD:.0e}), "
        f"vs central FD {worst_fd:.2e} (tol {TOL_FD:.0e}); gradcheck failed on "
        f"{len(gc_fail)}/{count}"
    )
    return judged(
        ok,
        measured=worst_ad,
        predicted=0.0,
        worst_margin=margin,
        tolerance=TOL_AUTOGRAD,
        instances=count,
        reason=reason,
        details={
            "margin": "min over the autograd and FD comparisons of 1 - error/tolerance",
            "worst_autograd_rel": worst_ad,
            "worst_autograd_at": where_ad,
            "worst_fd_rel": worst_fd,
            "worst_fd_at": where_fd,
            "tol_fd": TOL_FD,
            "gradcheck_failures": gc_fail,
        },
    )


@check("LIN-GRAD", part="scalar", kind="numeric")
def lin_grad_scalar(ctx: Context) -> CheckResult:
    """LIN-GRAD (a), §2.2: grad_u R = g_beta/(1-v), d_v R = <g_beta, beta>/(1-v)."""
    rng = ctx.rng("LIN-GRAD/scalar")
    return _lin_grad(scalar_cases(rng, n_instances(ctx, 10, 100)))


@check("LIN-GRAD", part="matrix", kind="numeric")
def lin_grad_matrix(ctx: Context) -> CheckResult:
    """LIN-GRAD (b), §2.3: grad_U = A^-T G, grad_W = A^-T G M^T, grad_B = G_out M^T."""
    rng = ctx.rng("LIN-GRAD/matrix")
    return _lin_grad(matrix_cases(rng, n_instances(ctx, 12, 120)))


# ------------------------------------------------------------------- LIN-FACTOR


def factor_error(model, theta) -> float:
    """Relative error of the LIN-FACTOR identity at ``theta``.

    Scalar: Q = (1 - v)^2 (1 + ||beta||^2). Matrix: A A^T + U U^T = A (I + M M^T) A^T.
    """
    if isinstance(model, LinearDEQ):
        gap = model.one_minus_v(theta)
        b = model.beta(theta)
        return abs(model.Q(theta) - gap**2 * (1.0 + b @ b)) / model.Q(theta)
    A = model.A(theta)
    M = model.end_to_end(theta)
    rhs = A @ (np.eye(model.m) + M @ M.T) @ A.T
    return rel_norm(model.C(theta), rhs)


@check("LIN-FACTOR", part="numeric", kind="property")
def lin_factor_numeric(ctx: Context) -> CheckResult:
    """LIN-FACTOR (R3): Q = (1-v)^2 (1+||beta||^2); AA^T + UU^T = A (I + MM^T) A^T."""
    rng = ctx.rng("LIN-FACTOR/numeric")
    cases = [
        *scalar_cases(rng, n_instances(ctx, 40, 400)),
        *matrix_cases(rng, n_instances(ctx, 40, 400)),
    ]
    errs = [(factor_error(model, th), label) for label, model, th in cases]
    worst, where = max(errs)
    return judged(
        worst <= TOL_FACTOR,
        measured=worst,
        predicted=0.0,
        worst_margin=tol_margin(worst, TOL_FACTOR),
        tolerance=TOL_FACTOR,
        instances=len(cases),
        reason=f"worst relative error {worst:.2e} at {where}",
        details={"margin": "1 - error/tolerance", "worst_at": where},
    )


# ------------------------------------------------------------------------ LIN-PL


def pl_terms(model, theta, loss_factor: float = LOSS_FACTOR) -> dict:
    """||grad R||^2 and the PL right-hand side 2 c lam R / K at ``theta`` (R4).

    K = Q (scalar) or lambda_max(A A^T + U U^T) (matrix, no readout); R is the excess
    risk. For the scalar model also the identity's right-hand side
    (1 + ||beta||^2)(||g||^2 + <g, beta>^2) / Q.
    """
    r, g = model.value_and_grad(theta)
    R = max(r - model.min_risk, 0.0)
    out = {"grad_sq": float(g @ g)}
    if isinstance(model, LinearDEQ):
        Q = model.Q(theta)
        b = model.beta(theta)
        gb = model.g_beta(b)
        out["identity_rhs"] = float((1.0 + b @ b) * (gb @ gb + (gb @ b) ** 2) / Q)
        out["pl_rhs"] = 2.0 * loss_factor * model.lambda_min * R / Q
    else:
        lam_c = float(np.linalg.eigvalsh(model.C(theta))[-1])
        out["pl_rhs"] = 2.0 * loss_factor * model.lambda_min * R / lam_c
    return out


@check("LIN-PL", part="scalar", kind="property")
def lin_pl_scalar(ctx: Context) -> CheckResult:
    """LIN-PL (R4), scalar: ||grad R||^2 = (1+|b|^2)(|g|^2+<g,b>^2)/Q >= 4 lam R/Q."""
    rng = ctx.rng("LIN-PL/scalar")
    cases = list(scalar_cases(rng, n_instances(ctx, 60, 600)))
    worst_id, worst_slack, where = 0.0, math.inf, ""
    for label, model, th in cases:
        t = pl_terms(model, th)
        worst_id = max(worst_id, abs(t["grad_sq"] - t["identity_rhs"]) / t["grad_sq"])
        s = rel_slack(t["grad_sq"], t["pl_rhs"])
        if s < worst_slack:
            worst_slack, where = s, label
    ok = worst_id <= TOL_PL_IDENTITY and worst_slack >= -TOL_PL_INEQ
    return judged(
        ok,
        measured=worst_slack,
        predicted=0.0,
        worst_margin=min(worst_slack, tol_margin(worst_id, TOL_PL_IDENTITY)),
        tolerance=TOL_PL_INEQ,
        instances=len(cases),
        reason=(
            f"identity worst rel error {worst_id:.2e} (tol "
            f"{TOL_PL_IDENTITY:.0e}); inequality worst relative slack "
            f"{worst_slack:.3g} at {where}"
        ),
        details={
            "margin": "min(relative slack of ||grad R||^2 >= "
            "4 lam R/Q, 1 - identity error/tolerance)",
            "identity_worst_rel": worst_id,
            "inequality_worst_slack": worst_slack,
            "loss_factor": LOSS_FACTOR,
            "tightness": {
                "ratio": 1.0 / (1.0 + worst_slack),
                "where": where,
                "measure": "(4 lam R / Q) / ||grad R||^2 at the tightest random point",
            },
        },
    )


@check("LIN-PL", part="matrix", kind="property")
def lin_pl_matrix(ctx: Context) -> CheckResult:
    """LIN-PL (R4), matrix without readout: ||grad R||^2 >= 4 lam R / lambda_max(C)."""
    rng = ctx.rng("LIN-PL/matrix")
    cases = list(matrix_cases(rng, n_instances(ctx, 60, 600), readout=False))
    slacks = [
        (rel_slack(t["grad_sq"], t["pl_rhs"]), label)
        for label, model, th in cases
        for t in [pl_terms(model, th)]
    ]
    worst, where = min(slacks)
    return judged(
        worst >= -TOL_PL_INEQ,
        measured=worst,
        predicted=0.0,
        worst_margin=worst,
        tolerance=TOL_PL_INEQ,
        instances=len(cases),
        reason=f"worst relative slack {worst:.3g} at {where}",
        details={
            "margin": "relative slack of ||grad R||^2 >= 4 lam R / lambda_max(C)",
            "loss_factor": LOSS_FACTOR,
            "tightness": {
                "ratio": 1.0 / (1.0 + worst),
                "where": where,
                "measure": "(4 lam R / lambda_max(C)) / ||grad R||^2 at the tightest "
                "random point",
            },
        },
    )
