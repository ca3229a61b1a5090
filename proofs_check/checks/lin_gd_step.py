"""LIN-GD-STEP (R6): the step-size sweep of P-SWEEP and its control runs.

Run analysis, tolerances and case streams: :mod:`._lin_gd_common`.
"""

from __future__ import annotations

import numpy as np

from dynamics import rates
from dynamics.instances import leg_model, sweep_theta0

from .. import figures
from ..figures import figure, save, style
from ..registry import CheckResult, Context, check, judged
from ._lin_gd_common import (
    CONTROL_STEPS,
    FAILURE_RISK,
    SWEEP_ETA,
    SWEEP_SEEDS,
    SWEEP_STEPS,
    TOL_DELTA,
    analyse_gd,
)

# ------------------------------------------------------------------- LIN-GD-STEP


def sweep_table(
    eta_of, steps_of, failure_risk: float = FAILURE_RISK, seeds=SWEEP_SEEDS
) -> list[dict]:
    """Run P-SWEEP (spec §6.2) and return one row per seed.

    Args:
        eta_of: seed, model, theta0 -> step size.
        steps_of: seed, model, theta0, eta -> number of steps.
        failure_risk: a run "failed" when its final risk exceeds this, or when it
            stopped early (singular equilibrium, non-finite values).
        seeds: the seeds (default 0-19).
    """
    model = leg_model()
    rows = []
    for s in seeds:
        th0 = sweep_theta0(s)
        eta = eta_of(s, model, th0)
        run = analyse_gd(model, th0, eta, steps_of(s, model, th0, eta))
        fin = run.risks[np.isfinite(run.risks)][-1]
        gaps = 1.0 - run.thetas[:, -1]
        rows.append(
            {
                "seed": s,
                "theta0": th0,
                "eta": eta,
                "steps": len(run.grads),
                "result": run.traj.result.value,
                "final_risk": float(fin),
                "theta_final": run.thetas[-1],
                "max_step_length": run.traj.stats["max_step_length"],
                "crossed_v_eq_1": run.crossed,
                "failed": bool(fin > failure_risk or not run.ok),
                "min_gap_ratio": float(np.min(gaps * np.sign(gaps[0])) / abs(gaps[0])),
                "min_gap_over_delta": float(
                    np.min(gaps * np.sign(gaps[0])) / rates.delta(model, th0)
                ),
                "descent_prefix": run.prefix,
                "one_over_ell": rates.gd_step_bound(model, th0),
            }
        )
    return rows


@check("LIN-GD-STEP", part="sweep+control", kind="benchmark")
def lin_gd_step(ctx: Context, failure_risk: float = FAILURE_RISK) -> CheckResult:
    """LIN-GD-STEP (R6, P2): at eta = 0.01 near (0,1) GD crosses v = 1 or fails on some
    P-SWEEP seed; with eta = 1/ell (R6) no seed crosses."""
    proto = sweep_table(
        lambda s, m, t: SWEEP_ETA, lambda s, m, t, e: SWEEP_STEPS, failure_risk
    )
    control_steps = 10 * CONTROL_STEPS if ctx.full else CONTROL_STEPS
    control = sweep_table(
        lambda s, m, t: rates.gd_step_bound(m, t),
        lambda s, m, t, e: control_steps,
        failure_risk,
    )
    bad = [r["seed"] for r in proto if r["crossed_v_eq_1"] or r["failed"]]
    crossed_ctl = [r["seed"] for r in control if r["crossed_v_eq_1"]]
    # R6 (a) mechanism: eta <= 1/ell keeps |1 - v_k| >= delta = r0/sqrt(1+bbar^2).
    ctl_delta = min(r["min_gap_over_delta"] for r in control)
    ok = bool(bad) and not crossed_ctl and ctl_delta >= 1.0 - TOL_DELTA
    figs = []
    if ctx.figures_dir is not None:
        figs.append(draw_sweep_figure(ctx.figure_path("lin-gd-step-sweep"), proto))
    keep = (
        "seed",
        "eta",
        "final_risk",
        "max_step_length",
        "crossed_v_eq_1",
        "failed",
        "result",
        "min_gap_ratio",
        "descent_prefix",
        "min_gap_over_delta",
    )
    return judged(
        ok,
        measured=float(len(bad)),
        predicted=1.0,
        worst_margin=min(ctl_delta - 1.0, 1.0 if bad else -1.0),
        tolerance=TOL_DELTA,
        instances=len(proto) + len(control),
        reason=(
            f"eta={SWEEP_ETA}: {len(bad)}/{len(proto)} seeds crossed v=1 or failed "
            f"(final risk > {failure_risk:g}) — seeds {bad}; control eta=1/ell "
            f"({control_steps} steps): {len(crossed_ctl)} crossings, "
            f"min_k |1-v_k|/delta = {ctl_delta:.4g} (R6 predicts >= 1)"
        ),
        details={
            "margin": "min over control runs and steps of sign(1-v0)(1-v_k)/delta - 1 "
            "(>= 0: the R6 floor |1-v_k| >= delta held, so no crossing), or -1 if no "
            "protocol seed crossed or failed. In d = 1 a start with beta_0 beyond "
            "beta* has |1-v_0| = delta exactly, so the margin is 0 up to rounding",
            "failure_risk": failure_risk,
            "protocol": [{k: r[k] for k in keep} for r in proto],
            "control": [{k: r[k] for k in (*keep, "one_over_ell")} for r in control],
        },
        figures=figs,
    )


@style()
def draw_sweep_figure(path, rows, highlight: int = 6):
    """P-SWEEP: (theta_1, theta_2) iterates of every seed (crossing/failing seeds in
    red, the illustration seed in green), a zoom on (0, 1), and the distance to (0, 1)
    per seed."""
    model = leg_model()
    fig, axes = figure(1, 3, size=(4.3, 4.0))
    ax, zx, bx = axes[0]
    for r in rows:
        run = analyse_gd(model, r["theta0"], r["eta"], r["steps"])
        th = run.thetas[np.all(np.isfinite(run.thetas), axis=1)]
        bad = r["crossed_v_eq_1"] or r["failed"]
        hl = r["seed"] == highlight
        col = "C2" if hl else ("C3" if bad else "C0")
        lw, z = (2.2, 5) if hl else (0.7, 2)
        lab = f"seed {highlight}" if hl else None
        for a in (ax, zx):
            a.plot(th[:, 0], th[:, 1], color=col, lw=lw, alpha=0.9, zorder=z, label=lab)
            a.plot(*th[0], "o", color=col, ms=3, zorder=z)
        dist = np.sqrt(run.Q[: len(th)])
        bx.semilogy(np.arange(len(th)), dist, color=col, lw=lw, zorder=z, label=lab)
    t2 = np.linspace(-1.5, 3.5, 2)
    for a in (ax, zx):
        a.plot(
            2 * (1 - t2),
            t2,
            color="C1",
            lw=1.2,
            label=r"zero risk $\theta_1=2(1-\theta_2)$",
        )
        figures.theory_hline(a, 1.0, label="singular line v = 1", linewidth=0.9)
        a.plot(0, 1, "X", color="k", ms=8, label="(0, 1)", zorder=6)
        a.set_xlabel(r"$\theta_1$")
        a.set_ylabel(r"$\theta_2$")
    ax.plot([], [], color="C3", label="crossed v=1 or failed")
    ax.plot([], [], color="C0", label="converged")
    ax.set_xlim(-3, 3)
    ax.set_ylim(-1.5, 3.5)
    ax.set_title(f"P-SWEEP seeds 0-19, eta = {rows[0]['eta']:g}", fontsize=9)
    ax.legend(fontsize=7, loc="upper right")
    zx.set_xlim(-0.45, 0.45)
    zx.set_ylim(0.55, 1.45)
    zx.set_aspect("equal")
    zx.set_title("zoom near the singular point (0, 1)", fontsize=9)
    bx.set_xscale("symlog", linthresh=10)
    bx.set_xlabel("update k (linear to 10, then log)")
    bx.set_ylabel(r"$\|\theta_k-(0,1)\|$ (non-decreasing, R5)")
    bx.legend(fontsize=7)
    return save(fig, path)
