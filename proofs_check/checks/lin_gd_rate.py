"""LIN-GD-RATE (R6): the linear rate of gradient descent on the linear DEQ, scalar
(part a-scalar) and under its conditional hypotheses (part b-conditional).

Run analysis, tolerances and case streams: :mod:`proofs_check.cases.lin_gd`.
"""

from __future__ import annotations

import math

import numpy as np

from dynamics import rates
from dynamics.instances.linear import leg_model, leg_perturbation
from dynamics.models.base import LOSS_FACTOR

from .. import figures
from ..cases.lin import n_instances, scalar_cases
from ..cases.lin_gd import (
    SWEEP_ETA,
    SWEEP_STEPS,
    TOL_GD_RATE,
    analyse_gd,
    gd_cases,
    rate_slack,
)
from ..figures.lin_gd import draw_risk
from ..registry import CheckResult, Context, check, judged

# ------------------------------------------------------------------- LIN-GD-RATE


@check("LIN-GD-RATE", part="a-scalar", kind="numeric")
def lin_gd_rate_a(ctx: Context) -> CheckResult:
    """LIN-GD-RATE (a), R6: eta <= 1/ell => R_k <= (1-2 eta lam/(Q0+2 eta R0))^k R0."""
    rng = ctx.rng("LIN-GD-RATE/a")
    steps = 600 if ctx.full else 150
    worst, where, runs, judged_steps, desc_fail = math.inf, "", 0, 0, []
    ratios = []
    for label, model, th in scalar_cases(rng, n_instances(ctx, 10, 80)):
        frac = float(rng.choice([1.0, 0.5]))
        eta = frac * rates.gd_step_bound(model, th, LOSS_FACTOR)
        q = rates.gd_rate_factor(model, th, eta, LOSS_FACTOR)
        run = analyse_gd(model, th, eta, steps)
        s, c = rate_slack(run, q)
        runs += 1
        judged_steps += c
        # R6 (a) proves the descent inequality at every step; judge it above the
        # float floor only (below 1e-14 R_0 rounding decides it), like the rate.
        if not run.descent[:c].all() or not run.ok:
            desc_fail.append(label)
        if c and s < worst:
            worst, where = s, label
        exc = run.risks[c] - model.min_risk
        if c:
            ratios.append(
                (math.log(exc / run.risks[0]) / (c * math.log(q)), label, frac)
            )
    ok = worst >= 0.0 and not desc_fail
    return judged(
        ok,
        measured=worst,
        predicted=0.0,
        worst_margin=worst,
        tolerance=TOL_GD_RATE,
        instances=runs,
        reason=(
            f"worst relative slack of R_k <= (1+1e-9) q^k R_0: {worst:.3g} "
            f"({where}); {judged_steps} steps judged; descent inequality "
            f"failed in {len(desc_fail)} runs with eta <= 1/ell"
        ),
        details={
            "margin": "min_k ((1+tol) bound_k - R_k)/R_k (>= 0: held)",
            "measured_over_bound_log_rate_min": min(r[0] for r in ratios)
            if ratios
            else None,
            "measured_over_bound_log_rate_median": float(
                np.median([r[0] for r in ratios])
            )
            if ratios
            else None,
            "tightness": _gd_tightness(ratios),
            "descent_failed": desc_fail,
            "loss_factor": LOSS_FACTOR,
        },
    )


def _gd_tightness(ratios) -> dict | None:
    """Bound exponent / measured exponent at the last judged step, at its largest."""
    if not ratios:
        return None
    r, label, frac = min(ratios)
    return {
        "ratio": 1.0 / r,
        "where": f"{label}, eta = {frac:g}/ell",
        "measure": "k ln q / ln(R_k/R_0) at the last judged step (1 = attained)",
        "loose_by_nature": "at least 2x: the descent inequality keeps eta/2 "
        "||grad R||^2 of the eta ||grad R||^2 a small step gains, so q^k decays at "
        "half the gradient-flow rate even where PL is tight (A0 = I, U0 along "
        "e_min: GD contracts the risk by (1 - 2 eta lam)^2 per step, the bound by "
        "1 - 2 eta lam); and eta = 1/ell is itself 2-3x below 1/sup||H||",
    }


@check("LIN-GD-RATE", part="b-conditional", kind="numeric")
def lin_gd_rate_b(ctx: Context) -> CheckResult:
    """LIN-GD-RATE (b), R6: while the descent inequality held,
    R_k <= (1 - 2 eta lam/(lambda_max(C0) + 2 eta R0))^k R0 (scalar and matrix)."""
    worst, where, runs, judged_steps, cut = math.inf, "", 0, 0, 0
    figs = []
    for label, run in gd_cases(ctx, "LIN-GD-RATE/b", 12, 120, readout=False):
        q = rates.gd_rate_factor(run.model, run.theta0, run.eta, LOSS_FACTOR)
        s, c = rate_slack(run, q, upto=run.prefix)
        runs += 1
        judged_steps += c
        cut += run.prefix < len(run.grads)
        if c and s < worst:
            worst, where = s, label
    if ctx.figures_dir is not None:
        figs.append(draw_rate_figure(ctx))
    return judged(
        worst >= 0.0,
        measured=worst,
        predicted=0.0,
        worst_margin=worst,
        tolerance=TOL_GD_RATE,
        instances=runs,
        reason=(
            f"worst relative slack {worst:.3g} ({where}) over "
            f"{judged_steps} steps; {cut}/{runs} runs cut where the "
            "descent inequality first failed"
        ),
        details={
            "margin": "min_k ((1+tol) bound_k - R_k)/R_k (>= 0: held)",
            "runs_cut_by_descent_failure": cut,
            "loss_factor": LOSS_FACTOR,
        },
    )


@figures.style()
def draw_rate_figure(ctx: Context):
    """Risk against updates with the R6 bound dashed: (a) eta = 1/ell on a random
    scalar instance, (b) the P-LEG linear run (eta = 0.01 > 1/ell, conditional
    bound)."""
    from dynamics.instances.linear import scalar_instance

    from ..figures import figure, save

    fig, axes = figure(1, 2, size=(4.6, 3.6))
    inst = scalar_instance(ctx.rng("LIN-GD-RATE/figure"), 2)
    eta = rates.gd_step_bound(inst.model, inst.theta0)
    run = analyse_gd(inst.model, inst.theta0, eta, 6000)
    draw_risk(
        axes[0, 0],
        run,
        rates.gd_rate_factor(inst.model, inst.theta0, eta),
        bound_label="R6 (a) bound, eta = 1/ell",
    )
    axes[0, 0].set_title(f"random d=2 instance, eta = 1/ell = {eta:.2e}", fontsize=9)
    model = leg_model()
    th0 = leg_perturbation()
    run = analyse_gd(model, th0, SWEEP_ETA, SWEEP_STEPS)
    draw_risk(
        axes[0, 1],
        run,
        rates.gd_rate_factor(model, th0, SWEEP_ETA),
        bound_label="R6 (b) bound (while descent held)",
    )
    axes[0, 1].set_title("P-LEG linear, eta = 0.01", fontsize=9)
    return save(fig, ctx.figure_path("lin-gd-rate"))
