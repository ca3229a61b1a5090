"""P-LEG (linear runs) and P-SWEEP of docs/theory/protocols.md, run exactly as
specified.

* ``leg-linear``: x = default_rng(42).uniform(0, 1, 1000), target 2x, theta0 = p with
  p = default_rng(43).normal(0, 0.1, 2); eta = 0.01, 200 steps; plot window 100.
* ``leg-linear-near-singular``: the same from theta0 = p + (0, 1); plot window 20.
* ``sweep``: theta0 = default_rng(s).normal(0, 0.1, 2) + (0, 1), s = 0..19, eta = 0.01,
  200 steps, plus the project's control at eta = 1/ell (R6) for the same seeds.

Forward pass in closed form, exact IFT gradient, no-1/2 MSE, float64
(docs/theory/protocols.md).
Every run records theta0, theta_final (full precision), initial and final risk, the
full risk history, Q_k and the distance to (0, 1), the gradient norms, the maximum
step length max_k eta ||grad R_k|| and the sign(1 - v) flip flag.
"""

from __future__ import annotations

import numpy as np

from dynamics import rates
from dynamics.instances.linear import (
    LEG_BETA_STAR,
    LEG_DATA_SEED,
    LEG_N,
    LEG_PERTURBATION,
    LEG_PERTURBATION_SEED,
    SWEEP_SEED6_THETA0,
    leg_model,
    leg_perturbation,
    sweep_theta0,
)

from ..cases.lin_gd import (
    CONTROL_STEPS,
    FAILURE_RISK,
    SWEEP_ETA,
    SWEEP_SEEDS,
    SWEEP_STEPS,
    GDRun,
    analyse_gd,
)
from ..figures import figure, save, style, theory
from ..figures.lin_gd import (
    draw_distances,
    draw_dynamics,
    draw_risk,
    draw_sweep_figure,
    figure_rows,
)
from . import ProtocolContext, protocol

LEG_ETA, LEG_STEPS = 0.01, 200
#: Tolerance of the authors' assertion that distances to (0, 1) never decrease.
DISTANCE_TOL = -1e-12


class RNGSanityError(AssertionError):
    """The NumPy generator does not reproduce the spec's sanity values."""


def _check_rng() -> np.ndarray:
    p = leg_perturbation()
    if tuple(map(float, p)) != LEG_PERTURBATION:
        raise RNGSanityError(
            f"default_rng(43).normal(0, 0.1, 2) = {p.tolist()}, spec "
            f"says {LEG_PERTURBATION}"
        )
    s6 = sweep_theta0(6)
    if tuple(map(float, s6)) != SWEEP_SEED6_THETA0:
        raise RNGSanityError(
            f"P-SWEEP seed 6 start {s6.tolist()}, spec says {SWEEP_SEED6_THETA0}"
        )
    return p


def run_record(run: GDRun, name: str) -> dict:
    """Everything docs/theory/protocols.md asks for one run, as JSON-able values at full
    precision."""
    model = run.model
    Q = run.Q
    dist = np.sqrt(Q)
    fin = np.isfinite(run.risks)
    R = run.risks
    K = len(run.grads)
    # Cumulative-drift comparison (R5) on the prefix where the descent inequality held.
    P = run.prefix
    drift_bound = Q[0] + 2.0 * run.eta * (R[0] - R[: P + 1])
    used = [
        (Q[k] - Q[0]) / (2 * run.eta * (R[0] - R[k]))
        for k in range(1, P + 1)
        if R[0] > R[k]
    ]
    theta0 = run.theta0
    return {
        "run": name,
        "theta0": theta0,
        "eta": run.eta,
        "steps": K,
        "result": run.traj.result.value,
        "message": run.traj.message,
        "theta_final": run.thetas[-1],
        "risk_initial": float(R[0]),
        "risk_final": float(R[fin][-1]),
        "risks": R,
        "grad_norms": run.traj.grad_norms,
        "Q": Q,
        "distance_to_singular_point": dist,
        "min_distance_to_singular_point": float(dist.min()),
        "distances_nondecreasing": bool(np.all(np.diff(dist) >= DISTANCE_TOL)),
        "min_distance_increment": float(np.diff(dist).min()) if K else 0.0,
        "max_step_length": run.traj.stats["max_step_length"],
        "sign_flip": run.crossed,
        "descent_inequality_prefix": P,
        "cumulative_drift": {
            "held_on_prefix": bool(np.all(Q[: P + 1] <= drift_bound * (1 + 1e-12))),
            "largest_fraction_of_bound_used": max(used, default=0.0),
            "Q_final_minus_Q0": float(Q[-1] - Q[0]),
            "bound_2_eta_R0": float(2 * run.eta * R[0]),
            "exceeded_2_eta_R0": bool(Q[-1] - Q[0] > 2 * run.eta * R[0]),
        },
        "one_over_ell": rates.gd_step_bound(model, theta0),
        "gd_rate_factor": rates.gd_rate_factor(model, theta0, run.eta),
        "gf_limit": rates.gf_limit(model, theta0),
    }


def _common() -> dict:
    return {
        "spec_id": "P-LEG",
        "data": {
            "x": f"default_rng({LEG_DATA_SEED}).uniform(0, 1, {LEG_N})",
            "target": "2x",
            "data_seed": LEG_DATA_SEED,
        },
        "perturbation_seed": LEG_PERTURBATION_SEED,
        "loss": "mean squared error, no 1/2",
        "forward": "closed form",
        "gradient": "exact IFT",
    }


@style()
def _learned_figure(path, run: GDRun):
    fig, axes = figure(1, 1, size=(4.6, 3.4))
    ax = axes[0, 0]
    grid = np.linspace(-2, 2, 201)
    beta = run.thetas[-1][0] / (1 - run.thetas[-1][1])
    theory(ax, grid, LEG_BETA_STAR * grid, label="target f(x)=2x")
    ax.plot(
        grid,
        beta * grid,
        color="C0",
        lw=1.6,
        alpha=0.8,
        label=rf"learned $f(x)=\theta_1x/(1-\theta_2)$, slope {beta:.6g}",
    )
    ax.set_xlabel("x")
    ax.set_ylabel("f(x)")
    ax.legend(fontsize=8)
    return save(fig, path)


@style()
def _leg(ctx: ProtocolContext, near_singular: bool) -> dict:
    p = _check_rng()
    theta0 = p + np.array([0.0, 1.0]) if near_singular else p
    name = "linear-near-singular" if near_singular else "linear"
    window = 20 if near_singular else 100
    suffix = "-unstable" if near_singular else ""
    ctx.progress(f"P-LEG {name}: eta={LEG_ETA}, {LEG_STEPS} steps")
    model = leg_model()
    run = analyse_gd(model, theta0, LEG_ETA, LEG_STEPS)
    rec = run_record(run, name)
    figs = {}
    if ctx.figures_dir is not None:
        if not near_singular:
            fig, axes = figure(1, 1, size=(4.6, 3.4))
            draw_risk(
                axes[0, 0],
                run,
                rates.gd_rate_factor(model, theta0, LEG_ETA),
                window=window,
                bound_label="R6 (b) bound while descent held",
            )
            axes[0, 0].set_title(f"P-LEG linear, eta={LEG_ETA}", fontsize=9)
            figs["loss-lm"] = save(fig, ctx.figure_path("loss-lm"))
            figs["learned-lm"] = _learned_figure(ctx.figure_path("learned-lm"), run)
        fig, axes = figure(1, 1, size=(5.2, 4.4))
        draw_dynamics(axes[0, 0], [run], LEG_BETA_STAR, window=window)
        axes[0, 0].set_title(
            f"P-LEG {name}: GD iterates (first {window} updates)", fontsize=9
        )
        figs[f"dynamics-lm{suffix}"] = save(
            fig, ctx.figure_path(f"dynamics-lm{suffix}")
        )
        fig, axes = figure(1, 1, size=(4.6, 3.4))
        draw_distances(axes[0, 0], run, window=window)
        axes[0, 0].set_title(f"P-LEG {name}: distance to (0, 1)", fontsize=9)
        figs[f"distances-lm{suffix}"] = save(
            fig, ctx.figure_path(f"distances-lm{suffix}")
        )
    return {
        **_common(),
        "run_name": name,
        "plot_window": window,
        "runs": [rec],
        "figures": {k: v for k, v in figs.items() if v},
    }


@protocol("leg-linear", "P-LEG", "scalar linear DEQ from p, eta=0.01, 200 steps")
def leg_linear(ctx: ProtocolContext) -> dict:
    return _leg(ctx, near_singular=False)


@protocol(
    "leg-linear-near-singular",
    "P-LEG",
    "scalar linear DEQ from p+(0,1) (near the singular point), eta=0.01, 200 steps",
)
def leg_linear_near_singular(ctx: ProtocolContext) -> dict:
    return _leg(ctx, near_singular=True)


@protocol(
    "sweep",
    "P-SWEEP",
    "seeds 0-19 near (0,1), eta=0.01, 200 steps, plus control at eta=1/ell",
)
@style()
def sweep(
    ctx: ProtocolContext,
    failure_risk: float = FAILURE_RISK,
    control_steps: int = CONTROL_STEPS,
) -> dict:
    _check_rng()
    model = leg_model()
    out = {}
    for kind in ("protocol", "control"):
        recs = []
        for s in SWEEP_SEEDS:
            th0 = sweep_theta0(s)
            eta = SWEEP_ETA if kind == "protocol" else rates.gd_step_bound(model, th0)
            steps = SWEEP_STEPS if kind == "protocol" else control_steps
            ctx.progress(f"P-SWEEP {kind} seed {s}: eta={eta:.3g}, {steps} steps")
            run = analyse_gd(model, th0, eta, steps)
            rec = run_record(run, f"{kind}-seed{s}")
            rec["seed"] = s
            rec["failed"] = bool(rec["risk_final"] > failure_risk or not run.ok)
            # R6 (a): how close |1 - v_k| came to 0, relative to |1 - v_0| and delta.
            gaps = 1.0 - run.thetas[:, -1]
            closest = np.min(gaps * np.sign(gaps[0]))
            rec["min_gap_ratio"] = float(closest / abs(gaps[0]))
            rec["min_gap_over_delta"] = float(closest / rates.delta(model, th0))
            recs.append(rec)
        out[kind] = recs
    figs = {}
    if ctx.figures_dir is not None:
        figs["sweep-lm"] = draw_sweep_figure(
            ctx.figure_path("sweep-lm"), figure_rows(out["protocol"])
        )
        six = analyse_gd(model, sweep_theta0(6), SWEEP_ETA, SWEEP_STEPS)
        fig, axes = figure(1, 2, size=(4.8, 4.0))
        draw_dynamics(axes[0, 0], [six], LEG_BETA_STAR)
        axes[0, 0].set_title("P-SWEEP seed 6: GD iterates", fontsize=9)
        draw_distances(axes[0, 1], six)
        axes[0, 1].set_title("P-SWEEP seed 6: distance to (0, 1)", fontsize=9)
        figs["sweep-seed6"] = save(fig, ctx.figure_path("sweep-seed6"))
    summary = {
        kind: {
            "crossed": [r["seed"] for r in recs if r["sign_flip"]],
            # For the control, "failed" only means "not converged within the step
            # budget": eta = 1/ell is tiny near (0, 1), so it moves slowly.
            "failed": [r["seed"] for r in recs if r["failed"]],
            "distances_nondecreasing_all": all(
                r["distances_nondecreasing"] for r in recs
            ),
        }
        for kind, recs in out.items()
    }
    return {
        **_common(),
        "spec_id": "P-SWEEP",
        "seeds": list(SWEEP_SEEDS),
        "eta": SWEEP_ETA,
        "steps": SWEEP_STEPS,
        "failure_risk": failure_risk,
        "failure_criterion": "final risk > failure_risk, or the run stopped early",
        "control": f"same seeds, eta = 1/ell (R6) per seed, {control_steps} steps",
        "summary": summary,
        "runs": out["protocol"],
        "control_runs": out["control"],
        "figures": {k: v for k, v in figs.items() if v},
    }
