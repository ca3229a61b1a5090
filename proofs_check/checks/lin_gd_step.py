"""LIN-GD-STEP (R6): the step-size sweep of P-SWEEP and its control runs.

The runs are the ``sweep`` protocol's (:mod:`..protocols.leg_linear`), produced once
per ``verify`` run; this module only judges them, with the one pass rule
:func:`sweep_verdict` that ``scripts/p_sweep.py`` prints too.

Run analysis, tolerances and case streams: :mod:`proofs_check.cases.lin_gd`.
"""

from __future__ import annotations

from dynamics import Result
from dynamics.instances.linear import leg_model

from ..cases.lin_gd import (
    CONTROL_STEPS,
    FAILURE_RISK,
    SWEEP_SEEDS,
    SWEEP_STEPS,
    TOL_DELTA,
    analyse_gd,
)
from ..figures.lin_gd import draw_sweep_figure, figure_rows
from ..protocols import protocol_data
from ..registry import CheckResult, Context, check, judged

# ------------------------------------------------------------------- LIN-GD-STEP

#: Record fields of the P-SWEEP protocol reported per run by LIN-GD-STEP.
KEEP = (
    "seed",
    "eta",
    "risk_final",
    "max_step_length",
    "sign_flip",
    "failed",
    "result",
    "min_gap_ratio",
    "descent_inequality_prefix",
    "min_gap_over_delta",
)


def control_steps(ctx: Context) -> int:
    """Length of each control run at eta = 1/ell: CONTROL_STEPS, 10x in full."""
    return 10 * CONTROL_STEPS if ctx.full else CONTROL_STEPS


def sweep_data(ctx: Context, failure_risk: float = FAILURE_RISK) -> dict:
    """The P-SWEEP protocol (docs/theory/protocols.md) with its eta = 1/ell control, run
    once per
    ``verify`` and judged by LIN-GD-STEP and REPRO-LEG."""
    return protocol_data(
        ctx, "sweep", failure_risk=failure_risk, control_steps=control_steps(ctx)
    )


def sweep_verdict(payload: dict, tol_delta: float = TOL_DELTA) -> dict:
    """The one pass rule of LIN-GD-STEP, for the check and ``scripts/p_sweep.py``.

    Passes when some protocol seed (eta = 0.01) crossed v = 1 or failed, no control
    seed (eta = 1/ell) crossed, and every control run kept the R6 (a) floor
    |1 - v_k| >= delta up to the relative slack ``tol_delta``.

    "Failed" means the run stopped (non-finite or diverged). The protocol's other
    failure criterion, final risk > failure_risk, counts only when no control run
    meets it too: at eta = 1/ell GD near (0, 1) is merely slow (12 of the 20
    control runs end above 1e-3), so a high final risk says nothing about the
    step size being too large.
    """
    proto, control = payload["runs"], payload["control_runs"]
    thr = payload["failure_risk"]
    ctl_high_risk = [r["seed"] for r in control if r["risk_final"] > thr]
    risk_counts = not ctl_high_risk
    bad = [
        r["seed"]
        for r in proto
        if r["sign_flip"]
        or not Result(r["result"]).ok
        or (risk_counts and r["risk_final"] > thr)
    ]
    crossed_ctl = [r["seed"] for r in control if r["sign_flip"]]
    ctl_delta = min(r["min_gap_over_delta"] for r in control)
    return {
        "ok": bool(bad) and not crossed_ctl and ctl_delta >= 1.0 - tol_delta,
        "bad": bad,
        "crossed": [r["seed"] for r in proto if r["sign_flip"]],
        "final_risk_counts": risk_counts,
        "control_above_failure_risk": ctl_high_risk,
        "crossed_control": crossed_ctl,
        "min_gap_over_delta": ctl_delta,
        # 1 - (shortfall below the R6 (a) floor) / tol_delta, or -1 when no
        # protocol seed crossed or failed (the report's one margin definition).
        "margin": min(
            1.0 - max(0.0, 1.0 - ctl_delta) / tol_delta, 1.0 if bad else -1.0
        ),
    }


#: Step sizes of the crossing-threshold sweep, in units of each seed's 1/ell.
THRESHOLD_RATIOS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000)


def crossing_threshold(ctx: Context) -> dict:
    """Measured, not judged: for eta = r / ell (r in THRESHOLD_RATIOS, each seed's
    own ell) and the protocol's 200 steps, how many P-SWEEP seeds cross v = 1; the
    smallest r at which any does. R6 says r <= 1 never crosses; this says how far
    beyond the condition crossings actually start."""
    from dynamics import rates
    from dynamics.instances.linear import sweep_theta0

    def produce():
        model = leg_model()
        counts = {}
        for ratio in THRESHOLD_RATIOS:
            n = 0
            for s in SWEEP_SEEDS:
                th0 = sweep_theta0(s)
                eta = ratio * rates.gd_step_bound(model, th0)
                n += int(analyse_gd(model, th0, eta, SWEEP_STEPS).crossed)
            counts[ratio] = n
        first = next((r for r in THRESHOLD_RATIOS if counts[r]), None)
        protocol_ratio = [
            0.01 / rates.gd_step_bound(model, sweep_theta0(s)) for s in SWEEP_SEEDS
        ]
        return {
            "crossings_by_eta_over_inv_ell": counts,
            "first_crossing_eta_over_inv_ell": first,
            "protocol_eta_over_inv_ell": [min(protocol_ratio), max(protocol_ratio)],
        }

    return ctx.memo(("lin-gd-step-threshold",), produce)


@check("LIN-GD-STEP", part="sweep+control", kind="benchmark")
def lin_gd_step(ctx: Context, failure_risk: float = FAILURE_RISK) -> CheckResult:
    """LIN-GD-STEP (R6, P2): at eta = 0.01 near (0,1) GD crosses v = 1 or fails on some
    P-SWEEP seed; with eta = 1/ell (R6) no seed crosses."""
    data = sweep_data(ctx, failure_risk)
    proto, control = data["runs"], data["control_runs"]
    v = sweep_verdict(data)
    thr = crossing_threshold(ctx)
    figs = []
    if ctx.figures_dir is not None:
        figs.append(
            # P-SWEEP's own figure (same name, same data): one file, not two.
            draw_sweep_figure(ctx.figure_path("sweep-lm"), figure_rows(proto))
        )
    return judged(
        v["ok"],
        measured=float(len(v["bad"])),
        predicted=1.0,
        worst_margin=v["margin"],
        tolerance=TOL_DELTA,
        instances=len(proto) + len(control),
        reason=(
            f"eta={data['eta']}: seeds {v['crossed']} crossed v=1 "
            f"({len(v['bad'])}/{len(proto)} crossed or stopped); final risk > "
            f"{failure_risk:g} is "
            + (
                "counted"
                if v["final_risk_counts"]
                else f"not counted as failure ({len(v['control_above_failure_risk'])}"
                f"/{len(control)} control runs at eta = 1/ell end above it too)"
            )
            + f"; control eta=1/ell ({control_steps(ctx)} steps): "
            f"{len(v['crossed_control'])} crossings, min_k |1-v_k|/delta = "
            f"{v['min_gap_over_delta']:.4g} (R6 predicts >= 1). Measured: crossings "
            f"start at eta = {thr['first_crossing_eta_over_inv_ell']} x 1/ell "
            f"(counts by eta ell: {thr['crossings_by_eta_over_inv_ell']}); the "
            f"protocol's eta = 0.01 is {thr['protocol_eta_over_inv_ell'][0]:.0f}-"
            f"{thr['protocol_eta_over_inv_ell'][1]:.0f} x 1/ell"
        ),
        details={
            "margin": "1 - max(0, 1 - g)/tol with g = min over control runs and "
            "steps of sign(1-v0)(1-v_k)/delta (g >= 1: the R6 floor |1-v_k| >= "
            "delta held, so no crossing), or -1 if no protocol seed crossed or "
            "failed. In d = 1 a start with beta_0 beyond beta* has |1-v_0| = delta "
            "exactly, so g = 1 up to rounding",
            "failure_risk": failure_risk,
            "failure_rule": "crossed v = 1, or the run stopped; final risk > "
            "failure_risk only when no control run at eta = 1/ell meets it too",
            "verdict": {k: v[k] for k in ("bad", "crossed", "final_risk_counts")},
            "crossing_threshold": thr,
            "protocol": [_row(r, KEEP) for r in proto],
            "control": [_row(r, (*KEEP, "one_over_ell")) for r in control],
        },
        figures=figs,
    )


#: Report names of the protocol's record fields (kept for the report's readers).
_REPORT_NAMES = {
    "risk_final": "final_risk",
    "sign_flip": "crossed_v_eq_1",
    "descent_inequality_prefix": "descent_prefix",
}


def _row(rec: dict, keys) -> dict:
    return {_REPORT_NAMES.get(k, k): rec[k] for k in keys}
