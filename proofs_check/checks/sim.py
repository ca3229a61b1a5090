"""Single-index DEQ claims (docs/theory/single_index.md, R7): SIM-GRAD, SIM-FP, SIM-HESS
(numeric part),
SIM-EPS2, SIM-NONCONS (numeric part), SIM-LOCAL-RATE, SIM-MONO, and the REPRO-WEAK
record.

Theorem checks use the smooth (C^2) activations only: sigmoid, tanh, sigma_eps, GELU
(and the identity where the claim is about the affine case); leaky ReLU is excluded
(pitfall P5). Margins: ``1 - error / tolerance`` for tolerance checks (>= 0 when met).
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np
from scipy.optimize import brentq

from dynamics.errors import WellPosednessError
from dynamics.flows.gradient_flow import integrate
from dynamics.instances.single_index import WEAK_SEEDS, local_instance, weak_data
from dynamics.integrators import RK4
from dynamics.measure import FD_STEP, central_difference, rel_error, tol_margin
from dynamics.models.activations import get_activation, sigma_eps
from dynamics.models.scalar_root import ROOT_TOL, solve_roots
from dynamics.models.single_index import SingleIndexDEQ

from .. import sim_tools as st
from ..catalogue import tol
from ..figures import COLORS, figure, save, style, theory, theory_hline
from ..protocols import ProtocolContext
from ..protocols.single_index import risk_mono, run_leg_sigmoid, run_weak
from ..registry import CheckResult, Context, Status, check, judged
from .apx import verify_written

TOL_GRAD_FD = tol("SIM-GRAD", "fd")
TOL_GRAD_AUTOGRAD = tol("SIM-GRAD", "autograd")
TOL_FP_BRENT = tol("SIM-FP", "brent")  # absolute
TOL_HESS_TORCH = tol("SIM-HESS", "torch")
TOL_HESS_FD = tol("SIM-HESS", "fd")
TOL_HESS_STAR = tol("SIM-HESS", "at-target")  # H*(theta*) against the model
TOL_NULL = tol("SIM-HESS", "null")  # relative to ||H*||
TOL_EPS2_BOUND = tol("SIM-EPS2", "bound")  # relative
EPS2_SLOPE, EPS2_BAND = 2.0, 0.15
TOL_NONCONS = tol("SIM-NONCONS", "formula")
#: SIM-LOCAL-RATE step: eta = LOCAL_ETA / lambda_max(H*), so |1 - eta lambda_max| = 0.5
#: and the slow mode (1 - eta lambda_min) sets rho_lin.
LOCAL_ETA = 1.5
SMOOTH = ("sigmoid", "tanh", "sigma_eps:0.25", "gelu")


def plt_null():
    from matplotlib.ticker import NullFormatter

    return NullFormatter()


def sim_points(
    ctx: Context,
    tag: str,
    per_activation: int,
    activations=SMOOTH,
    d_max: int = 3,
    n: int = 40,
):
    """(label, model, theta) inside each activation's guard, away from theta*."""
    rng = ctx.rng(tag)
    for name in activations:
        act = get_activation(name)
        act.require_smooth(f"{tag} (a theorem check)")  # ReLU-type: refused (P5)
        for _ in range(per_activation):
            d = int(rng.integers(1, d_max + 1))
            inst = local_instance(
                rng, act, d=d, n=n, radius=float(rng.uniform(0.2, 0.8))
            )
            theta = inst.theta0.copy()
            vmax = 0.9 / act.lipschitz if not act.increasing else 0.9 / act.sup_slope
            theta[-1] = rng.uniform(-min(vmax, 2.0), min(vmax, 2.0))
            yield f"{act.label} d={d}", inst.model, theta


def central_fd(fun, theta: np.ndarray) -> np.ndarray:
    h = FD_STEP * max(1.0, float(np.max(np.abs(theta))))
    return central_difference(fun, theta, h)


# ---------------------------------------------------------------------------- SIM-GRAD


@check("SIM-GRAD", part="main", kind="numeric")
def sim_grad(ctx: Context) -> CheckResult:
    """IFT gradient w_i = 2 (f_i - y_i) s'(s_i)/(1 - v s'(s_i)) against central FD
    (rel <= 1e-7) and reverse-mode autograd through a converged torch Newton solve
    (rel <= 1e-10); forward residual <= 1e-13."""
    from dynamics.batched.single_index import autograd_grad

    fd_err = ag_err = res_max = 0.0
    n = 0
    for _, model, theta in sim_points(ctx, "SIM-GRAD", 6 if ctx.full else 2):
        g = model.grad(theta)
        res_max = max(res_max, model.last_residual)
        fd_err = max(fd_err, rel_error(g, central_fd(model.risk, theta)))
        ag = autograd_grad(model.X, model.y, model.act, theta)
        ag_err = max(ag_err, rel_error(g, ag))
        n += 1
    return CheckResult.within(
        [(fd_err, TOL_GRAD_FD), (ag_err, TOL_GRAD_AUTOGRAD), (res_max, ROOT_TOL)],
        measured=ag_err,
        tolerance=TOL_GRAD_AUTOGRAD,
        instances=n,
        details={
            "fd_rel_error": fd_err,
            "autograd_rel_error": ag_err,
            "max_forward_residual": res_max,
            "activations": SMOOTH,
            "margin": "min of 1 - err/tol over FD (1e-7), autograd "
            "(1e-10) and residual (1e-13)",
        },
    )


# ------------------------------------------------------------------------------ SIM-FP


@check("SIM-FP", part="main", kind="property")
def sim_fp(ctx: Context) -> CheckResult:
    """Inside the guard the root is unique and the vectorised Newton solver matches
    bracketed Brent (<= 1e-12, relative to max(1, |y|)) with residual <= 1e-13
    (relative likewise); outside it the model raises,
    except for increasing sigma with v sup s' < 1 (any negative v)."""
    rng = ctx.rng("SIM-FP")
    a = np.r_[np.linspace(-6.0, 6.0, 41 if ctx.full else 21), rng.normal(0, 3, 10)]
    cases = []
    for name in (
        "sigmoid",
        "tanh",
        "sigma_eps:0.5",
        "sigma_eps:0.125",
        "gelu",
        "leaky_relu",
        "identity",
    ):
        act = get_activation(name)
        top = (1.0 / act.sup_slope) if act.increasing else 1.0 / act.lipschitz
        vs = [-0.9 * top, -0.3 * top, 0.0, 0.5 * top, 0.9 * top]
        if act.increasing:
            vs += [-3.0, -40.0]
        cases += [(act, float(v)) for v in vs]
    brent_err = res_max = 0.0
    for act, v in cases:
        sol = solve_roots(act, a, v)
        if not sol.result.ok:
            brent_err = math.inf
            continue
        lo, hi = act.bracket(a, v)
        lo, hi = np.broadcast_to(lo, a.shape), np.broadcast_to(hi, a.shape)
        ref = np.array(
            [
                brentq(
                    lambda z, ai=ai: z - act.sigma(ai + v * z),
                    lo_i,
                    hi_i,
                    xtol=1e-15,
                    rtol=8.9e-16,
                    maxiter=300,
                )
                for ai, lo_i, hi_i in zip(a, lo, hi, strict=True)
            ]
        )
        # Relative to max(1, |y|): roots reach |y| ~ 100 at v = 0.9/S, where rounding
        # alone is ~eps64 |y| / (1 - v S).
        brent_err = max(
            brent_err,
            float(np.max(np.abs(sol.y - ref))) / max(1.0, float(np.max(np.abs(ref)))),
        )
        res_max = max(
            res_max,
            float(np.max(np.abs(sol.y - act.sigma(sol.s))))
            / max(1.0, float(np.max(np.abs(ref)))),
        )
    # Outside the guard: a named error, never a root.
    outside = [
        ("tanh", 1.05),
        ("sigmoid", 4.2),
        ("gelu", 0.9),
        ("sigma_eps:0.5", 0.7),
        ("leaky_relu", 1.0),
        ("identity", 1.5),
    ]
    raised = []
    for name, v in outside:
        act = get_activation(name)
        model = SingleIndexDEQ(np.ones((3, 1)), np.zeros(3), act)
        try:
            model.solve(np.array([0.3, v]))
            raised.append(False)
        except WellPosednessError:
            raised.append(True)
    return CheckResult.within(
        [(brent_err, TOL_FP_BRENT), (res_max, ROOT_TOL)],
        also=all(raised),
        measured=brent_err,
        tolerance=TOL_FP_BRENT,
        instances=len(cases) * a.size + len(outside),
        reason="" if all(raised) else "a v outside the guard did not raise",
        details={
            "brent_max_rel_error": brent_err,
            "max_residual": res_max,
            "outside_guard_raised": dict(
                zip([f"{n} v={v}" for n, v in outside], raised, strict=True)
            ),
            "negative_v_for_increasing_sigma": [-3.0, -40.0],
        },
    )


# ---------------------------------------------------------------------------- SIM-HESS


@check("SIM-HESS", part="numeric", kind="numeric")
def sim_hess_numeric(ctx: Context) -> CheckResult:
    """Analytic Hessian against torch.func.hessian through the Newton solve (rel <=
    1e-10) and an FD Hessian (rel <= 1e-6); H* = (2/n) sum s'(z_i)^2 w_i w_i^T equals
    the Hessian at theta*, lambda_min(H*) > 0 for non-affine s, and H*(-xi, 1) = 0 for
    s = id."""
    from dynamics.batched.single_index import autograd_hessian

    torch_err = fd_err = star_err = 0.0
    lam_min = math.inf
    n = 0
    for _, model, theta in sim_points(ctx, "SIM-HESS", 4 if ctx.full else 1):
        H = model.hessian(theta)
        torch_err = max(
            torch_err,
            rel_error(H, autograd_hessian(model.X, model.y, model.act, theta)),
        )
        fd_err = max(fd_err, rel_error(H, central_fd(model.grad, theta)))
        n += 1
    rng = ctx.rng("SIM-HESS target")
    lams = {}
    for name in SMOOTH:
        inst = local_instance(rng, name, d=3, n=100)
        Hs = inst.model.hessian_at_target(inst.xi)
        star_err = max(star_err, rel_error(Hs, inst.model.hessian(inst.theta_star)))
        lams[name] = float(np.linalg.eigvalsh(Hs)[0])
        lam_min = min(lam_min, lams[name])
        n += 1
    inst = local_instance(rng, "identity", d=3, n=100)
    Hid = inst.model.hessian_at_target(inst.xi)
    null = float(np.linalg.norm(Hid @ np.r_[-inst.xi, 1.0]) / np.linalg.norm(Hid, 2))
    return CheckResult.within(
        [
            (torch_err, TOL_HESS_TORCH),
            (fd_err, TOL_HESS_FD),
            (star_err, TOL_HESS_STAR),
            (null, TOL_NULL),
        ],
        also=lam_min > 0,
        measured=torch_err,
        tolerance=TOL_HESS_TORCH,
        instances=n + 1,
        details={
            "torch_hessian_rel_error": torch_err,
            "fd_rel_error": fd_err,
            "H_star_vs_hessian_at_theta_star": star_err,
            "lambda_min_H_star": lams,
            "identity_null_residual_rel": null,
            "margin": "min of 1 - err/tol (torch 1e-10, FD 1e-6, H* 1e-12,"
            " null vector 1e-10)",
        },
    )


# ---------------------------------------------------------------------------- SIM-EPS2


def eps2_table(X: np.ndarray, xi: np.ndarray, epsilons) -> list[dict]:
    """lambda_min(H*) and its Rayleigh bound at q = (-xi, 1) for each eps."""
    rows = []
    z = X @ xi
    for eps in epsilons:
        act = sigma_eps(eps)
        model = SingleIndexDEQ(X, act.sigma(z), act)
        H = model.hessian_at_target(xi)
        lam = float(np.linalg.eigvalsh(H)[0])
        bound = (
            eps**2
            * (2.0 * np.mean(act.dsigma(z) ** 2 * np.tanh(z) ** 2))
            / (1 + xi @ xi)
        )
        # The bound is the Rayleigh quotient of H* at q = (-xi, 1), in closed form
        # (<w_i, q> = eps tanh z_i): an identity, whose rounding is that of
        # q^T H* q, a few ulps x ||H*|| ||q||^2 (cancellation down to O(eps^2)).
        q = np.r_[-xi, 1.0]
        rq = float(q @ H @ q) / float(q @ q)
        rq_tol = 64 * np.finfo(float).eps * float(np.linalg.norm(H, 2))
        rows.append(
            {
                "eps": eps,
                "lambda_min": lam,
                "bound": float(bound),
                "lambda_over_eps2": lam / eps**2,
                "rayleigh_at_q": rq,
                "rayleigh_error": abs(rq - float(bound)),
                "rayleigh_tol": rq_tol,
                "tightness": lam / float(bound),
            }
        )
    return rows


@check("SIM-EPS2", part="main", kind="numeric")
@style()
def sim_eps2(ctx: Context) -> CheckResult:
    """sigma_eps: lambda_min(H*) <= eps^2 (2/n) sum s'(z)^2 tanh^2 z / (1 + ||xi||^2);
    the least-squares slope of log lambda_min against log eps on the three smallest
    eps lies in 2 +- 0.15 (P-WEAK data generator)."""
    rng = ctx.rng("SIM-EPS2")
    seeds = [int(s) for s in rng.integers(0, 2**31, size=3 if ctx.full else 1)]
    epsilons = [2.0**-k for k in range(1, 9 if ctx.full else 7)]
    results, margins = [], []
    for seed in seeds:
        data = weak_data(seed, n_eval=1)
        rows = eps2_table(data["X"], data["xi"], epsilons)
        le = np.log([r["eps"] for r in rows])
        ll = np.log([r["lambda_min"] for r in rows])
        slope3 = float(np.polyfit(le[-3:], ll[-3:], 1)[0])
        slope_all = float(np.polyfit(le, ll, 1)[0])
        bound_slack = min((r["bound"] - r["lambda_min"]) / r["bound"] for r in rows)
        margins += [
            1.0 - abs(slope3 - EPS2_SLOPE) / EPS2_BAND,
            1.0 + bound_slack / TOL_EPS2_BOUND if bound_slack < 0 else 1.0,
            min(1.0 - r["rayleigh_error"] / r["rayleigh_tol"] for r in rows),
        ]
        results.append(
            {
                "seed": seed,
                "rows": rows,
                "slope_three_smallest": slope3,
                "slope_all": slope_all,
                "min_relative_bound_slack": bound_slack,
            }
        )
    figs = []
    if ctx.figures_dir is not None:
        fig, axes = figure()
        ax = axes[0, 0]
        for res, color in zip(results, COLORS[1:], strict=False):
            e = [r["eps"] for r in res["rows"]]
            ax.loglog(
                e,
                [r["lambda_min"] for r in res["rows"]],
                "o-",
                color=color,
                label=rf"$\lambda_{{\min}}(H^\ast)$, seed {res['seed']} "
                f"(slope {res['slope_three_smallest']:.3f})",
            )
            ax.loglog(
                e,
                [r["bound"] for r in res["rows"]],
                "s:",
                color=color,
                ms=3,
                label="Rayleigh upper bound",
            )
        e = np.array(epsilons)
        ref = results[0]["rows"][-1]
        theory(ax, e, ref["lambda_min"] * (e / ref["eps"]) ** 2, label="slope 2")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(e, [f"1/{round(1 / x)}" for x in e])
        ax.xaxis.set_minor_formatter(plt_null())
        ax.set(
            xlabel=r"$\varepsilon$",
            ylabel=r"$\lambda_{\min}(H^\ast)$",
            title=r"SIM-EPS2: $\sigma_\varepsilon(z) = z + \varepsilon \tanh z$",
        )
        ax.legend(fontsize=7)
        figs = [save(fig, ctx.figure_path("sim-eps2"))]
    margin = min(margins)
    tight = max(
        (r["tightness"], res["seed"], r["eps"])
        for res in results
        for r in res["rows"]
    )
    return judged(
        margin >= 0,
        measured=min(r["slope_three_smallest"] for r in results),
        predicted=EPS2_SLOPE,
        tolerance=EPS2_BAND,
        worst_margin=margin,
        instances=len(seeds) * len(epsilons),
        figures=figs,
        reason=(
            f"slope of log lambda_min vs log eps {slope3:.4f} (2 +- {EPS2_BAND}); "
            f"lambda_min <= Rayleigh bound, tightness lambda_min/bound "
            f"{tight[0]:.4f} (seed {tight[1]}, eps {tight[2]:g}); the bound equals "
            "q^T H* q / ||q||^2 at q = (-xi, 1) to rounding"
        ),
        details={
            "results": results,
            "epsilons": epsilons,
            "margin": "min of 1 - |slope - 2| / 0.15, the bound's slack, and "
            "1 - |q^T H* q/||q||^2 - bound| / (64 ulp ||H*||) (the bound is that "
            "Rayleigh quotient)",
            "tightness": {
                "ratio": tight[0],
                "where": f"seed {tight[1]}, eps = {tight[2]:g}",
                "measure": "lambda_min(H*) / Rayleigh bound at q = (-xi, 1); loose "
                "by nature below 1: q is the eigenvector only at eps = 0, and the "
                "first-order eigenvector correction lowers lambda_min by a fixed "
                "fraction of eps^2, so the ratio tends to a constant < 1",
            },
        },
    )


# ------------------------------------------------------------------------- SIM-NONCONS


@check("SIM-NONCONS", part="numeric", kind="numeric")
def sim_noncons_numeric(ctx: Context) -> CheckResult:
    """dQ/dt = -(2/n) sum w_i (s_i - s(s_i)) equals <grad Q, -grad R> (rel <= 1e-10);
    it is nonzero for non-affine s, zero for s = id, and (dQ/dt)/eps stays bounded as
    eps -> 0 for sigma_eps. Also integrates GF (RK4) for s = id and tanh and plots
    Q(t): conserved against not."""
    rng = ctx.rng("SIM-NONCONS")
    err, nonzero, n = 0.0, [], 0
    acts = SMOOTH + ("identity",)
    for _, model, theta in sim_points(ctx, "SIM-NONCONS", 4 if ctx.full else 2, acts):
        g = model.grad(theta)
        gradQ = 2.0 * np.r_[theta[:-1], theta[-1] - 1.0]
        ref = float(-(gradQ @ g))
        got = model.dQ_dt(theta)
        scale = float(np.linalg.norm(gradQ) * np.linalg.norm(g))
        err = max(err, abs(got - ref) / max(scale, 1e-300))
        if not model.act.affine:
            nonzero.append(abs(got) / scale)
        n += 1
    # Identity: zero at generic theta (Q is conserved, R1).
    inst = local_instance(rng, "identity", d=3, n=60, radius=0.5)
    th = inst.theta0.copy()
    th[-1] = 0.4
    g = inst.model.grad(th)
    ident = abs(inst.model.dQ_dt(th)) / (np.linalg.norm(th) * np.linalg.norm(g))
    # sigma_eps: (dQ/dt)/eps at a fixed theta and fixed inputs as eps -> 0.
    X = rng.normal(size=(80, 3))
    xi = rng.normal(size=3)
    xi /= np.linalg.norm(xi)
    th = np.r_[xi + 0.3 * rng.normal(size=3), 0.3]
    ratios = []
    for eps in [2.0**-k for k in range(1, 11)]:
        act = sigma_eps(eps)
        ratios.append(SingleIndexDEQ(X, act.sigma(X @ xi), act).dQ_dt(th) / eps)
    settle = abs(ratios[-1] - ratios[-2]) / abs(ratios[-1])
    figs, gf = _q_flow_figure(ctx, rng)
    margin = min(
        tol_margin(err, TOL_NONCONS),
        tol_margin(ident, TOL_NONCONS),
        1.0 - settle / 0.05,
    )
    ok = (
        margin >= 0
        and min(nonzero) > 1e-8
        and gf["identity_drift_ratio_h_halved"] >= 8
        and gf["tanh_over_identity"] >= 1e3
    )
    return judged(
        ok,
        measured=err,
        tolerance=TOL_NONCONS,
        worst_margin=margin,
        instances=n + 1 + len(ratios),
        figures=figs,
        details={
            "formula_rel_error": err,
            "min_normalised_dQdt_nonaffine": min(nonzero),
            "identity_normalised_dQdt": ident,
            "dQdt_over_eps": ratios,
            "last_two_relative_change": settle,
            "gradient_flow": gf,
            "margin": "min of 1 - err/1e-10 (formula, identity) and "
            "1 - (relative change of (dQ/dt)/eps over the last halving)/0.05",
        },
    )


@style()
def _q_flow_figure(ctx: Context, rng) -> tuple[list[str], dict]:
    """GF with RK4 for sigma = id (Q conserved) and tanh (Q drifts), same inputs and
    start. For sigma = id the drift is RK4's own error: it must fall ~16x when h is
    halved; for tanh it must not move and must be >= 1000x larger."""
    X = rng.normal(size=(40, 2))
    xi = np.array([0.8, -0.6])
    theta0 = np.array(
        [0.3, 0.9, -0.5]
    )  # v < 0 keeps the field's stiffness ~1/(1-v)^2 low
    out, curves = {}, {}
    for name, hs in (("identity", (0.01, 0.005)), ("tanh", (0.01,))):
        act = get_activation(name)
        model = SingleIndexDEQ(X, act.sigma(X @ xi), act)
        for h in hs:
            traj = integrate(
                model, theta0, 6.0, integrator=RK4(), h=h, record_every=round(0.1 / h)
            )
            Q = np.array([model.Q(t) for t in traj.thetas])
            out[f"{name}_rel_drift_h{h:g}"] = float(np.max(np.abs(Q - Q[0])) / Q[0])
            curves.setdefault(name, (traj.times, Q))
        out[f"{name}_final_risk"] = float(traj.risks[-1])
    out["identity_drift_ratio_h_halved"] = (
        out["identity_rel_drift_h0.01"] / out["identity_rel_drift_h0.005"]
    )
    out["tanh_over_identity"] = (
        out["tanh_rel_drift_h0.01"] / out["identity_rel_drift_h0.01"]
    )
    if ctx.figures_dir is None:
        return [], out
    fig, axes = figure()
    ax = axes[0, 0]
    for (name, (t, Q)), color in zip(curves.items(), COLORS[1:], strict=False):
        ax.plot(
            t,
            Q,
            color=color,
            lw=3 if name == "identity" else 1.5,
            label=rf"$\sigma$ = {name}: $\max |Q - Q_0|/Q_0$ = "
            f"{out[f'{name}_rel_drift_h0.01']:.1e}",
        )
    theory_hline(
        ax,
        curves["identity"][1][0],
        label=r"$Q(0)$ (R1: conserved when $\sigma = \mathrm{id}$)",
    )
    ax.set(
        xlabel="flow time $t$",
        ylabel=r"$Q = \|u\|^2 + (1 - v)^2$",
        title="gradient flow (RK4, h = 0.01)",
    )
    ax.legend(fontsize=8)
    return [save(fig, ctx.figure_path("sim-noncons-Q"))], out


# ---------------------------------------------------------------------- SIM-LOCAL-RATE


@check("SIM-LOCAL-RATE", part="main", kind="numeric")
def sim_local_rate(ctx: Context) -> CheckResult:
    """GD from near theta* converges linearly; the Theil-Sen slope of log R_k over the
    asymptotic window is within 5 % of 2 log rho_lin, rho_lin = max |1 - eta
    lambda_i(H*)|, with a CI excluding 0 (random local instances, d = 3, n = 100,
    |theta0 - theta*| = 0.05, eta = 1.5 / lambda_max(H*)); the full profile adds
    more instances, sigma_eps(1/2) and the two 40000-step P-LEG sigmoid runs."""
    rng = ctx.rng("SIM-LOCAL-RATE")
    acts = ("sigmoid", "tanh", "gelu") + (("sigma_eps:0.5",) if ctx.full else ())
    reps = 3 if ctx.full else 1
    rows, margins, curves = [], [], []
    for name in acts:
        for _ in range(reps):
            inst = local_instance(rng, name, d=3, n=100, radius=0.05)
            H = inst.model.hessian_at_target(inst.xi)
            lam = np.linalg.eigvalsh(H)
            eta = LOCAL_ETA / float(lam[-1])
            # Long enough for the distance to fall 100-fold at rate 1 - eta lambda_min,
            # plus 30 % for the window.
            steps = int(min(40000, 1.3 * math.log(st.DIST_DROP) / (eta * lam[0]) + 200))
            res = st.run_gd(
                inst.model, inst.theta0, eta, steps, theta_star=inst.theta_star
            )
            rho = st.rho_lin(H, eta)
            fit = st.local_rate(
                res["steps"],
                res["risks"],
                res["dist"],
                st.float_floor(inst.model),
                2 * math.log(rho),
            )
            ok_ci = fit["reached"] and fit["ci"][1] < 0
            mg = tol_margin(fit["rel_error"], st.RATE_RTOL) if fit["reached"] else -1.0
            margins.append(mg if ok_ci else min(mg, -1.0))
            rows.append(
                {
                    "activation": name,
                    "eta": eta,
                    "steps": steps,
                    "lambda_min": float(lam[0]),
                    "lambda_max": float(lam[-1]),
                    "rho_lin": rho,
                    **fit,
                    "final_distance": float(res["dist"][-1]),
                }
            )
            curves.append((name, res, fit))
    if ctx.full:
        # The 40000-step P-LEG sigmoid runs do reach the asymptotic window.
        for run in ("sigmoid-extended", "sigmoid-far-extended"):
            out = run_leg_sigmoid(run, ProtocolContext())
            fit = out["local_rate"]
            ok_ci = fit["reached"] and fit["ci"][1] < 0
            mg = tol_margin(fit["rel_error"], st.RATE_RTOL) if fit["reached"] else -1.0
            margins.append(mg if ok_ci else min(mg, -1.0))
            rows.append(
                {
                    "activation": f"sigmoid, P-LEG {run}",
                    "eta": out["eta"],
                    "steps": out["steps"],
                    "rho_lin": out["rho_lin"],
                    **fit,
                }
            )
    figs = _rate_figure(ctx, curves) if ctx.figures_dir is not None else []
    margin = min(margins)
    return judged(
        margin >= 0,
        measured=max(r["rel_error"] for r in rows),
        tolerance=st.RATE_RTOL,
        worst_margin=margin,
        instances=len(rows),
        figures=figs,
        details={
            "rows": rows,
            "report_only": _report_only_runs(),
            "margin": "1 - |fit/prediction - 1| / 0.05 (-1 when the "
            "window is too short or its CI includes 0)",
        },
    )


def _report_only_runs() -> str:
    return (
        "P-WEAK at eps = 1/8 and the 4000-step P-LEG sigmoid runs do not reach "
        "the asymptotic window; their fitted rates are reported by `deq-dynamics "
        "reproduce weak | leg-sigmoid`, not judged. The full profile also judges the "
        "40000-step P-LEG sigmoid runs, which do reach it"
    )


@style()
def _rate_figure(ctx, curves) -> list[str]:
    fig, axes = figure(1, len(curves), size=(3.6, 3.2))
    for ax, (name, res, fit) in zip(axes[0], curves, strict=True):
        k = res["steps"]
        ax.semilogy(
            k,
            np.where(res["risks"] > 0, res["risks"], np.nan),
            color=COLORS[1],
            label="risk",
        )
        if fit["reached"]:
            a, b = fit["window"]
            k0 = np.searchsorted(k, a)
            kk = k[(k >= a) & (k <= b)]
            ax.semilogy(
                kk,
                res["risks"][k0] * np.exp(fit["fitted_log_ratio"] * (kk - a)),
                color=COLORS[2],
                lw=2,
                alpha=0.7,
                label=f"fit {fit['fitted_log_ratio']:.4f}/step",
            )
            theory(
                ax,
                kk,
                res["risks"][k0] * np.exp(fit["predicted_log_ratio"] * (kk - a)),
                label=rf"$2 \log \rho_{{\rm lin}}$ = {fit['predicted_log_ratio']:.4f}",
            )
            ax.set_yscale("log")
        ax.set(
            xlabel="GD step",
            ylabel=r"risk $\widehat R$",
            title=rf"{name}: $\eta = 1.5 / \lambda_{{\max}}$",
        )
        ax.legend(fontsize=7)
    return [save(fig, ctx.figure_path("sim-local-rate"))]


# --------------------------------------------------------------------------- SIM-MONO


@check("SIM-MONO", part="main", kind="numeric")
def sim_mono(ctx: Context) -> CheckResult:
    """Under P-WEAK the training risk never increases: at every GD step
    R_{k+1} - R_k <= 1e-14 R_k + 10 eps64 sqrt(R_k) max|f|. Quick profile: a
    reduced-steps P-WEAK (seed 1729, 1500 updates, marked ``reduced``); full: every
    seed, the protocol's 60000 updates."""
    seeds, updates = (WEAK_SEEDS, 60_000) if ctx.full else ((1729,), 1500)
    out = run_weak(
        ProtocolContext(),
        seeds=seeds,
        updates=updates,
        n_eval=1024,
        workers=1 if not ctx.full else None,
    )
    mono = [r["monotonicity"] for r in out["runs"]]
    margin = min(m["worst_margin"] for m in mono)
    return judged(
        margin >= 0,
        measured=max(m["max_increase"] for m in mono),
        worst_margin=margin,
        instances=sum(m["checked_steps"] for m in mono),
        ran={"updates": updates, "seeds": len(seeds)},
        reason=""
        if margin >= 0
        else f"the risk increased by {max(m['max_increase'] for m in mono):.3g} "
        "beyond the rounding allowance",
        details={
            "per_run": [
                {"seed": r["seed"], "eps": r["epsilon"], **r["monotonicity"]}
                for r in out["runs"]
            ],
            "margin": "min over steps of 1 - max(increase, 0) / allowance",
            "ran": f"P-WEAK with seeds {list(seeds)} and {updates} of 60000 "
            "updates (n_eval 1024); every update checked, not only every 100th",
        },
    )


# ------------------------------------------------------------------------- REPRO-WEAK


@check("REPRO-WEAK", part="main", kind="benchmark")
def repro_weak(ctx: Context) -> CheckResult:
    """P-WEAK runs through the protocol code and writes per-eps JSON (lambda_min/eps^2,
    final parameter error, train and eval risk, monotonicity) and its two figures; the
    written values read back bit for bit. Reduced sizes (stated in the reason)."""
    updates, n_train, n_eval = (3000, 4096, 16384) if ctx.full else (200, 512, 512)
    with tempfile.TemporaryDirectory() as tmp:
        out = run_weak(
            ProtocolContext(figures_dir=ctx.figures_dir, suffix=ctx.figure_suffix),
            seeds=(1729,),
            updates=updates,
            n_train=n_train,
            n_eval=n_eval,
            workers=1,
        )
        w = verify_written(
            out,
            Path(tmp) / "weak.json",
            [
                "theta_final",
                "lambda_min_over_eps2",
                "parameter_error_final",
                "train_risk_final",
                "eval_risk_final",
                "train_risk",
                "eval_risk",
                "parameter_error",
            ],
        )
        figs = out["figures"]
        figs_ok = all(Path(f).stat().st_size > 0 for f in figs)
    ok = not w["mismatches"] and figs_ok and len(out["aggregate"]) == 3
    return CheckResult(
        Status.passed if ok else Status.failed,
        instances=len(out["runs"]),
        figures=figs,
        worst_margin=w["margin"] if ok else -1.0,
        reason="protocol ran and its JSON was written and read back at full precision "
        "(agreement with the authors' published values: part 'published'). Reduced "
        f"here: seed 1729, {updates} updates, n_train {n_train}, n_eval {n_eval} "
        "(`deq-dynamics reproduce weak` runs it in full)",
        details={"written": w, "aggregate": out["aggregate"]},
    )


# ---------------------------------------------------------------- REPRO-LEG (sigmoid)


@check("REPRO-LEG", part="sigmoid", kind="benchmark")
def repro_leg_sigmoid_runs(ctx: Context) -> CheckResult:
    """The four P-LEG sigmoid runs go through the protocol code and write per-run
    JSON (theta0, theta_final, risk trajectory, distances, Q_k, maximum step, sign-flip
    flag, Brent and FD validation) and the loss / learned / dynamics / distances
    panels; the written values read back bit for bit. Quick profile: every run cut to
    200 steps; full: the 4000-step runs in full, the 40000-step ones cut to 4000."""
    runs = ("sigmoid", "sigmoid-far", "sigmoid-extended", "sigmoid-far-extended")
    with tempfile.TemporaryDirectory() as tmp:
        pctx = ProtocolContext(figures_dir=ctx.figures_dir, suffix=ctx.figure_suffix)
        outs = [run_leg_sigmoid(r, pctx, steps=4000 if ctx.full else 200) for r in runs]
        payload = {"runs": outs}
        w = verify_written(
            payload,
            Path(tmp) / "leg-sigmoid.json",
            [
                "theta_final",
                "risk_final",
                "theta0",
                "max_step_length",
                "risks",
                "thetas",
                "distance_to_target",
                "Q",
            ],
        )
        figs = [f for o in outs for f in o["figures"]]
        figs_ok = all(Path(f).stat().st_size > 0 for f in figs)
    val = max(max(o["validation"]["fd_gradient_rel_error"] for o in outs), 0.0)
    brent = max(o["validation"]["brent_max_abs_difference"] for o in outs)
    ok = (
        not w["mismatches"] and figs_ok and val <= TOL_GRAD_FD and brent <= TOL_FP_BRENT
    )
    return CheckResult(
        Status.passed if ok else Status.failed,
        instances=len(outs),
        figures=figs,
        worst_margin=min(
            w["margin"], tol_margin(val, TOL_GRAD_FD), tol_margin(brent, TOL_FP_BRENT)
        ),
        reason="protocol code ran and its JSON was written and read back at full "
        "precision (agreement with the authors' published values: part "
        f"'published'). Reduced here to {4000 if ctx.full else 200} steps per run "
        "(`deq-dynamics reproduce leg-sigmoid[-far][-extended]` runs them in full)",
        details={
            "written": w,
            "fd_gradient_rel_error": val,
            "brent_max_abs_difference": brent,
            "finals": {
                o["run"]: {
                    "theta_final": o["theta_final"],
                    "risk_final": o["risk_final"],
                }
                for o in outs
            },
        },
    )


__all__ = ["eps2_table", "risk_mono"]
