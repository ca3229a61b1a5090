"""P-LEG sigmoid runs (§6.1) and P-WEAK (§6.5), run exactly as specified.

* ``leg-sigmoid``, ``leg-sigmoid-far``, ``leg-sigmoid-extended``,
  ``leg-sigmoid-far-extended``: y = expit(theta_1 x + theta_2 y), x =
  default_rng(42).uniform(0, 1, 1000), target expit(2x), theta0 = p (+ (20, 0) for
  "far") with p = default_rng(43).normal(0, 0.1, 2) (sanity values asserted);
  eta 0.1 (far: 2.0); 4000 steps (extended: 40000). Every step is recorded.
* ``weak``: d = 10, n_train 4096, n_eval 16384, seeds 1729-1733,
  sigma_eps(z) = z + eps tanh z for eps in {1/2, 1/4, 1/8}, theta0 = (xi, 0)
  + 0.1 (-xi, 1)/sqrt 2 + 0.03 (v_perp, 0), eta 0.05, 60000 updates recorded every
  100, guard |v| (1 + eps) < 0.95.

Forward pass: the vectorised safeguarded Newton of :mod:`dynamics.models.scalar_root`
(residual <= 1e-13, warm-started from the previous step), validated against Brent at
theta0; exact IFT gradient; no-1/2 MSE; float64 (docs/theory/protocols.md). Independent
runs go to a
process pool (``DEQ_WORKERS`` sets its size); the results do not depend on it.
"""

from __future__ import annotations

import math
import time

import numpy as np
from scipy.optimize import brentq
from scipy.special import expit

from dynamics.instances.linear import LEG_PERTURBATION, leg_perturbation
from dynamics.instances.single_index import (
    LEG_SIGMOID_RUNS,
    LEG_SIGMOID_XI,
    WEAK,
    WEAK_SEEDS,
    leg_sigmoid_model,
    weak_data,
)
from dynamics.models.activations import sigma_eps
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
    trajectory_plot,
)
from . import ProtocolContext, protocol

#: SIM-MONO rounding allowance: R_{k+1} - R_k <= 1e-14 R_k + 10 eps64 sqrt(R_k) max|f|.
MONO_REL = 1e-14
MONO_ULPS = 10.0


class RNGSanityError(AssertionError):
    """The NumPy generator does not reproduce the spec's sanity values."""


def checked_perturbation() -> np.ndarray:
    p = leg_perturbation()
    if tuple(map(float, p)) != LEG_PERTURBATION:
        raise RNGSanityError(
            f"default_rng(43).normal(0, 0.1, 2) = {p.tolist()}, spec "
            f"says {LEG_PERTURBATION}"
        )
    return p


def validate_forward(
    model: SingleIndexDEQ, theta: np.ndarray, n_brent: int = 64
) -> dict:
    """The authors' validation: central-FD gradient error and Newton-vs-Brent roots."""
    g = model.grad(theta)
    h = np.finfo(float).eps ** (1 / 3) * max(1.0, float(np.max(np.abs(theta))))
    fd = np.array(
        [
            (model.risk(theta + h * e) - model.risk(theta - h * e)) / (2 * h)
            for e in np.eye(theta.size)
        ]
    )
    idx = np.linspace(0, model.n - 1, min(n_brent, model.n)).astype(int)
    sol = model.solve(theta)
    v = float(theta[-1])
    a = model.X[idx] @ theta[:-1]
    lo, hi = model.act.bracket(a, v)
    lo, hi = np.broadcast_to(lo, a.shape), np.broadcast_to(hi, a.shape)
    roots = np.array(
        [
            brentq(
                lambda z, ai=ai: z - model.act.sigma(ai + v * z),
                lo_i,
                hi_i,
                xtol=1e-15,
                rtol=8.9e-16,
                maxiter=200,
            )
            for ai, lo_i, hi_i in zip(a, lo, hi, strict=True)
        ]
    )
    return {
        "fd_gradient_rel_error": float(
            np.max(np.abs(g - fd)) / max(1.0, float(np.max(np.abs(g))))
        ),
        "brent_max_abs_difference": float(np.max(np.abs(sol.y[idx] - roots))),
        "forward_residual": sol.residual,
        "brent_samples": int(idx.size),
    }


def risk_mono(risks: np.ndarray, fmax: float) -> dict:
    """SIM-MONO on a risk history: the largest increase and the worst margin of
    R_{k+1} - R_k <= 1e-14 R_k + 10 eps64 sqrt(R_k) max|f|, as 1 - max(inc, 0) /
    allowance (1 when the risk never rose, < 0 on a violation)."""
    R = np.asarray(risks, float)
    inc = np.diff(R)
    allow = MONO_REL * R[:-1] + MONO_ULPS * np.finfo(float).eps * np.sqrt(R[:-1]) * fmax
    margin = 1.0 - np.maximum(inc, 0.0) / allow
    return {
        "max_increase": float(inc.max(initial=-np.inf)),
        "worst_margin": float(margin.min(initial=np.inf)),
        "violations": int(np.sum(inc > allow)),
        "checked_steps": int(inc.size),
    }


# ----------------------------------------------------------------------- P-LEG sigmoid


def run_leg_sigmoid(
    run: str, ctx: ProtocolContext | None = None, steps: int | None = None
) -> dict:
    """One P-LEG sigmoid run (``steps`` overrides the protocol's count, for tests)."""
    ctx = ctx or ProtocolContext()
    offset, eta, n_steps, window = LEG_SIGMOID_RUNS[run]
    steps = n_steps if steps is None else steps
    p = checked_perturbation()
    theta0 = p + np.asarray(offset)
    theta_star = np.array([LEG_SIGMOID_XI, 0.0])
    model = leg_sigmoid_model()
    validation = validate_forward(leg_sigmoid_model(warm_start=False), theta0)
    ctx.progress(
        f"{run}: {steps} GD steps, eta = {eta} from theta0 = {theta0.tolist()}"
    )
    res = st.run_gd(model, theta0, eta, steps, theta_star=theta_star)
    ctx.progress(
        f"{run}: done in {res['seconds']:.1f} s, final risk "
        f"{res['risks'][-1]:.3e}, theta = {res['thetas'][-1].tolist()}"
    )
    H = model.hessian_at_target([LEG_SIGMOID_XI])
    lam = np.linalg.eigvalsh(H)
    rho = st.rho_lin(H, eta)
    fit = st.local_rate(
        res["steps"],
        res["risks"],
        res["dist"],
        st.float_floor(model),
        2 * math.log(rho),
    )
    dist_sing = np.linalg.norm(res["thetas"] - np.array([0.0, 1.0]), axis=1)
    out = {
        "run": run,
        "data_seed": 42,
        "perturbation_seed": 43,
        "perturbation": p,
        "n": model.n,
        "distribution": "Uniform[0, 1]",
        "target": "expit(2 x)",
        "theta0": theta0,
        "eta": eta,
        "steps": steps,
        "result": res["result"],
        "message": res["message"],
        "theta_final": res["thetas"][-1],
        "risk_initial": float(res["risks"][0]),
        "risk_final": float(res["risks"][-1]),
        "distance_to_target_final": float(res["dist"][-1]),
        "min_distance_to_singular_point": float(dist_sing.min()),
        "max_step_length": res["max_step_length"],
        "sign_flip": res["sign_flip"],
        "Q_monotone_nondecreasing": bool(np.all(np.diff(res["Q"]) >= -1e-12)),
        "Q_largest_decrease": float(-np.min(np.diff(res["Q"]), initial=0.0)),
        "lambda_H_star": lam,
        "rho_lin": rho,
        "local_rate": fit,
        "validation": validation,
        "seconds": res["seconds"],
        "cpu_seconds": res["cpu_seconds"],
        "risks": res["risks"],
        "thetas": res["thetas"],
        "grad_norms": res["grad_norms"],
        "distance_to_target": res["dist"],
        "Q": res["Q"],
        "plot_window": window,
    }
    out["figures"] = _leg_figures(run, ctx, model, res, window, rho)
    return out


#: Distance to the target below which the local linear rate is drawn.
LOCAL_RADIUS = 0.1


@style()
def _leg_figures(run, ctx, model, res, window, rho=None) -> list[str]:
    """The authors' panels: loss, learned, dynamics, distances, each measurement with
    its theory dashed (the target function; the local linear rate rho_lin^k near the
    target). A full extended run is drawn over the plot window and takes the short
    name (``leg-sigmoid``); any run cut short is named by the updates it made
    (``leg-sigmoid-200``), so a cut extended run and the plain run of the same length
    (the same GD iterates) share one file instead of two identical ones."""
    if ctx.figures_dir is None:
        return []
    base = run.replace("-extended", "")
    K = len(res["risks"])
    full_extended = run.endswith("-extended") and K - 1 == LEG_SIGMOID_RUNS[run][2]
    stop = min(K, (LEG_SIGMOID_RUNS[base][3] or K - 1) + 1) if full_extended else K
    tag = base if full_extended else f"{base}-{K - 1}"
    paths = []
    x = np.arange(stop)
    # The local linear rate holds near the target only: drawn from the first update
    # within LOCAL_RADIUS of it (if the run gets there), anchored at that point.
    near = np.flatnonzero(res["dist"][:stop] <= LOCAL_RADIUS)
    local = rho is not None and 0.0 < rho < 1.0 and near.size > 1
    xs = x[near[0] :] if local else x[:0]
    fig, axes = figure(2, 2, size=(4.6, 3.4))
    ax = axes[0, 0]
    ax.plot(x, res["risks"][:stop], color=COLORS[1], label="measured")
    if local:
        theory(
            ax,
            xs,
            res["risks"][xs[0]] * rho ** (2.0 * (xs - xs[0])),
            label=r"local rate $\rho_{\rm lin}^{2k}$",
        )
    ax.set_yscale("log")
    ax.set(
        xlabel="GD updates",
        ylabel=r"training risk $\widehat R$",
        title=f"loss ({base}, {stop - 1} updates)",
    )
    ax.legend(fontsize=7)
    ax = axes[0, 1]
    grid = np.linspace(-2, 2, 250)
    theory(ax, grid, expit(LEG_SIGMOID_XI * grid), label=r"target $\sigma(2x)$")
    ax.plot(
        grid,
        model.predict(res["thetas"][stop - 1], grid[:, None]),
        color=COLORS[1],
        label=f"learned (update {stop - 1})",
    )
    ax.set(xlabel="$x$", ylabel="$y$", title="learned function")
    ax.legend(fontsize=7)
    ax = axes[1, 0]
    sc = trajectory_plot(ax, res["thetas"][:stop], every=max(1, stop // 1000))
    ax.plot(LEG_SIGMOID_XI, 0.0, "k*", ms=10, label="target $(2, 0)$")
    ax.set(
        xlabel=r"$\theta_1 = u$",
        ylabel=r"$\theta_2 = v$",
        title=r"$(u, v)$ trajectory",
    )
    ax.legend(fontsize=7)
    ax.figure.colorbar(sc, ax=ax, label="update")
    ax = axes[1, 1]
    ax.plot(x, res["dist"][:stop], color=COLORS[2], label="measured")
    if local:
        theory(
            ax,
            xs,
            res["dist"][xs[0]] * rho ** (xs - xs[0]),
            label=r"local rate $\rho_{\rm lin}^{k}$",
        )
    ax.set_yscale("log")
    ax.set(
        xlabel="GD updates",
        ylabel=r"$\|\theta_k - (2, 0)\|$",
        title="distance to target"
        + ("" if local else f"\n(not within {LOCAL_RADIUS:g}: no local-rate overlay)"),
    )
    ax.legend(fontsize=7)
    paths.append(save(fig, ctx.figure_path(f"leg-{tag}")))
    return [p for p in paths if p]


def _register_leg(name: str, run: str):
    offset, eta, steps, _ = LEG_SIGMOID_RUNS[run]

    @protocol(
        name,
        "P-LEG",
        f"sigmoid DEQ on U[0,1], theta0 = p + {offset}, eta {eta}, {steps} steps",
    )
    def _proto(ctx: ProtocolContext, **options) -> dict:
        return run_leg_sigmoid(run, ctx, **options)

    return _proto


for _name, _run in (
    ("leg-sigmoid", "sigmoid"),
    ("leg-sigmoid-far", "sigmoid-far"),
    ("leg-sigmoid-extended", "sigmoid-extended"),
    ("leg-sigmoid-far-extended", "sigmoid-far-extended"),
):
    _register_leg(_name, _run)


# ------------------------------------------------------------------------------ P-WEAK


def weak_task(task: tuple) -> dict:
    """One (seed, eps) run of P-WEAK (picklable, for the process pool)."""
    seed, eps, updates, record_every, n_train, n_eval = task
    data = weak_data(seed, WEAK["d"], n_train, n_eval)
    act = sigma_eps(eps)
    xi = data["xi"]
    X, Xe = data["X"], data["X_eval"]
    model = SingleIndexDEQ(X, act.sigma(X @ xi), act, authors_guard=True)
    theta_star = np.r_[xi, 0.0]
    validation = validate_forward(
        SingleIndexDEQ(X, act.sigma(X @ xi), act, warm_start=False),
        data["theta0"],
        n_brent=32,
    )
    res = st.run_gd(model, data["theta0"], WEAK["eta"], updates, theta_star=theta_star)
    rec = st.subsample(len(res["risks"]), record_every)
    ev = SingleIndexDEQ(Xe, act.sigma(Xe @ xi), act)
    eval_risk = np.array([ev.risk(res["thetas"][k]) for k in rec])
    H = model.hessian_at_target(xi)
    lam = np.linalg.eigvalsh(H)
    fmax = float(np.max(np.abs(model.y)))
    fit = st.local_rate(
        res["steps"],
        res["risks"],
        res["dist"],
        st.float_floor(model),
        2 * math.log(st.rho_lin(H, WEAK["eta"])),
    )
    return {
        "seed": seed,
        "epsilon": eps,
        "result": res["result"],
        "message": res["message"],
        "theta0": data["theta0"],
        "theta_final": res["thetas"][-1],
        "lambda_min_H_star": float(lam[0]),
        "lambda_max_H_star": float(lam[-1]),
        "lambda_min_over_eps2": float(lam[0] / eps**2),
        "parameter_error_final": float(res["dist"][-1]),
        "train_risk_initial": float(res["risks"][0]),
        "train_risk_final": float(res["risks"][-1]),
        "eval_risk_final": float(eval_risk[-1]),
        "monotonicity": risk_mono(res["risks"], fmax),
        "max_contraction_bound": float(
            np.max(np.abs(res["thetas"][:, -1])) * (1 + eps)
        ),
        "local_rate": fit,
        "validation": validation,
        "seconds": res["seconds"],
        "cpu_seconds": res["cpu_seconds"],
        "updates": rec,
        "train_risk": res["risks"][rec],
        "eval_risk": eval_risk,
        "parameter_error": res["dist"][rec],
        "thetas": res["thetas"][rec],
    }


def run_weak(
    ctx: ProtocolContext | None = None,
    *,
    seeds=WEAK_SEEDS,
    epsilons=WEAK["epsilons"],
    updates: int = WEAK["updates"],
    record_every: int = WEAK["record_every"],
    n_train: int = WEAK["n_train"],
    n_eval: int = WEAK["n_eval"],
    workers: int | None = None,
    figure_prefix: str = "weak",
) -> dict:
    """P-WEAK (defaults: exactly as specified; smaller values for quick checks)."""
    ctx = ctx or ProtocolContext()
    tasks = [
        (s, e, updates, record_every, n_train, n_eval) for s in seeds for e in epsilons
    ]
    ctx.progress(
        f"weak: {len(tasks)} runs of {updates} updates "
        f"(n_train {n_train}, n_eval {n_eval})"
    )
    t0 = time.perf_counter()
    runs = st.run_pool(
        weak_task,
        tasks,
        workers=workers,
        progress=ctx.progress,
        describe=lambda t, r: (
            f"seed {t[0]} eps {t[1]:g}: risk "
            f"{r['train_risk_final']:.3e}, |theta-"
            f"theta*| {r['parameter_error_final']:.3e}"
        ),
    )
    aggregate = []
    for e in epsilons:
        rs = [r for r in runs if r["epsilon"] == e]
        agg = {"epsilon": e}
        for key in (
            "lambda_min_over_eps2",
            "parameter_error_final",
            "train_risk_final",
            "eval_risk_final",
            "seconds",
            "cpu_seconds",
        ):
            vals = np.array([r[key] for r in rs])
            agg[key + "_mean"] = float(vals.mean())
            agg[key + "_std"] = float(vals.std(ddof=1)) if len(vals) > 1 else None
        agg["max_risk_increase"] = max(r["monotonicity"]["max_increase"] for r in rs)
        agg["risk_never_increased"] = all(
            r["monotonicity"]["violations"] == 0 for r in rs
        )
        aggregate.append(agg)
    out = {
        "d": WEAK["d"],
        "n_train": n_train,
        "n_eval": n_eval,
        "seeds": list(seeds),
        "epsilons": list(epsilons),
        "eta": WEAK["eta"],
        "updates": updates,
        "record_every": record_every,
        "guard": "|v| (1 + eps) < 0.95",
        "pool_seconds": time.perf_counter() - t0,
        "gd_cpu_seconds_total": float(sum(r["cpu_seconds"] for r in runs)),
        "aggregate": aggregate,
        "runs": runs,
    }
    out["figures"] = _weak_figures(ctx, runs, epsilons, figure_prefix)
    return out


@style()
def _weak_figures(ctx, runs, epsilons, prefix) -> list[str]:
    if ctx.figures_dir is None:
        return []
    paths = []
    for field, stem, ylabel in (
        ("parameter_error", "distance", r"$\|\theta - (\xi, 0)\|$"),
        ("eval_risk", "risk", r"held-out risk $R$"),
    ):
        fig, axes = figure()
        ax = axes[0, 0]
        for e, color in zip(epsilons, COLORS[1:], strict=False):
            rs = [r for r in runs if r["epsilon"] == e]
            band_plot(
                ax,
                rs[0]["updates"],
                np.stack([r[field] for r in rs]),
                label=rf"$\varepsilon = 1/{round(1 / e)}$",
                color=color,
            )
        ax.set(
            xlabel="GD updates",
            ylabel=ylabel,
            title="P-WEAK: " + seeds_caption(len({r["seed"] for r in runs})),
        )
        ax.legend(fontsize=8)
        paths.append(save(fig, ctx.figure_path(f"{prefix}-{stem}")))
    return [p for p in paths if p]


@protocol(
    "weak",
    "P-WEAK",
    "sigma_eps DEQ, d=10, eps in {1/2,1/4,1/8}, seeds "
    "1729-1733, eta 0.05, 60000 updates recorded every 100",
)
def weak(ctx: ProtocolContext, **options) -> dict:
    return run_weak(ctx, **options)
