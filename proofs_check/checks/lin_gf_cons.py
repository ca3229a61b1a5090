"""LIN-GF-CONS (R1): the conserved quantities Q, C (and C' with a trained readout)
are constant along gradient flow; DOP853, tightened DOP853 and implicit Gauss rules.

Shared reference flows, tolerances and margins: :mod:`._lin_gf_flows`.
"""

from __future__ import annotations

import math

from dynamics._result import Result
from dynamics.flows.gradient_flow import flow_ivp, integrate
from dynamics.integrators import RK4, GaussLegendre, ImplicitMidpoint
from dynamics.measure import tol_margin

from .. import figures
from ..registry import CheckResult, Context, check, judged
from ._lin_gf_flows import (
    IMPLICIT_FACTOR,
    STAGE_TOL,
    TIGHT_ATOL,
    TIGHT_RTOL,
    TOL_CONS,
    _failed_flows,
    _floor,
    _logt,
    _subset,
    _tidy,
    drift,
    drift_series,
    exact_jacobian,
    flows,
    implicit_run,
)

# --------------------------------------------------------------------- LIN-GF-CONS


def _cons(ctx: Context, family: str) -> CheckResult:
    fl = flows(ctx.seed, ctx.profile, family)
    bad = _failed_flows(fl)
    per = [
        {
            "instance": f.label,
            "dop853_drift": drift(f.model, f.traj),
            "t_end": f.t_end,
            "nfev": f.traj.stats["nfev"],
        }
        for f in fl
    ]
    worst_dop = max(p["dop853_drift"] for p in per)
    # Tightened tolerance: the drift must fall (on a subset; it doubles the cost).
    sub = _subset(ctx, fl)
    base = tight = 0.0
    ratios = []
    tight_runs = {}
    for f in sub:
        p = per[fl.index(f)]
        tr = flow_ivp(f.model, f.theta0, f.t_end, rtol=TIGHT_RTOL, atol=TIGHT_ATOL)
        tight_runs[f.label] = tr
        p["tight_drift"] = drift(f.model, tr)
        base += p["dop853_drift"]
        tight += p["tight_drift"]
        ratios.append(p["tight_drift"] / p["dop853_drift"])
        if tr.result is not Result.successful:
            bad.append(f"{f.label} (rtol {TIGHT_RTOL}): {tr.message}")
    falls = tight < base
    # Implicit Gauss rules: drift at the level of the stage-solve tolerance.
    implicit: dict[str, float] = {}
    steps_used = {}
    runs = {}
    for f in sub:
        jac = exact_jacobian(f.model)
        for name, integ in (
            ("implicit_midpoint", ImplicitMidpoint(tol=STAGE_TOL, jacobian=jac)),
            ("gauss_legendre_4", GaussLegendre(order=4, tol=STAGE_TOL, jacobian=jac)),
        ):
            tr, n = implicit_run(f, integ)
            runs.setdefault(f.label, {})[name] = tr
            steps_used[f"{name} / {f.label}"] = {"steps": n, "horizon": f.t_transient}
            if tr.result is not Result.successful:
                bad.append(f"{name} on {f.label}: {tr.message}")
                continue
            implicit[name] = max(implicit.get(name, 0.0), drift(f.model, tr))
    worst_impl = max(implicit.values()) if implicit else math.inf
    impl_tol = IMPLICIT_FACTOR * STAGE_TOL
    margin = min(tol_margin(worst_dop, TOL_CONS), tol_margin(worst_impl, impl_tol))
    figures = []
    path = ctx.figure_path(f"lin_gf_cons_{family}")
    if path is not None:
        figures.append(_draw_cons(fl, runs, tight_runs, family, path))
    reasons = []
    if worst_dop > TOL_CONS:
        reasons.append(f"DOP853 drift {worst_dop:.3e} > {TOL_CONS:.0e}")
    if worst_impl > impl_tol:
        reasons.append(f"implicit drift {worst_impl:.3e} > {impl_tol:.0e}")
    if not falls:
        reasons.append(
            f"drift did not fall when rtol was tightened to {TIGHT_RTOL:.0e} "
            f"(sum {base:.3e} -> {tight:.3e})"
        )
    reasons += bad
    return judged(
        not reasons,
        measured=worst_dop,
        predicted=0.0,
        worst_margin=margin,
        tolerance=TOL_CONS,
        instances=len(fl),
        reason="; ".join(reasons)
        or (
            f"DOP853 drift <= {worst_dop:.2e}; tightening rtol 1e-12 -> 1e-13 "
            "scales it "
            f"by {tight / base:.3g}; implicit midpoint / GL4 drift <= {worst_impl:.2e}"
        ),
        details={
            "normalisation": "max_t ||I(t) - I(0)||_F / max(1, ||I(0)||_F) over the "
            "invariants Q, or C, or C and C' (readout)",
            "dop853": {"rtol": 1e-12, "atol": 1e-14, "worst_drift": worst_dop},
            "tightened": {
                "rtol": TIGHT_RTOL,
                "atol": TIGHT_ATOL,
                "sum_base": base,
                "sum_tight": tight,
                "aggregate_ratio": tight / base,
                "per_instance_ratio": ratios,
            },
            "implicit": {
                "stage_tol": STAGE_TOL,
                "tolerance": impl_tol,
                "worst_drift": implicit,
                "steps_used": steps_used,
            },
            "rho_w0_gt_1": sum(f.rho_w0 > 1.0 for f in fl),
            "near_singular": sum(f.near_singular for f in fl),
            "per_instance": per,
        },
        figures=figures,
    )


@check("LIN-GF-CONS", "scalar", "numeric")
def lin_gf_cons_scalar(ctx: Context) -> CheckResult:
    """LIN-GF-CONS (R1): Q = ||u||^2 + (1-v)^2 is constant along gradient flow."""
    return _cons(ctx, "scalar")


@check("LIN-GF-CONS", "matrix", "numeric")
def lin_gf_cons_matrix(ctx: Context) -> CheckResult:
    """LIN-GF-CONS (R1): C = A A^T + U U^T is constant along gradient flow."""
    return _cons(ctx, "matrix")


@check("LIN-GF-CONS", "matrix-readout", "numeric")
def lin_gf_cons_readout(ctx: Context) -> CheckResult:
    """LIN-GF-CONS (R1): C and C' = A^T A + B^T B are constant (trained readout)."""
    return _cons(ctx, "readout")


@figures.style()
def _draw_cons(fl, runs, tight_runs, family, path) -> str:
    labels = list(runs)[: 2 if family == "scalar" else 1]
    fig, axes = figures.figure(ncols=len(labels), size=(5.2, 3.9))
    name = {
        "scalar": r"$|Q(t) - Q_0| / \max(1, Q_0)$",
        "matrix": r"$\|C(t) - C_0\|_F / \max(1, \|C_0\|_F)$",
        "readout": r"$\max(\|C - C_0\|, \|C' - C'_0\|)$ (rel.)",
    }[family]
    for ax, label in zip(axes[0], labels, strict=True):
        f = next(x for x in fl if x.label == label)
        _logt(
            ax,
            f.traj.times,
            _floor(drift_series(f.model, f.traj.thetas)),
            label="DOP853 rtol 1e-12",
            color="C0",
        )
        tr = tight_runs[label]
        _logt(
            ax,
            tr.times,
            _floor(drift_series(f.model, tr.thetas)),
            label="DOP853 rtol 1e-13",
            color="C1",
        )
        for (nm, tr), color in zip(runs[label].items(), ("C2", "C3"), strict=True):
            if tr.result is Result.successful:
                _logt(
                    ax,
                    tr.times,
                    _floor(drift_series(f.model, tr.thetas)),
                    color=color,
                    label=f"{nm.replace('_', ' ')} ({tr.stats['steps_taken']} steps)",
                )
        # RK4 on the same grid as the implicit midpoint run: not structure-preserving.
        rk = integrate(
            f.model,
            f.theta0,
            f.t_transient,
            integrator=RK4(),
            grid=runs[label]["implicit_midpoint"].times,
        )
        if rk.result is Result.successful:
            _logt(
                ax,
                rk.times,
                _floor(drift_series(f.model, rk.thetas)),
                color="C4",
                label=f"RK4 (same grid, {rk.stats['steps_taken']} steps)",
            )
        ax.axhline(TOL_CONS, color="grey", linestyle=":", label="DOP853 tolerance 1e-9")
        ax.axhline(
            IMPLICIT_FACTOR * STAGE_TOL,
            color="grey",
            linestyle="-.",
            label="10 x stage-solve tolerance",
        )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("flow time $t$")
        ax.set_ylabel(name)
        ax.set_title(f"{f.label}", fontsize=8)
    axes[0, 0].legend(fontsize=6)
    fig.suptitle(
        "LIN-GF-CONS: drift along gradient flow\n"
        r"(exact law: 0; zeros drawn at $10^{-17}$)",
        fontsize=9,
    )
    for ax in fig.axes:
        _tidy(ax)
    return figures.save(fig, path)
