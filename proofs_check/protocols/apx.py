"""P-APX-LIN (§6.3) and P-APX-TANH (§6.4): approximate backprop, exactly as specified.

* ``apx-lin``: R(c, b) = (c/(1-b) - 1)^2 (the scalar linear DEQ with E x^2 = 1,
  beta* = 1); GD with eta 0.02 for 5000 steps from (sqrt 8, 0) (r0 = 3) and the four
  starts offset by +-0.025 in c, then in b (the authors' pattern); methods exact,
  JFB, Neumann-2, Neumann-3, damped-2 (lambda = 1/2).
* ``apx-tanh``: d = 20, n_train = n_eval = 8000, x ~ N(0, I), xi a random unit
  vector, sigma = tanh, theta0 = (xi + delta, 0.15) with ||delta|| = 0.2; GD with
  eta 0.2 for 40000 steps, seeds 100-104, guard |v| < 1; the same five methods.
  Held-out risk every 20 steps (the authors' evaluation stride).

Every run goes through :func:`dynamics.gradient_descent` with the direction of
:func:`dynamics.gradients.approx_direction`.
"""

from __future__ import annotations

import math
import time

import numpy as np

from dynamics import Result, rates
from dynamics.gradients import (
    JFB,
    AbstractGradient,
    Damped,
    ExactIFT,
    Neumann,
    approx_direction,
)
from dynamics.instances.single_index import (
    APX_LIN_ETA,
    APX_LIN_STARTS,
    APX_LIN_STEPS,
    APX_TANH,
    APX_TANH_SEEDS,
    apx_lin_model,
    apx_tanh_data,
)
from dynamics.models.single_index import SingleIndexDEQ

from .. import sim_tools as st
from ..figures import (
    COLORS,
    band_plot,
    figure,
    save,
    seeds_caption,
    style,
    theory,
    theory_hline,
)
from . import ProtocolContext, protocol

#: The five methods of §6.3-6.4, in the authors' order.
METHODS: tuple[AbstractGradient, ...] = (
    ExactIFT(),
    JFB(),
    Neumann(2),
    Neumann(3),
    Damped(2, 0.5),
)
#: APX-STALL thresholds (parameters, claims.md): |v_K + 1| <= 1e-6 and
#: R_K >= 1e-6 R_0 is a stall; R_K <= 1e-20 is convergence to the float64 floor.
STALL_V_TOL = 1e-6
STALL_RISK_FRAC = 1e-6
CONVERGED_RISK = 1e-20


# --------------------------------------------------------------------------- P-APX-LIN


def apx_lin_run(
    method: AbstractGradient,
    theta0,
    steps: int = APX_LIN_STEPS,
    eta: float = APX_LIN_ETA,
) -> dict:
    """One P-APX-LIN run; the stall and convergence flags use the thresholds above."""
    model = apx_lin_model()
    theta0 = np.asarray(theta0, float)
    res = st.run_gd(
        model, theta0, eta, steps, direction=approx_direction(model, method)
    )
    R, th = res["risks"], res["thetas"]
    limit = rates.gf_limit(model, theta0)
    vK = float(th[-1, -1])
    return {
        "method": method.label,
        "theta0": theta0,
        "eta": eta,
        "steps": steps,
        "result": res["result"],
        "message": res["message"],
        "theta_final": th[-1],
        "risk_initial": float(R[0]),
        "risk_final": float(R[-1]),
        "stalled": bool(
            abs(vK + 1.0) <= STALL_V_TOL and R[-1] >= STALL_RISK_FRAC * R[0]
        ),
        "converged": bool(R[-1] <= CONVERGED_RISK),
        "v_final_plus_1": vK + 1.0,
        "c_final": float(method.linear_factor(vK)),
        "gf_limit": limit,
        "distance_to_gf_limit": float(np.linalg.norm(th[-1] - limit)),
        "Q0": float(res["Q"][0]),
        "Q_final": float(res["Q"][-1]),
        "max_step_length": res["max_step_length"],
        "sign_flip": res["sign_flip"],
        "seconds": res["seconds"],
        "cpu_seconds": res["cpu_seconds"],
        "risks": R,
        "thetas": th,
        "Q": res["Q"],
        "grad_norms": res["grad_norms"],
    }


def run_apx_lin(
    ctx: ProtocolContext | None = None,
    *,
    starts=APX_LIN_STARTS,
    steps: int = APX_LIN_STEPS,
    figure_prefix: str = "apx-lin",
) -> dict:
    """P-APX-LIN: every method from every start (cheap: two parameters)."""
    ctx = ctx or ProtocolContext()
    t0 = time.perf_counter()
    runs = []
    for i, start in enumerate(starts):
        for m in METHODS:
            r = apx_lin_run(m, start, steps)
            r["start_index"] = i
            if i > 0:  # keep every 10th iterate of the perturbed starts (size)
                keep = st.subsample(len(r["thetas"]), 10)
                r["thetas"], r["theta_steps"] = r["thetas"][keep], keep
            runs.append(r)
        ctx.progress(f"apx-lin: start {i} {list(start)} done")
    model = apx_lin_model()
    out = {
        "risk": "(c/(1-b) - 1)^2",
        "eta": APX_LIN_ETA,
        "steps": steps,
        "starts": [list(s) for s in starts],
        "v_inf_gf": float(rates.gf_limit(model, np.asarray(starts[0]))[-1]),
        "thresholds": {
            "stall_v_tol": STALL_V_TOL,
            "stall_risk_frac": STALL_RISK_FRAC,
            "converged_risk": CONVERGED_RISK,
        },
        "methods": {
            m.label: {
                "final_theta": next(r for r in runs if r["method"] == m.label)[
                    "theta_final"
                ],
                "final_risk": next(r for r in runs if r["method"] == m.label)[
                    "risk_final"
                ],
                "stalled_starts": sum(
                    r["stalled"] for r in runs if r["method"] == m.label
                ),
                "converged_starts": sum(
                    r["converged"] for r in runs if r["method"] == m.label
                ),
                "nearby_final_risks": [
                    r["risk_final"]
                    for r in runs
                    if r["method"] == m.label and r["start_index"] > 0
                ],
            }
            for m in METHODS
        },
        "seconds": time.perf_counter() - t0,
        "runs": runs,
    }
    out["figures"] = draw_apx_lin(
        ctx, [r for r in runs if r["start_index"] == 0], figure_prefix
    )
    return out


def _fmt_start(run: dict) -> str:
    c, b = (float(v) for v in run["theta0"])
    return f"({c:.3g}, {b:.3g})"


@style()
def draw_apx_lin(ctx: ProtocolContext, runs: list[dict], prefix: str) -> list[str]:
    """(c, b) plane with the initial circle, zero-risk line and b = -1; risk."""
    if ctx.figures_dir is None:
        return []
    fig, axes = figure(1, 2, size=(5.0, 4.2))
    ax = axes[0, 0]
    r0 = math.sqrt(runs[0]["Q0"])
    t = np.linspace(0, 2 * np.pi, 400)
    ax.plot(
        r0 * np.cos(t),
        1 + r0 * np.sin(t),
        color="0.75",
        lw=1,
        label=f"initial circle $r_0 = {r0:.3g}$",
    )
    b = np.linspace(-3, 1, 50)
    theory(ax, 1 - b, b, label="zero risk $c = 1 - b$", linewidth=1.0, linestyle=":")
    theory_hline(ax, -1.0, label="$b = -1$ ($c = 0$ for even $m$)", linewidth=1.2)
    # Methods that follow the same path would hide one another: the exact gradient
    # is drawn wide and translucent underneath, the others thin on top.
    for r, color in zip(runs, COLORS, strict=False):
        exact = r["method"] == "exact"
        ax.plot(
            r["thetas"][:, 0],
            r["thetas"][:, 1],
            color=color,
            lw=4.0 if exact else 1.4,
            alpha=0.35 if exact else 1.0,
            zorder=1 if exact else 2,
            label=r["method"],
        )
        ax.plot(*r["thetas"][-1], "o", color=color, ms=4)
    ax.plot(*runs[0]["theta0"], "k^", ms=6)
    ax.set(
        xlabel="$c$",
        ylabel="$b$",
        xlim=(1.6, 3.2),
        ylim=(-1.4, 0.3),
        title=f"P-APX-LIN trajectories from $\\theta_0 = {_fmt_start(runs[0])}$",
    )
    ax.legend(fontsize=7, loc="upper right")
    ax = axes[0, 1]
    for r, color in zip(runs, COLORS, strict=False):
        exact = r["method"] == "exact"
        ax.plot(
            np.maximum(r["risks"], 1e-32),
            color=color,
            lw=4.0 if exact else 1.4,
            alpha=0.35 if exact else 1.0,
            zorder=1 if exact else 2,
            label=r["method"],
        )
    ax.set_yscale("log")
    ax.set(
        xlabel="GD step",
        ylabel=r"risk $\widehat R$",
        title=r"risk (floored at $10^{-32}$)",
    )
    ax.legend(fontsize=7)
    return [p for p in [save(fig, ctx.figure_path(f"{prefix}-trajectories"))] if p]


@protocol(
    "apx-lin",
    "P-APX-LIN",
    "linear counterexample (c/(1-b)-1)^2, eta 0.02, 5000 "
    "steps, 5 starts x {exact, JFB, Neumann-2/3, damped-2}",
)
def apx_lin(ctx: ProtocolContext, **options) -> dict:
    return run_apx_lin(ctx, **options)


# -------------------------------------------------------------------------- P-APX-TANH


def apx_tanh_task(task: tuple) -> dict:
    """One (seed, method) run of P-APX-TANH (picklable, for the process pool)."""
    seed, method_index, steps, n_train, n_eval = task
    method = METHODS[method_index]
    P = APX_TANH
    data = apx_tanh_data(seed, P["d"], n_train, n_eval, P["delta_norm"], P["v0"])
    model = SingleIndexDEQ(data["X"], data["y"], "tanh", authors_guard=True)
    theta_star = np.r_[data["xi"], 0.0]
    res = st.run_gd(
        model,
        data["theta0"],
        P["eta"],
        steps,
        direction=approx_direction(model, method),
        theta_star=theta_star,
    )
    ev_idx = st.subsample(len(res["risks"]), P["eval_stride"])
    ev = SingleIndexDEQ(data["X_eval"], data["y_eval"], "tanh")
    eval_risk = np.array([ev.risk(res["thetas"][k]) for k in ev_idx])
    H = model.hessian_at_target(data["xi"])
    c0 = float(method.local_factor)
    rho = st.rho_lin(H, P["eta"], c0)
    fit = st.local_rate(
        res["steps"],
        res["risks"],
        res["dist"],
        st.float_floor(model),
        2 * math.log(rho),
    )
    th_idx = st.subsample(len(res["risks"]), 10 * P["eval_stride"])
    return {
        "seed": seed,
        "method": method.label,
        "result": res["result"],
        "message": res["message"],
        "theta0": data["theta0"],
        "theta_final": res["thetas"][-1],
        "risk_initial": float(res["risks"][0]),
        "train_risk_final": float(res["risks"][-1]),
        "eval_risk_final": float(eval_risk[-1]),
        "parameter_error_final": float(res["dist"][-1]),
        "lambda_min_H_star": float(np.linalg.eigvalsh(H)[0]),
        "c0": c0,
        "rho_pred": rho,
        "local_rate": fit,
        "max_abs_v": float(np.max(np.abs(res["thetas"][:, -1]))),
        "max_step_length": res["max_step_length"],
        "seconds": res["seconds"],
        "cpu_seconds": res["cpu_seconds"],
        "eval_steps": ev_idx,
        "train_risk": res["risks"][ev_idx],
        "eval_risk": eval_risk,
        "parameter_error": res["dist"][ev_idx],
        "theta_steps": th_idx,
        "thetas": res["thetas"][th_idx],
    }


def run_apx_tanh(
    ctx: ProtocolContext | None = None,
    *,
    seeds=APX_TANH_SEEDS,
    steps: int = APX_TANH["steps"],
    n_train: int = APX_TANH["n_train"],
    n_eval: int = APX_TANH["n_eval"],
    methods=None,
    workers: int | None = None,
    figure_prefix: str = "apx-tanh",
) -> dict:
    """P-APX-TANH (defaults: exactly as specified; smaller values for quick checks)."""
    ctx = ctx or ProtocolContext()
    idx = range(len(METHODS)) if methods is None else methods
    tasks = [(s, i, steps, n_train, n_eval) for s in seeds for i in idx]
    ctx.progress(
        f"apx-tanh: {len(tasks)} runs of {steps} steps "
        f"(n_train {n_train}, n_eval {n_eval})"
    )
    t0 = time.perf_counter()
    runs = st.run_pool(
        apx_tanh_task,
        tasks,
        workers=workers,
        progress=ctx.progress,
        describe=lambda t, r: (
            f"seed {t[0]} {r['method']}: risk "
            f"{r['train_risk_final']:.3e}, |theta-"
            f"theta*| {r['parameter_error_final']:.3e}"
        ),
    )
    summary = {}
    for i in idx:
        label = METHODS[i].label
        rs = [r for r in runs if r["method"] == label]
        agg = {
            "completed": sum(Result(r["result"]).ok for r in rs),
            "attempted": len(rs),
        }
        for key in (
            "train_risk_final",
            "eval_risk_final",
            "parameter_error_final",
            "seconds",
            "cpu_seconds",
        ):
            vals = np.array([r[key] for r in rs])
            agg[key] = {
                "mean": float(vals.mean()),
                "sd": float(vals.std(ddof=1)) if len(vals) > 1 else 0.0,
            }
        agg["local_rate_rel_errors"] = [r["local_rate"]["rel_error"] for r in rs]
        summary[label] = agg
    out = {
        "d": APX_TANH["d"],
        "n_train": n_train,
        "n_eval": n_eval,
        "seeds": list(seeds),
        "eta": APX_TANH["eta"],
        "steps": steps,
        "eval_stride": APX_TANH["eval_stride"],
        "guard": "|v| < 1",
        "pilot_lambda_min_H_star": {
            str(s): next(r["lambda_min_H_star"] for r in runs if r["seed"] == s)
            for s in seeds
        },
        "pool_seconds": time.perf_counter() - t0,
        "gd_cpu_seconds_total": float(sum(r["cpu_seconds"] for r in runs)),
        "summary": summary,
        "runs": runs,
    }
    out["figures"] = _tanh_figures(
        ctx, runs, [METHODS[i].label for i in idx], figure_prefix
    )
    return out


@style()
def _tanh_figures(ctx, runs, labels, prefix) -> list[str]:
    if ctx.figures_dir is None:
        return []
    fig, axes = figure(1, 2)
    for field, ax, ylabel in (
        ("train_risk", axes[0, 0], r"training risk $\widehat R$"),
        ("parameter_error", axes[0, 1], r"$\|\theta - \theta^\ast\|$"),
    ):
        for label, color in zip(labels, COLORS, strict=False):
            rs = [r for r in runs if r["method"] == label]
            # The exact curve wide and translucent under the methods that overlap it.
            exact = label == "exact"
            band_plot(
                ax,
                rs[0]["eval_steps"],
                np.stack([r[field] for r in rs]),
                label=label,
                color=color,
                lw=4.0 if exact else 1.4,
                alpha=0.35 if exact else 1.0,
                zorder=1 if exact else 2,
            )
        ax.set(
            xlabel="GD step",
            ylabel=ylabel,
            title="P-APX-TANH: " + seeds_caption(len({r["seed"] for r in runs})),
        )
        ax.legend(
            fontsize=7, title="exact, JFB, Neumann overlap (c0 = 1)", title_fontsize=7
        )
    return [p for p in [save(fig, ctx.figure_path(f"{prefix}-risk"))] if p]


@protocol(
    "apx-tanh",
    "P-APX-TANH",
    "tanh DEQ, d=20, n=8000+8000, seeds 100-104, eta 0.2, "
    "40000 steps, {exact, JFB, Neumann-2/3, damped-2}",
)
def apx_tanh(ctx: ProtocolContext, **options) -> dict:
    return run_apx_tanh(ctx, **options)
