"""P-MOM: the linear DEQ under heavy ball, Nesterov, Adam, RMSProp (docs/momentum.md).

* the drift study: P-LEG data and start, heavy ball and Nesterov from rest on the
  grid eta in {1e-3, 2e-3, 4e-3, 8e-3} x mu in {0, 0.5, 0.75, 0.9}, each run for
  30 / eta_eff time units (eta_eff = eta / (1 - mu)); final drift Q_K - Q_0 against
  eta c(mu) (R_0 - R_K);
* the conditioning study: GD (control) and Adam / RMSProp from the P-LEG start and
  from the start (u0, v0) = (0, 2), with |1 - v| over the LIN-COND bound along
  training and Q_k / Q_0.

Every run records theta0, theta_final at full precision and its risk history.
"""

from __future__ import annotations

import numpy as np

from dynamics import gradient_descent
from dynamics.instances import leg_model, leg_perturbation
from dynamics.optim import Adam, RMSProp, optimize

from ..cases.lin_mom import (
    FULL_ETAS,
    FULL_MUS,
    LEG_START,
    cond_bound,
    gd_control_step,
    scaling_table,
    trace_quantity,
)
from ..figures.momentum import draw_adam_conditioning, draw_drift_scaling
from . import ProtocolContext, protocol

ADAM_STEPS = 3000
HISTORY = 300


def _run_record(model, traj, bound) -> dict:
    ok = np.isfinite(traj.risks)
    th = traj.thetas[ok]
    gap = np.abs(1.0 - th[:, -1])
    q = trace_quantity(model, th)
    return {
        "theta0": traj.thetas[0].tolist(),
        "theta_final": traj.thetas[-1].tolist(),
        "result": traj.result.value,
        "risk_initial": float(traj.risks[0]),
        "risk_final": float(traj.risks[ok][-1]),
        "risk_never_above_R0": bool(np.all(traj.risks[ok] <= traj.risks[0]
                                           * (1 + 1e-12))),
        "bound": bound,
        "min_gap_over_bound": float(gap.min() / bound),
        "final_gap": float(gap[-1]),
        "Q_final_over_Q0": float(q[-1] / q[0]),
        "history": {"step": traj.steps[ok].tolist(),
                    "risk": traj.risks[ok].tolist(),
                    "gap_over_bound": (gap / bound).tolist(),
                    "Q_over_Q0": (q / q[0]).tolist()},
    }


@protocol("momentum", "P-MOM", "P-LEG under heavy ball / Nesterov (eta x mu drift "
          "grid) and Adam / RMSProp vs GD (distance to the singular point)")
def momentum(ctx: ProtocolContext) -> dict:
    ctx.progress("P-MOM drift grid (heavy ball, Nesterov)")
    rows = scaling_table(FULL_ETAS, FULL_MUS, history=HISTORY)
    model = leg_model()
    cond = {}
    for name, th0 in (("P-LEG start", leg_perturbation()), ("start (0, 2)", LEG_START)):
        ctx.progress(f"P-MOM conditioning from {name}")
        bound = cond_bound(model, th0)
        eta_gd = gd_control_step(model, th0)
        runs = {
            f"gd eta={eta_gd:.3g}": gradient_descent(model, th0, eta_gd, ADAM_STEPS),
            "adam eta=1e-3": optimize(model, th0, Adam(1e-3), ADAM_STEPS),
            "adam eta=1e-2": optimize(model, th0, Adam(1e-2), ADAM_STEPS),
            "rmsprop eta=1e-3": optimize(model, th0, RMSProp(1e-3), ADAM_STEPS),
        }
        cond[name] = {k: _run_record(model, t, bound) for k, t in runs.items()}
    figs = {}
    if ctx.figures_dir is not None:
        figs["momentum-drift"] = draw_drift_scaling(
            rows, ctx.figure_path("momentum-drift-eta-mu"))
        for name, recs in cond.items():
            tag = "leg" if name == "P-LEG start" else "u0-v2"
            figs[f"adam-{tag}"] = draw_adam_conditioning(
                {k: {"steps": r["history"]["step"],
                     "scale_over_bound": r["history"]["gap_over_bound"],
                     "q_over_q0": r["history"]["Q_over_Q0"]} for k, r in recs.items()},
                ctx.figure_path(f"momentum-adam-{tag}"), case=name)
    return {"drift_grid": rows, "conditioning": cond, "figures": figs}
