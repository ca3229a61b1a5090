"""LIN-SPHERE: gradient flow of the linear DEQ stays on the invariant sphere (scalar)
or quadric (matrix) through its start.

Shared reference flows, tolerances and margins: :mod:`._lin_gf_flows`.
"""

from __future__ import annotations

import math

import numpy as np

from dynamics import gradient_descent, rates
from dynamics.flows.gradient_flow import flow_ivp
from dynamics.instances.linear import (
    leg_model,
    leg_perturbation,
)
from dynamics.measure import rel_slack, tol_margin
from dynamics.models.linear_deq import LinearDEQ

from .. import figures
from ..registry import CheckResult, Context, check, judged
from ._lin_gf_flows import (
    TOL_CONS,
    _failed_flows,
    _tidy,
    flows,
    hessian_norm,
)

# ---------------------------------------------------------------------- LIN-SPHERE


@check("LIN-SPHERE", "scalar", "numeric")
def lin_sphere_scalar(ctx: Context) -> CheckResult:
    """LIN-SPHERE (R2): ||theta(t) - (0,1)|| = r0, so |1-v(t)| <= r0, ||u(t)|| <= r0."""
    fl = flows(ctx.seed, ctx.profile, "scalar")
    worst_dev = 0.0
    worst_in = math.inf  # slack of |1 - v| <= r0 and ||u|| <= r0
    worst_out = math.inf  # slack of ||theta - (0,1)|| >= r0
    per = []
    for f in fl:
        th = f.traj.thetas[np.all(np.isfinite(f.traj.thetas), axis=1)]
        r0 = math.sqrt(LinearDEQ.Q(f.theta0))
        dist = np.hypot(np.linalg.norm(th[:, :-1], axis=1), 1.0 - th[:, -1])
        dev = float(np.max(np.abs(dist / r0 - 1.0)))
        gap_slack = min(
            rel_slack(r0, float(np.max(np.abs(1.0 - th[:, -1])))),
            rel_slack(r0, float(np.max(np.linalg.norm(th[:, :-1], axis=1)))),
        )
        out_slack = rel_slack(float(np.min(dist)), r0)
        worst_dev, worst_in = max(worst_dev, dev), min(worst_in, gap_slack)
        worst_out = min(worst_out, out_slack)
        per.append({"instance": f.label, "r0": r0, "max_rel_dev": dev})
    figures = []
    path = ctx.figure_path("lin_gf_uv_plane")
    if path is not None:
        figures.append(_draw_uv(fl, path))
    bad = _failed_flows(fl)
    ok = (
        worst_dev <= TOL_CONS
        and worst_in >= -TOL_CONS
        and worst_out >= -TOL_CONS
        and not bad
    )
    return judged(
        ok,
        measured=worst_dev,
        predicted=0.0,
        worst_margin=min(tol_margin(worst_dev, TOL_CONS), worst_in, worst_out),
        tolerance=TOL_CONS,
        instances=len(fl),
        reason="; ".join(bad)
        or (f"max_t | ||theta(t) - (0,1)|| / r0 - 1 | = {worst_dev:.2e}"),
        details={
            "max_rel_dev": worst_dev,
            "min_slack_gap_and_u_le_r0": worst_in,
            "min_slack_dist_ge_r0": worst_out,
            "per_instance": per,
        },
        figures=figures,
    )


@check("LIN-SPHERE", "matrix", "numeric")
def lin_sphere_matrix(ctx: Context) -> CheckResult:
    """LIN-SPHERE (R2): ||I - W(t)||_F^2 + ||U(t)||_F^2 = tr C0 (no readout)."""
    fl = flows(ctx.seed, ctx.profile, "matrix")
    worst = 0.0
    per = []
    for f in fl:
        th = f.traj.thetas[np.all(np.isfinite(f.traj.thetas), axis=1)]
        tr0 = float(np.trace(f.model.C(f.theta0)))
        vals = np.array([float(np.trace(f.model.C(t))) for t in th])
        dev = float(np.max(np.abs(vals / tr0 - 1.0)))
        worst = max(worst, dev)
        per.append({"instance": f.label, "trC0": tr0, "max_rel_dev": dev})
    bad = _failed_flows(fl)
    return judged(
        worst <= TOL_CONS and not bad,
        measured=worst,
        predicted=0.0,
        worst_margin=tol_margin(worst, TOL_CONS),
        tolerance=TOL_CONS,
        instances=len(fl),
        reason="; ".join(bad)
        or f"max_t |(||I-W||_F^2 + ||U||_F^2) / tr C0 - 1| = {worst:.2e}",
        details={"per_instance": per},
    )


@figures.style()
def _draw_uv(fl, path) -> str:
    """(u, v) plane for d = 1: GF and GD on a random instance (starts on both
    branches, 1.2 rad along the circle from the zero-risk line) and on the P-LEG data
    (its near-singular start and a regular one)."""
    model = next(f.model for f in fl if f.model.d == 1)
    bs = float(model.beta_star[0])
    # The zero-risk point of a circle about (0, 1) on the branch v < 1 is at angle
    # a_z (direction (beta*, -1)); that of the branch v > 1 at a_z + pi. Start 1.2 rad
    # away from it along the circle, staying on the same branch.
    a_z = math.atan2(-1.0, bs) % (2.0 * math.pi)
    cases = []
    for zero, lo in ((a_z, math.pi), ((a_z + math.pi) % (2 * math.pi), 0.0)):
        ang = zero + 1.2 if lo + 0.2 < zero + 1.2 < lo + math.pi - 0.2 else zero - 1.2
        cases.append(
            (
                model,
                np.array([0.8 * math.cos(ang), 1.0 + 0.8 * math.sin(ang)]),
                f"random d = 1 instance, beta* = {bs:.2g}",
            )
        )
    # The P-LEG data (x ~ U[0, 1], beta* = 2) from its near-singular start p + (0, 1).
    leg = leg_model()
    cases.append(
        (
            leg,
            leg_perturbation() + np.array([0.0, 1.0]),
            "P-LEG data (beta* = 2), start p + (0, 1)",
        )
    )
    cases.append((leg, np.array([-0.3, 0.6]), "P-LEG data (beta* = 2)"))
    fig, axes = figures.figure(ncols=4, size=(3.6, 3.9))
    for ax, (model, theta0, what) in zip(axes[0], cases, strict=True):
        bs = float(model.beta_star[0])
        rr = math.sqrt(LinearDEQ.Q(theta0))
        t_end = 30.0 / rates.gf_rate(model, theta0)
        gf = flow_ivp(model, theta0, t_end, stop_risk=1e-20)
        span = 1.5 * rr
        v_line = np.linspace(1.0 - span, 1.0 + span, 2)
        figures.theory(
            ax, bs * (1.0 - v_line), v_line, label="zero-risk line u = beta*(1-v)"
        )
        ang = np.linspace(0.0, 2.0 * np.pi, 400)
        ax.plot(
            rr * np.cos(ang),
            1.0 + rr * np.sin(ang),
            color="black",
            linestyle=":",
            linewidth=1.0,
            label="conserved circle Q = Q0",
        )
        ax.plot(
            gf.thetas[:, 0],
            gf.thetas[:, 1],
            color="C0",
            linewidth=2.0,
            label="gradient flow (DOP853)",
        )
        # GD at the edge of stability (eta = 1 / max ||H|| over the GF path), so that
        # its O(eta^2) outward drift per step (R5) is visible.
        eta = 1.0 / max(hessian_norm(model, th) for th in gf.thetas[::10])
        steps = min(3000, math.ceil(gf.stats["t_reached"] / eta))
        gd = gradient_descent(model, theta0, eta, steps)
        moving = np.linalg.norm(gd.thetas - gd.final, axis=1) > 1e-3 * rr
        every = max(1, int(np.count_nonzero(moving)) // 25)
        ax.plot(
            gd.thetas[::every, 0],
            gd.thetas[::every, 1],
            "o",
            color="C1",
            markersize=3.5,
            markerfacecolor="none",
            label="GD, eta = 1 / max ||H||",
        )
        ax.plot([0.0], [1.0], "kx", markersize=8, label="singular point (0, 1)")
        ax.plot([theta0[0]], [theta0[1]], "s", color="C2", markersize=5, label="start")
        ax.plot(
            [gf.final[0]],
            [gf.final[1]],
            "*",
            color="C3",
            markersize=9,
            label="GF limit (R4)",
        )
        q_gd = LinearDEQ.Q(gd.final) / LinearDEQ.Q(theta0) - 1.0
        ax.set_title(
            f"{what}\nr0 = {rr:.2g}, v0 {'>' if theta0[1] > 1 else '<'} 1; "
            f"GD eta = {eta:.2g}, Q_K/Q0 - 1 = {q_gd:.1e}",
            fontsize=7,
        )
        ax.set_aspect("equal")
        ax.set_xlim(-span, span)
        ax.set_ylim(1.0 - span, 1.0 + span)
        ax.set_xlabel("$u$")
        ax.set_ylabel("$v$")
    axes[0, 0].legend(fontsize=6, loc="lower left")
    fig.suptitle(
        "LIN-SPHERE (d = 1): gradient flow stays on its circle about the "
        "singular point (0, 1); GD (R5) only moves outward",
        fontsize=9,
    )
    for ax in fig.axes:
        _tidy(ax)
    return figures.save(fig, path)
