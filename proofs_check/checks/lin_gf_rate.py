"""LIN-GF-RATE (R4): R(t) <= R0 exp(-rate t) along gradient flow, and LIN-GF-LIMIT
(R4): the scalar flow converges to the predicted limit theta_inf.

Shared reference flows, tolerances and margins: :mod:`._lin_gf_flows`.
"""

from __future__ import annotations

import math

import numpy as np

from dynamics import rates
from dynamics.measure import tol_margin
from dynamics.models.base import LOSS_FACTOR

from .. import figures
from ..registry import CheckResult, Context, check, judged
from ._lin_gf_flows import (
    LIMIT_RISK,
    OVERLAY_ETA_FRACTION,
    RATE_WINDOW,
    TOL_GF_RATE,
    TOL_LIMIT,
    Flow,
    _failed_flows,
    _tidy,
    flows,
    gd_overlay,
)

# --------------------------------------------------------------------- LIN-GF-RATE


def gf_rate_margins(flow: Flow, *, loss_factor: float = LOSS_FACTOR) -> dict:
    """Pointwise slack 1 - R(t)/bound(t) where R(t) > RATE_WINDOW R0, and the fitted
    exponent over that window divided by the bound exponent (R4)."""
    m, th0 = flow.model, flow.theta0
    kappa = rates.gf_rate(m, th0, loss_factor)
    R0 = flow.R0
    ex = flow.excess()
    ok = np.isfinite(ex) & (ex > RATE_WINDOW * R0)
    t = flow.traj.times[ok]
    env = R0 * np.exp(-kappa * t)
    slack = float(np.min(1.0 - ex[ok] / env))
    fit = math.nan
    if np.count_nonzero(ok) >= 3 and t[-1] > t[0]:
        fit = float(-np.polyfit(t, np.log(ex[ok]), 1)[0]) / kappa
    return {
        "instance": flow.label,
        "slack": slack,
        "fitted_over_bound": fit,
        "kappa_bound": kappa,
        "points": int(np.count_nonzero(ok)),
    }


def _rate(ctx: Context, family: str, loss_factor: float = LOSS_FACTOR) -> CheckResult:
    fl = flows(ctx.seed, ctx.profile, family)
    per = [gf_rate_margins(f, loss_factor=loss_factor) for f in fl]
    margin = min(p["slack"] for p in per)
    fits = np.array([p["fitted_over_bound"] for p in per])
    bad = _failed_flows(fl)
    figures = []
    path = ctx.figure_path(f"lin_gf_rate_{family}")
    if path is not None:
        figures.append(_draw_rate(fl, family, loss_factor, path))
    return judged(
        margin >= -TOL_GF_RATE and not bad,
        measured=float(np.nanmin(fits)),
        predicted=1.0,
        worst_margin=margin,
        tolerance=TOL_GF_RATE,
        instances=len(fl),
        reason="; ".join(bad)
        or (
            f"R(t) <= bound with worst slack {margin:.3g}; fitted / bound exponent: "
            f"min {np.nanmin(fits):.3g}, median {np.nanmedian(fits):.3g} "
            "(measured = min fitted/bound exponent)"
        ),
        details={
            "loss_factor": loss_factor,
            "window": RATE_WINDOW,
            "fitted_over_bound": {
                "min": float(np.nanmin(fits)),
                "median": float(np.nanmedian(fits)),
                "max": float(np.nanmax(fits)),
            },
            "per_instance": per,
        },
        figures=figures,
    )


@check("LIN-GF-RATE", "scalar", "numeric")
def lin_gf_rate_scalar(ctx: Context) -> CheckResult:
    """LIN-GF-RATE (R4): R(t) <= R0 exp(-4 lambda t / Q0) along gradient flow."""
    return _rate(ctx, "scalar")


@check("LIN-GF-RATE", "matrix", "numeric")
def lin_gf_rate_matrix(ctx: Context) -> CheckResult:
    """LIN-GF-RATE (R4): R(t) <= R0 exp(-4 lambda t / lambda_max(C0)) (no readout)."""
    return _rate(ctx, "matrix")


@figures.style()
def _draw_rate(fl, family, loss_factor, path) -> str:
    fig, axes = figures.figure(size=(5.6, 4.0))
    ax = axes[0, 0]
    xmax, lowest = 0.0, 1.0
    for i, f in enumerate(fl[:4]):
        kappa = rates.gf_rate(f.model, f.theta0, loss_factor)
        ex = f.excess()
        keep = np.isfinite(ex) & (ex > 0)
        ax.plot(
            kappa * f.traj.times[keep], ex[keep] / f.R0, color=f"C{i}", label=f.label
        )
        lowest = min(lowest, float(np.min(ex[keep] / f.R0)))
        gd, eta = gd_overlay(f.model, f.theta0, f.t_end)
        gex = np.maximum(gd.risks - float(f.model.min_risk), 0.0) / f.R0
        every = max(1, len(gex) // 30)
        ok = np.isfinite(gex) & (gex > 0)
        idx = np.nonzero(ok)[0][::every]
        ax.plot(
            kappa * gd.times[idx],
            gex[idx],
            "o",
            color=f"C{i}",
            markersize=3,
            markerfacecolor="none",
        )
        xmax = max(xmax, kappa * f.t_end)
    x = np.linspace(0.0, xmax, 200)
    figures.theory(ax, x, np.exp(-x), label=r"R4 envelope $R_0 e^{-\kappa t}$")
    ax.plot(
        [],
        [],
        "o",
        color="grey",
        markerfacecolor="none",
        label=rf"GD at $t = k\eta$ ($\eta = {OVERLAY_ETA_FRACTION}/\|H_0\|$)",
    )
    ax.set_yscale("log")
    ax.set_ylim(max(1e-20, 0.1 * lowest), 3.0)
    ax.set_xlabel(
        r"$\kappa t$,  $\kappa = 4\lambda / "
        + ("Q_0$" if family == "scalar" else r"\lambda_{\max}(C_0)$")
    )
    ax.set_ylabel(r"$(R(t) - R_{\min}) / R_0$")
    ax.set_title(f"LIN-GF-RATE ({family}): risk along gradient flow", fontsize=9)
    ax.legend(fontsize=6)
    for ax in fig.axes:
        _tidy(ax)
    return figures.save(fig, path)


# -------------------------------------------------------------------- LIN-GF-LIMIT


@check("LIN-GF-LIMIT", "scalar", "numeric")
def lin_gf_limit_scalar(ctx: Context) -> CheckResult:
    """LIN-GF-LIMIT (R4): theta(t) -> (beta* (1-v_inf), v_inf), 1 - v_inf =
    sign(1-v0) r0 / sqrt(1 + ||beta*||^2)."""
    fl = flows(ctx.seed, ctx.profile, "scalar")
    per, skipped = [], []
    for f in fl:
        R_T = float(f.traj.risks[-1])
        if not (np.isfinite(R_T) and R_T <= LIMIT_RISK):
            skipped.append(f"{f.label}: R(T) = {R_T:.3g}")
            continue
        err = float(np.linalg.norm(f.traj.final - rates.gf_limit(f.model, f.theta0)))
        per.append({"instance": f.label, "R_T": R_T, "error": err, "T": f.t_end})
    if not per:
        return judged(
            False,
            instances=0,
            tolerance=TOL_LIMIT,
            reason=f"no flow reached R(T) <= {LIMIT_RISK:g}: {skipped}",
        )
    worst = max(p["error"] for p in per)
    return judged(
        worst <= TOL_LIMIT,
        measured=worst,
        predicted=0.0,
        worst_margin=tol_margin(worst, TOL_LIMIT),
        tolerance=TOL_LIMIT,
        instances=len(per),
        reason=(
            f"max ||theta(T) - theta_inf|| = {worst:.3g} over {len(per)} flows with "
            f"R(T) <= {LIMIT_RISK:g}" + (f"; not reached: {skipped}" if skipped else "")
        ),
        details={"per_instance": per, "not_reached": skipped},
    )
