"""LIN-COND: the a-priori conditioning bound from C0 along gradient flow and along
gradient descent (parts scalar, matrix, scalar-gd, matrix-gd).

Shared reference flows, tolerances and margins: :mod:`._lin_gf_flows`.
"""

from __future__ import annotations

import math

import numpy as np

from dynamics import gradient_descent, rates
from dynamics.models.linear_deq import LinearDEQ

from .. import figures
from ..cases.lin import n_instances
from ..registry import CheckResult, Context, check, judged
from ._lin_gf_flows import (
    GD_ETA_FRACTION,
    TOL_COND,
    _failed_flows,
    _logt,
    _tidy,
    flows,
    hessian_norm,
)

# ------------------------------------------------------------------------ LIN-COND


def cond_scalar_margins(model, theta0, thetas, *, c0_scale: float = 1.0) -> dict:
    """LIN-COND (a) along ``thetas``: slacks of |1-v| >= r0/sqrt(1+||beta||^2) (an
    identity, so ~0) and of |1-v| >= delta, and whether sign(1 - v) stayed constant.

    ``c0_scale`` multiplies Q0 (a falsification hook: any value != 1 must fail).
    """
    r0 = math.sqrt(c0_scale * LinearDEQ.Q(theta0))
    dlt = rates.cond_lower_bound(model, theta0) * math.sqrt(c0_scale)
    gaps = 1.0 - thetas[:, -1]
    beta2 = np.sum((thetas[:, :-1] / gaps[:, None]) ** 2, axis=1)
    identity = float(np.min(np.abs(gaps) / (r0 / np.sqrt(1.0 + beta2)) - 1.0))
    apriori = float(np.min(np.abs(gaps) / dlt - 1.0))
    return {
        "identity_slack": identity,
        "apriori_slack": apriori,
        "sign_constant": bool(np.all(np.sign(gaps) == np.sign(gaps[0]))),
        "min_gap": float(np.min(np.abs(gaps))),
        "bound": dlt,
    }


def cond_matrix_margins(model, theta0, thetas, *, c0_scale: float = 1.0) -> dict:
    """LIN-COND (b) along ``thetas``: slacks of sigma_min(A)^2 >= lambda_min(C0) /
    (1 + ||M||_2^2) and >= lambda_min(C0) / (1 + M_bar^2), and of
    sigma_max(A)^2 <= lambda_max(C0). Uses C0 and M_bar, never C(t)."""
    eig = np.linalg.eigvalsh(model.C(theta0))
    lmin, lmax = c0_scale * float(eig[0]), c0_scale * float(eig[-1])
    floor = rates.cond_lower_bound(model, theta0) * c0_scale
    mid = apr = upper = math.inf
    smin2 = []
    for th in thetas:
        A = np.eye(model.m) - model.unpack(th).W
        s = np.linalg.svd(A, compute_uv=False)
        M = np.linalg.solve(A, model.unpack(th).U)
        m2 = float(np.linalg.norm(M, 2)) ** 2
        smin2.append(s[-1] ** 2)
        mid = min(mid, s[-1] ** 2 / (lmin / (1.0 + m2)) - 1.0)
        apr = min(apr, s[-1] ** 2 / floor - 1.0)
        upper = min(upper, lmax / s[0] ** 2 - 1.0)
    return {
        "middle_slack": mid,
        "apriori_slack": apr,
        "upper_slack": upper,
        "min_sigma_min_sq": float(np.min(smin2)),
        "bound": floor,
    }


def _cond_gf(ctx: Context, family: str, c0_scale: float = 1.0) -> CheckResult:
    fl = flows(ctx.seed, ctx.profile, family)
    per = []
    for f in fl:
        th = f.traj.thetas[np.all(np.isfinite(f.traj.thetas), axis=1)]
        fn = cond_scalar_margins if f.scalar else cond_matrix_margins
        per.append(
            {"instance": f.label, **fn(f.model, f.theta0, th, c0_scale=c0_scale)}
        )
    keys = (
        ("identity_slack", "apriori_slack")
        if family == "scalar"
        else ("middle_slack", "apriori_slack", "upper_slack")
    )
    worst = {k: min(p[k] for p in per) for k in keys}
    margin = min(worst.values())
    sign_ok = all(p.get("sign_constant", True) for p in per)
    bad = _failed_flows(fl)
    figures = []
    path = ctx.figure_path(f"lin_cond_{family}")
    if path is not None:
        figures.append(_draw_cond(fl, per, family, path))
    ok = margin >= -TOL_COND and sign_ok and not bad
    reasons = bad + ([] if sign_ok else ["sign(1 - v) changed along gradient flow"])
    if margin < -TOL_COND:
        reasons.append(f"bound violated: worst slack {worst}")
    return judged(
        ok,
        measured=float(
            min(
                p["min_gap" if f.scalar else "min_sigma_min_sq"]
                for p, f in zip(per, fl, strict=True)
            )
        ),
        predicted=float(min(p["bound"] for p in per)),
        worst_margin=margin,
        tolerance=TOL_COND,
        instances=len(fl),
        reason="; ".join(reasons)
        or (
            f"worst slacks {', '.join(f'{k} {v:.3g}' for k, v in worst.items())} "
            "(C0 and the a-priori bound; measured = min over t and instances of "
            + ("|1 - v(t)|" if family == "scalar" else "sigma_min(I - W(t))^2")
            + ", predicted = smallest bound)"
        ),
        details={
            "worst": worst,
            "c0_scale": c0_scale,
            "per_instance": per,
            "tightness": {
                "ratio": 1.0 / (1.0 + worst["apriori_slack"]),
                "where": min(per, key=lambda p: p["apriori_slack"])["instance"],
                "measure": "a-priori floor / measured minimum over t (relative slack "
                "s gives 1/(1+s)); the floor is attained when ||beta(t)|| reaches "
                "beta_bar (M_bar), i.e. when the flow passes R = R0 with beta "
                "farthest from beta*",
            },
        },
        figures=figures,
    )


@check("LIN-COND", "scalar", "numeric")
def lin_cond_scalar(ctx: Context) -> CheckResult:
    """LIN-COND (a) (R3): |1-v(t)| = r0/sqrt(1+||beta(t)||^2) >= r0/sqrt(1+bbar^2)."""
    return _cond_gf(ctx, "scalar")


@check("LIN-COND", "matrix", "numeric")
def lin_cond_matrix(ctx: Context) -> CheckResult:
    """LIN-COND (b) (R3): sigma_min(I-W(t))^2 >= lambda_min(C0)/(1+M_bar^2)."""
    return _cond_gf(ctx, "matrix")


def _cond_gd(ctx: Context, family: str) -> CheckResult:
    """The lower bounds along GD runs whose risk never increased (R3 with R5)."""
    fl = flows(ctx.seed, ctx.profile, family)
    steps = n_instances(ctx, 150, 1000)
    per = []
    monotone_runs = 0
    for f in fl:
        eta = GD_ETA_FRACTION / hessian_norm(f.model, f.theta0)
        gd = gradient_descent(f.model, f.theta0, eta, steps)
        risks = gd.risks
        inc = np.nonzero(~(risks[1:] <= risks[:-1]))[0]
        k = int(inc[0]) + 1 if inc.size else len(risks)  # iterates 0..k-1 qualify
        monotone_runs += not inc.size
        th = gd.thetas[:k]
        if f.scalar:
            res = cond_scalar_margins(f.model, f.theta0, th)
            res.pop("identity_slack")  # along GD Q grows: the identity is not claimed
        else:
            res = cond_matrix_margins(f.model, f.theta0, th)
            res.pop("middle_slack")
            res.pop("upper_slack")  # C_k >= C0 grows under GD: no upper bound claimed
        per.append(
            {
                "instance": f.label,
                "eta": eta,
                "steps_checked": k - 1,
                "risk_never_increased": not inc.size,
                **res,
            }
        )
    margin = min(p["apriori_slack"] for p in per)
    return judged(
        margin >= -TOL_COND,
        measured=margin,
        predicted=0.0,
        worst_margin=margin,
        tolerance=TOL_COND,
        instances=len(per),
        reason=(
            f"a-priori lower bound along GD (eta = {GD_ETA_FRACTION}/||H0||, "
            f"{steps} steps; {monotone_runs}/{len(per)} runs with risk never "
            f"increasing, the others checked up to the first increase): worst "
            f"slack {margin:.3g}"
        ),
        details={"per_instance": per, "monotone_runs": monotone_runs},
    )


@check("LIN-COND", "scalar-gd", "numeric")
def lin_cond_scalar_gd(ctx: Context) -> CheckResult:
    """LIN-COND (R3, R5): |1-v_k| >= delta along GD while the risk does not increase."""
    return _cond_gd(ctx, "scalar")


@check("LIN-COND", "matrix-gd", "numeric")
def lin_cond_matrix_gd(ctx: Context) -> CheckResult:
    """LIN-COND (R3, R5): sigma_min(I-W_k)^2 >= lambda_min(C0)/(1+M_bar^2) along GD."""
    return _cond_gd(ctx, "matrix")


@figures.style()
def _draw_cond(fl, per, family, path) -> str:
    picks = list(zip(fl, per, strict=True))[:4]
    fig, axes = figures.figure(ncols=len(picks), size=(3.6, 3.4))
    for i, (ax, (f, p)) in enumerate(zip(axes[0], picks, strict=True)):
        th = f.traj.thetas[np.all(np.isfinite(f.traj.thetas), axis=1)]
        t = f.traj.times[: len(th)]
        if family == "scalar":
            y, b = np.abs(1.0 - th[:, -1]), p["bound"]
        else:
            lmin = float(np.linalg.eigvalsh(f.model.C(f.theta0))[0])
            y, mid = [], []
            for x in th:
                A = np.eye(f.model.m) - f.model.unpack(x).W
                y.append(np.linalg.svd(A, compute_uv=False)[-1])
                M = np.linalg.solve(A, f.model.unpack(x).U)
                mid.append(math.sqrt(lmin / (1.0 + np.linalg.norm(M, 2) ** 2)))
            b = math.sqrt(p["bound"])
            _logt(
                ax,
                t,
                mid,
                color="black",
                linestyle=":",
                linewidth=1.2,
                label=r"$\sqrt{\lambda_{\min}(C_0)/(1+\|M(t)\|^2)}$",
            )
        _logt(
            ax,
            t,
            y,
            color=f"C{i}",
            linewidth=2.0,
            label=r"$|1 - v(t)|$"
            if family == "scalar"
            else r"$\sigma_{\min}(I - W(t))$",
        )
        figures.theory_hline(ax, b, label="a-priori bound (R3)")
        ax.set_xscale("log")
        ax.set_ylim(bottom=0.0)
        ax.set_xlabel("flow time $t$")
        if i == 0:
            ax.set_ylabel(
                r"$|1 - v(t)|$" if family == "scalar" else r"$\sigma_{\min}(I - W(t))$"
            )
        ax.set_title(f.label.replace("scalar ", "").replace("matrix ", ""), fontsize=7)
        # Above the bound (which runs near the bottom) and clear of the curves.
        ax.legend(fontsize=6, loc="upper right", framealpha=0.9)
    fig.suptitle(
        "LIN-COND: "
        + (
            r"$|1 - v(t)| \geq r_0 / \sqrt{1 + \bar\beta^2}$"
            if family == "scalar"
            else r"$\sigma_{\min}(I - W(t)) \geq "
            r"\sqrt{\lambda_{\min}(C_0) / (1 + \bar M^2)}$"
        )
        + " along gradient flow",
        fontsize=9,
    )
    for ax in fig.axes:
        _tidy(ax)
    return figures.save(fig, path)
