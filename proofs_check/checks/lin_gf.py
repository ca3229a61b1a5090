"""Gradient-flow claims of the linear DEQ (R1-R4): LIN-GF-CONS, LIN-SPHERE, LIN-COND,
LIN-GF-RATE, LIN-GF-LIMIT.

Reference flows (protocol P-GF, spec §6.8) are computed once per (seed, profile) and
shared by every check here: DOP853 at rtol 1e-12, atol 1e-14 through
:func:`dynamics.flows.gradient_flow.flow_ivp`, to the first accepted step where the
risk is <= min(1e-12 R0, 1e-16), capped by the horizon at which the R4 bound itself
guarantees that level (with a readout, which has no rate bound, by a fixed horizon).
Instances (:mod:`dynamics.instances`): scalar d in {1, 5} (quick) with half the starts
near the singular point (0, 1) and some on the branch v > 1; matrix (m, d) with W0
Gaussian without a spectral-radius bound (some with rho(W0) > 1 are guaranteed) and
some starts moved to sigma_min(I - W0) = 0.05; readout instances likewise. Near the
singular point the field is stiff (pitfall P8); DOP853 copes at these tolerances, the
Gauss rules take a fixed step that is halved until the stage solve converges.

Margins follow :mod:`proofs_check.checks.lin_static`: ``1 - error / tolerance`` for a
tolerance check, the relative slack ``(lhs - rhs) / |rhs|`` for ``lhs >= rhs`` (passes
down to ``-tolerance``). Rate constants and bounds come from :mod:`dynamics.rates`
with the loss factor a parameter; LIN-COND uses C0 and the a-priori bound, never C(t).
"""

from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np
from matplotlib.ticker import NullFormatter

from dynamics import gradient_descent, rates
from dynamics._result import Result
from dynamics.flows.gradient_flow import flow_ivp, gradient_field, integrate
from dynamics.flows.trajectory import Trajectory
from dynamics.instances import (
    leg_model,
    leg_perturbation,
    matrix_instance,
    scalar_instance,
)
from dynamics.integrators import RK4, GaussLegendre, ImplicitMidpoint
from dynamics.integrators._implicit_rk import fd_jacobian
from dynamics.models.base import LOSS_FACTOR
from dynamics.models.linear_deq import LinearDEQ

from .. import plotting
from ..registry import CheckResult, Context, check, judged
from .lin_static import n_instances, rel_slack, tol_margin

#: Tolerances of spec/claims.md (float64).
TOL_CONS = 1e-9  # LIN-GF-CONS / LIN-SPHERE, DOP853: max_t ||C(t)-C0|| / max(1, ||C0||)
STAGE_TOL = 1e-14  # stage-solve tolerance of the implicit Gauss rules
IMPLICIT_FACTOR = 10.0  # implicit midpoint / Gauss-Legendre drift <= 10 x STAGE_TOL
TOL_COND = 1e-9  # LIN-COND: measured / bound - 1 >= -1e-9
TOL_RATE = 1e-8  # LIN-GF-RATE: R(t) <= (1 + 1e-8) bound ...
RATE_WINDOW = 1e-12  # ... wherever R(t) > 1e-12 R0
TOL_LIMIT = 1e-7  # LIN-GF-LIMIT: ||theta(T) - theta_inf|| <= 1e-7 ...
LIMIT_RISK = 1e-14  # ... once R(T) <= 1e-14
#: Reference flows stop at R <= STOP_REL R0 (the RATE window); scalar flows go on to
#: min(STOP_REL R0, STOP_ABS), below the LIMIT level, so LIN-GF-LIMIT applies to all.
STOP_REL, STOP_ABS = 1e-12, 1e-16
#: The tightened tolerances of the drift-ratio measurement (must lower the drift).
TIGHT_RTOL, TIGHT_ATOL = 1e-13, 1e-15
#: Matrix starts "near the singular point" get sigma_min(I - W0) = this (P-GF's own
#: floor is 0.1; smaller makes the field stiffer, pitfall P8).
NEAR_SIGMA = 0.05
#: Readout flows have no rate bound: integrate to this horizon (quick, full).
READOUT_HORIZON = (5.0, 20.0)
#: Implicit runs cover the transient of each reference flow, up to the first time its
#: risk is <= IMPLICIT_UNTIL R0 (where the field is largest and stiffest), on the
#: reference's step grid thinned to IMPLICIT_STEPS steps, refined (up to IMPLICIT_MAX)
#: while the stage solve fails; the horizon and the step count are reported.
IMPLICIT_UNTIL = 1e-6
IMPLICIT_STEPS, IMPLICIT_MAX = 100, 3200
#: GD runs for LIN-COND's GD variant: eta = GD_ETA_FRACTION / ||Hessian(theta0)||_2.
GD_ETA_FRACTION = 0.5
#: GD overlaid on the flow in the LIN-GF-RATE figures: eta = this / ||Hessian(theta0)||.
OVERLAY_ETA_FRACTION = 0.1
FAMILIES = ("scalar", "matrix", "readout")


# ------------------------------------------------------------------ reference flows


@dataclasses.dataclass(frozen=True)
class Flow:
    """A P-GF instance and its DOP853 reference trajectory.

    Attributes:
        label: a short description (shape, start).
        model, theta0: the instance.
        traj: the DOP853 (rtol 1e-12, atol 1e-14) trajectory, every accepted step.
        near_singular: whether the start was drawn near the singular set.
        rho_w0: spectral radius of W0 (|v0| for the scalar model).
    """

    label: str
    model: object
    theta0: np.ndarray
    traj: Trajectory
    near_singular: bool
    rho_w0: float

    @property
    def scalar(self) -> bool:
        return isinstance(self.model, LinearDEQ)

    @property
    def readout(self) -> bool:
        return not self.scalar and bool(self.model.readout)

    @property
    def t_end(self) -> float:
        return float(self.traj.stats["t_reached"])

    @property
    def t_transient(self) -> float:
        """First recorded time with excess risk <= IMPLICIT_UNTIL R0 (else t_end)."""
        hit = np.nonzero(self.excess() <= IMPLICIT_UNTIL * self.R0)[0]
        return float(self.traj.times[hit[0]]) if hit.size else self.t_end

    @property
    def R0(self) -> float:
        return rates.excess_risk(self.model, self.theta0)

    def excess(self) -> np.ndarray:
        return np.maximum(self.traj.risks - float(self.model.min_risk), 0.0)


def stop_risk(model, theta0) -> float:
    R0 = rates.excess_risk(model, theta0)
    level = (
        min(STOP_REL * R0, STOP_ABS) if isinstance(model, LinearDEQ) else STOP_REL * R0
    )
    return level + float(model.min_risk)


def reference_flow(
    model,
    theta0,
    horizon: float | None = None,
    *,
    rtol: float = 1e-12,
    atol: float = 1e-14,
) -> Trajectory:
    """DOP853 flow to R <= stop_risk, capped at the horizon where R4 guarantees it."""
    stop = stop_risk(model, theta0)
    if horizon is None:
        R0 = rates.excess_risk(model, theta0)
        horizon = (
            1.05
            * math.log(R0 / (stop - float(model.min_risk)))
            / rates.gf_rate(model, theta0)
        )
    return flow_ivp(model, theta0, horizon, rtol=rtol, atol=atol, stop_risk=stop)


def _spectral_radius(W) -> float:
    return float(np.max(np.abs(np.linalg.eigvals(W))))


def near_singular_start(model, theta0, sigma: float = NEAR_SIGMA) -> np.ndarray:
    """theta0 with the smallest singular value of I - W0 set to ``sigma``."""
    W, U, B = model.unpack(theta0)
    P, s, Qt = np.linalg.svd(np.eye(model.m) - W)
    s[-1] = sigma
    return model.pack(np.eye(model.m) - (P * s) @ Qt, U, B)


def _scalar_flows(rng, full: bool) -> list[Flow]:
    flows = []
    for d in (1, 2, 3, 5) if full else (1, 5):
        for i in range(10 if full else 4):
            near = i % 2 == 1
            inst = scalar_instance(rng, d, near_singular=near)
            theta0 = inst.theta0.copy()
            if i % 4 == 2 and theta0[-1] < 1.0:  # a regular start on the branch v > 1
                theta0[-1] = 2.0 - theta0[-1]
            side = "v0>1" if theta0[-1] > 1.0 else "v0<1"
            label = f"scalar d={d} {'near (0,1)' if near else 'regular'} {side} #{i}"
            flows.append(
                Flow(
                    label,
                    inst.model,
                    theta0,
                    reference_flow(inst.model, theta0),
                    near,
                    abs(float(theta0[-1])),
                )
            )
    return flows


def _matrix_flows(rng, full: bool, readout: bool) -> list[Flow]:
    if readout:
        shapes = (
            [(2, 2, 2), (2, 3, 1), (3, 3, 2), (3, 2, 3)] * 2
            if full
            else [(2, 2, 2), (3, 3, 2)]
        )
    else:
        shapes = (
            [(2, 2, 0), (2, 3, 0), (3, 3, 0), (3, 4, 0)] * 4
            if full
            else [(2, 2, 0), (2, 3, 0), (3, 3, 0)]
        )
    flows = []
    for i, (m, d, k) in enumerate(shapes):
        want_rho = i % 2 == 0  # guarantee starts with spectral radius > 1 (pitfall P1)
        for _ in range(200):
            inst = matrix_instance(rng, m, d, k=k or None, readout=readout)
            if not want_rho or _spectral_radius(inst.model.unpack(inst.theta0).W) > 1:
                break
        near = i % 2 == 1
        model = inst.model
        theta0 = near_singular_start(model, inst.theta0) if near else inst.theta0
        rho = _spectral_radius(model.unpack(theta0).W)
        horizon = READOUT_HORIZON[full] if readout else None
        label = (
            f"{'readout' if readout else 'matrix'} m={m} d={d}"
            f"{f' k={k}' if readout else ''} "
            f"{'near-singular' if near else 'regular'} rho(W0)={rho:.2f}"
        )
        flows.append(
            Flow(
                label, model, theta0, reference_flow(model, theta0, horizon), near, rho
            )
        )
    return flows


@functools.lru_cache(maxsize=8)
def flows(seed: int, profile: str, family: str) -> tuple[Flow, ...]:
    """The reference flows of ``family`` (scalar, matrix, readout), computed once."""
    ctx = Context(seed=seed, profile=profile)
    rng = ctx.rng(f"LIN-GF/{family}")
    if family == "scalar":
        return tuple(_scalar_flows(rng, ctx.full))
    return tuple(_matrix_flows(rng, ctx.full, readout=family == "readout"))


def _failed_flows(fl) -> list[str]:
    return [
        f"{f.label}: {f.traj.result.value} ({f.traj.message})"
        for f in fl
        if f.traj.result is not Result.successful
    ]


# ------------------------------------------------------------------- invariants


def invariants(model, theta) -> list[np.ndarray]:
    """Q (scalar); C (matrix); C and C' (readout): the conserved quantities of R1."""
    if isinstance(model, LinearDEQ):
        return [np.array([LinearDEQ.Q(theta)])]
    if model.readout:
        return [model.C(theta), model.C_readout(theta)]
    return [model.C(theta)]


def drift_series(model, thetas) -> np.ndarray:
    """max over invariants of ||I(t) - I(0)||_F / max(1, ||I(0)||_F) at every record."""
    ref = invariants(model, thetas[0])
    out = np.empty(len(thetas))
    for j, th in enumerate(thetas):
        out[j] = max(
            np.linalg.norm(a - b) / max(1.0, np.linalg.norm(b))
            for a, b in zip(invariants(model, th), ref, strict=True)
        )
    return out


def drift(model, traj: Trajectory) -> float:
    ok = np.all(np.isfinite(traj.thetas), axis=1)
    return float(np.max(drift_series(model, traj.thetas[ok])))


def exact_jacobian(model):
    """-Hessian of the scalar model (exact); None (finite differences) otherwise."""
    if isinstance(model, LinearDEQ):
        return lambda t, th: -model.hessian(th)
    return None


def implicit_run(flow: Flow, integrator) -> tuple[Trajectory, int]:
    """The Gauss rule on the reference flow's transient [0, t_transient].

    The step grid is DOP853's accepted steps (short where the field is stiff, P8),
    thinned to at most IMPLICIT_STEPS steps; while the stage solve fails, every step
    is halved (up to IMPLICIT_MAX steps). Returns the trajectory and the step count.
    """
    t = flow.traj.times
    grid = t[t < flow.t_transient]
    grid = np.append(
        grid[:: max(1, math.ceil(grid.size / IMPLICIT_STEPS))], flow.t_transient
    )
    while True:
        traj = integrate(
            flow.model, flow.theta0, flow.t_transient, integrator=integrator, grid=grid
        )
        if traj.result is Result.successful or 2 * grid.size > IMPLICIT_MAX:
            return traj, grid.size - 1
        mid = 0.5 * (grid[1:] + grid[:-1])
        grid = np.sort(np.concatenate([grid, mid]))


def hessian_norm(model, theta) -> float:
    """||Hessian||_2 at theta (exact for the scalar model, forward differences else)."""
    if isinstance(model, LinearDEQ):
        H = model.hessian(theta)
    else:
        field = gradient_field(model)
        H = -fd_jacobian(field, 0.0, theta, field(0.0, theta))
        H = 0.5 * (H + H.T)
    return float(np.max(np.abs(np.linalg.eigvalsh(H))))


# --------------------------------------------------------------------- LIN-GF-CONS


def _floor(x, lo=1e-17):
    return np.maximum(np.asarray(x, float), lo)


def _subset(ctx: Context, fl) -> list[Flow]:
    """Flows for the costlier runs (tightened DOP853, implicit rules).

    Full profile: the first four. Quick: for the scalar model the first regular and
    the first near-singular start; for the matrix models the flow that DOP853 found
    cheapest (fewest field evaluations per unit time), to keep CI fast.
    """
    if ctx.full:
        return list(fl[:4])
    if fl[0].scalar:
        return [
            next(f for f in fl if not f.near_singular),
            next(f for f in fl if f.near_singular),
        ]
    return [min(fl, key=lambda f: f.traj.stats["nfev"] / f.t_end)]


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


def _tidy(ax) -> None:
    """No minor tick labels: on short log ranges matplotlib labels every minor tick
    in mathtext, which is slow to lay out and unreadable."""
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.yaxis.set_minor_formatter(NullFormatter())


def _logt(ax, times, values, **kw):
    """Plot against flow time on a log axis (t = 0 has no place there)."""
    times = np.asarray(times)
    keep = times > 0.0
    ax.plot(times[keep], np.asarray(values)[keep], **kw)


def _draw_cons(fl, runs, tight_runs, family, path) -> str:
    labels = list(runs)[: 2 if family == "scalar" else 1]
    fig, axes = plotting.figure(ncols=len(labels), size=(5.2, 3.9))
    name = {
        "scalar": "|Q(t) - Q0| / max(1, Q0)",
        "matrix": "||C(t) - C0||_F / max(1, ||C0||_F)",
        "readout": "max(||C - C0||, ||C' - C0'||) (rel.)",
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
        ax.set_xlabel("flow time t")
        ax.set_ylabel(name)
        ax.set_title(f"{f.label}", fontsize=8)
    axes[0, 0].legend(fontsize=6)
    fig.suptitle(
        "LIN-GF-CONS: drift along gradient flow\n(exact law: 0; zeros drawn at 1e-17)",
        fontsize=9,
    )
    for ax in fig.axes:
        _tidy(ax)
    return plotting.save(fig, path)


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


def gd_overlay(model, theta0, t_end: float, max_steps: int = 600):
    """GD at eta = OVERLAY_ETA_FRACTION / ||H(theta0)|| for (at most) the flow's
    horizon: small enough that GD at t = k eta tracks the flow."""
    eta = OVERLAY_ETA_FRACTION / hessian_norm(model, theta0)
    steps = int(min(max_steps, max(1, math.ceil(t_end / eta))))
    return gradient_descent(model, theta0, eta, steps), eta


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
    fig, axes = plotting.figure(ncols=4, size=(3.6, 3.9))
    for ax, (model, theta0, what) in zip(axes[0], cases, strict=True):
        bs = float(model.beta_star[0])
        rr = math.sqrt(LinearDEQ.Q(theta0))
        t_end = 30.0 / rates.gf_rate(model, theta0)
        gf = flow_ivp(model, theta0, t_end, stop_risk=1e-20)
        span = 1.5 * rr
        v_line = np.linspace(1.0 - span, 1.0 + span, 2)
        ax.plot(
            bs * (1.0 - v_line),
            v_line,
            label="zero-risk line u = beta*(1-v)",
            **plotting.THEORY,
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
        ax.set_xlabel("u")
        ax.set_ylabel("v")
    axes[0, 0].legend(fontsize=6, loc="lower left")
    fig.suptitle(
        "LIN-SPHERE (d = 1): gradient flow stays on its circle about the "
        "singular point (0, 1); GD (R5) only moves outward",
        fontsize=9,
    )
    for ax in fig.axes:
        _tidy(ax)
    return plotting.save(fig, path)


# ------------------------------------------------------------------------ LIN-COND


def cond_scalar_margins(model, theta0, thetas, *, c0_scale: float = 1.0) -> dict:
    """LIN-COND (a) along ``thetas``: slacks of |1-v| >= r0/sqrt(1+||beta||^2) (an
    identity, so ~0) and of |1-v| >= delta, and whether sign(1 - v) stayed constant.

    ``c0_scale`` multiplies Q0 (a falsification hook: any value != 1 must fail).
    """
    r0 = math.sqrt(c0_scale * LinearDEQ.Q(theta0))
    dlt = rates.cond_lower_bound(model, theta0) * math.sqrt(c0_scale)
    gaps = 1.0 - thetas[:, -1]
    beta2 = np.sum((thetas[:, :-1] / gaps[:, None]) ** 2, axis=1)
    identity = float(np.min(np.abs(gaps) / (r0 / np.sqrt(1.0 + beta2)) - 1.0))
    apriori = float(np.min(np.abs(gaps) / dlt - 1.0))
    return {
        "identity_slack": identity,
        "apriori_slack": apriori,
        "sign_constant": bool(np.all(np.sign(gaps) == np.sign(gaps[0]))),
        "min_gap": float(np.min(np.abs(gaps))),
        "bound": dlt,
    }


def cond_matrix_margins(model, theta0, thetas, *, c0_scale: float = 1.0) -> dict:
    """LIN-COND (b) along ``thetas``: slacks of sigma_min(A)^2 >= lambda_min(C0) /
    (1 + ||M||_2^2) and >= lambda_min(C0) / (1 + M_bar^2), and of
    sigma_max(A)^2 <= lambda_max(C0). Uses C0 and M_bar, never C(t)."""
    eig = np.linalg.eigvalsh(model.C(theta0))
    lmin, lmax = c0_scale * float(eig[0]), c0_scale * float(eig[-1])
    floor = rates.cond_lower_bound(model, theta0) * c0_scale
    mid = apr = upper = math.inf
    smin2 = []
    for th in thetas:
        A = np.eye(model.m) - model.unpack(th).W
        s = np.linalg.svd(A, compute_uv=False)
        M = np.linalg.solve(A, model.unpack(th).U)
        m2 = float(np.linalg.norm(M, 2)) ** 2
        smin2.append(s[-1] ** 2)
        mid = min(mid, s[-1] ** 2 / (lmin / (1.0 + m2)) - 1.0)
        apr = min(apr, s[-1] ** 2 / floor - 1.0)
        upper = min(upper, lmax / s[0] ** 2 - 1.0)
    return {
        "middle_slack": mid,
        "apriori_slack": apr,
        "upper_slack": upper,
        "min_sigma_min_sq": float(np.min(smin2)),
        "bound": floor,
    }


def _cond_gf(ctx: Context, family: str, c0_scale: float = 1.0) -> CheckResult:
    fl = flows(ctx.seed, ctx.profile, family)
    per = []
    for f in fl:
        th = f.traj.thetas[np.all(np.isfinite(f.traj.thetas), axis=1)]
        fn = cond_scalar_margins if f.scalar else cond_matrix_margins
        per.append(
            {"instance": f.label, **fn(f.model, f.theta0, th, c0_scale=c0_scale)}
        )
    keys = (
        ("identity_slack", "apriori_slack")
        if family == "scalar"
        else ("middle_slack", "apriori_slack", "upper_slack")
    )
    worst = {k: min(p[k] for p in per) for k in keys}
    margin = min(worst.values())
    sign_ok = all(p.get("sign_constant", True) for p in per)
    bad = _failed_flows(fl)
    figures = []
    path = ctx.figure_path(f"lin_cond_{family}")
    if path is not None:
        figures.append(_draw_cond(fl, per, family, path))
    ok = margin >= -TOL_COND and sign_ok and not bad
    reasons = bad + ([] if sign_ok else ["sign(1 - v) changed along gradient flow"])
    if margin < -TOL_COND:
        reasons.append(f"bound violated: worst slack {worst}")
    return judged(
        ok,
        measured=float(
            min(
                p["min_gap" if f.scalar else "min_sigma_min_sq"]
                for p, f in zip(per, fl, strict=True)
            )
        ),
        predicted=float(min(p["bound"] for p in per)),
        worst_margin=margin,
        tolerance=TOL_COND,
        instances=len(fl),
        reason="; ".join(reasons)
        or (
            f"worst slacks {', '.join(f'{k} {v:.3g}' for k, v in worst.items())} "
            "(C0 and the a-priori bound; measured = min over t and instances of "
            + ("|1 - v(t)|" if family == "scalar" else "sigma_min(I - W(t))^2")
            + ", predicted = smallest bound)"
        ),
        details={"worst": worst, "c0_scale": c0_scale, "per_instance": per},
        figures=figures,
    )


@check("LIN-COND", "scalar", "numeric")
def lin_cond_scalar(ctx: Context) -> CheckResult:
    """LIN-COND (a) (R3): |1-v(t)| = r0/sqrt(1+||beta(t)||^2) >= r0/sqrt(1+bbar^2)."""
    return _cond_gf(ctx, "scalar")


@check("LIN-COND", "matrix", "numeric")
def lin_cond_matrix(ctx: Context) -> CheckResult:
    """LIN-COND (b) (R3): sigma_min(I-W(t))^2 >= lambda_min(C0)/(1+M_bar^2)."""
    return _cond_gf(ctx, "matrix")


def _cond_gd(ctx: Context, family: str) -> CheckResult:
    """The lower bounds along GD runs whose risk never increased (R3 with R5)."""
    fl = flows(ctx.seed, ctx.profile, family)
    steps = n_instances(ctx, 150, 1000)
    per = []
    monotone_runs = 0
    for f in fl:
        eta = GD_ETA_FRACTION / hessian_norm(f.model, f.theta0)
        gd = gradient_descent(f.model, f.theta0, eta, steps)
        risks = gd.risks
        inc = np.nonzero(~(risks[1:] <= risks[:-1]))[0]
        k = int(inc[0]) + 1 if inc.size else len(risks)  # iterates 0..k-1 qualify
        monotone_runs += not inc.size
        th = gd.thetas[:k]
        if f.scalar:
            res = cond_scalar_margins(f.model, f.theta0, th)
            res.pop("identity_slack")  # along GD Q grows: the identity is not claimed
        else:
            res = cond_matrix_margins(f.model, f.theta0, th)
            res.pop("middle_slack")
            res.pop("upper_slack")  # C_k >= C0 grows under GD: no upper bound claimed
        per.append(
            {
                "instance": f.label,
                "eta": eta,
                "steps_checked": k - 1,
                "risk_never_increased": not inc.size,
                **res,
            }
        )
    margin = min(p["apriori_slack"] for p in per)
    return judged(
        margin >= -TOL_COND,
        measured=margin,
        predicted=0.0,
        worst_margin=margin,
        tolerance=TOL_COND,
        instances=len(per),
        reason=(
            f"a-priori lower bound along GD (eta = {GD_ETA_FRACTION}/||H0||, "
            f"{steps} steps; {monotone_runs}/{len(per)} runs with risk never "
            f"increasing, the others checked up to the first increase): worst "
            f"slack {margin:.3g}"
        ),
        details={"per_instance": per, "monotone_runs": monotone_runs},
    )


@check("LIN-COND", "scalar-gd", "numeric")
def lin_cond_scalar_gd(ctx: Context) -> CheckResult:
    """LIN-COND (R3, R5): |1-v_k| >= delta along GD while the risk does not increase."""
    return _cond_gd(ctx, "scalar")


@check("LIN-COND", "matrix-gd", "numeric")
def lin_cond_matrix_gd(ctx: Context) -> CheckResult:
    """LIN-COND (R3, R5): sigma_min(I-W_k)^2 >= lambda_min(C0)/(1+M_bar^2) along GD."""
    return _cond_gd(ctx, "matrix")


def _draw_cond(fl, per, family, path) -> str:
    picks = list(zip(fl, per, strict=True))[:4]
    fig, axes = plotting.figure(ncols=len(picks), size=(3.6, 3.4))
    for i, (ax, (f, p)) in enumerate(zip(axes[0], picks, strict=True)):
        th = f.traj.thetas[np.all(np.isfinite(f.traj.thetas), axis=1)]
        t = f.traj.times[: len(th)]
        if family == "scalar":
            y, b = np.abs(1.0 - th[:, -1]), p["bound"]
        else:
            lmin = float(np.linalg.eigvalsh(f.model.C(f.theta0))[0])
            y, mid = [], []
            for x in th:
                A = np.eye(f.model.m) - f.model.unpack(x).W
                y.append(np.linalg.svd(A, compute_uv=False)[-1])
                M = np.linalg.solve(A, f.model.unpack(x).U)
                mid.append(math.sqrt(lmin / (1.0 + np.linalg.norm(M, 2) ** 2)))
            b = math.sqrt(p["bound"])
            _logt(
                ax,
                t,
                mid,
                color="black",
                linestyle=":",
                linewidth=1.2,
                label="sqrt(lambda_min(C0) / (1 + ||M(t)||^2))",
            )
        _logt(
            ax,
            t,
            y,
            color=f"C{i}",
            linewidth=2.0,
            label="|1 - v(t)|" if family == "scalar" else "sigma_min(I - W(t))",
        )
        ax.axhline(b, label="a-priori bound (R3)", **plotting.THEORY)
        ax.set_xscale("log")
        ax.set_ylim(bottom=0.0)
        ax.set_xlabel("flow time t")
        ax.set_title(f.label.replace("scalar ", "").replace("matrix ", ""), fontsize=7)
        ax.legend(fontsize=6, loc="lower right")
    fig.suptitle(
        "LIN-COND: "
        + (
            "|1 - v(t)| >= r0 / sqrt(1 + beta_bar^2)"
            if family == "scalar"
            else "sigma_min(I - W(t))^2 >= lambda_min(C0) / (1 + M_bar^2)"
        )
        + " along gradient flow",
        fontsize=9,
    )
    for ax in fig.axes:
        _tidy(ax)
    return plotting.save(fig, path)


# --------------------------------------------------------------------- LIN-GF-RATE


def gf_rate_margins(flow: Flow, *, loss_factor: float = LOSS_FACTOR) -> dict:
    """Pointwise slack 1 - R(t)/bound(t) where R(t) > RATE_WINDOW R0, and the fitted
    exponent over that window divided by the bound exponent (R4)."""
    m, th0 = flow.model, flow.theta0
    kappa = rates.gf_rate(m, th0, loss_factor)
    R0 = flow.R0
    ex = flow.excess()
    ok = np.isfinite(ex) & (ex > RATE_WINDOW * R0)
    t = flow.traj.times[ok]
    env = R0 * np.exp(-kappa * t)
    slack = float(np.min(1.0 - ex[ok] / env))
    fit = math.nan
    if np.count_nonzero(ok) >= 3 and t[-1] > t[0]:
        fit = float(-np.polyfit(t, np.log(ex[ok]), 1)[0]) / kappa
    return {
        "instance": flow.label,
        "slack": slack,
        "fitted_over_bound": fit,
        "kappa_bound": kappa,
        "points": int(np.count_nonzero(ok)),
    }


def _rate(ctx: Context, family: str, loss_factor: float = LOSS_FACTOR) -> CheckResult:
    fl = flows(ctx.seed, ctx.profile, family)
    per = [gf_rate_margins(f, loss_factor=loss_factor) for f in fl]
    margin = min(p["slack"] for p in per)
    fits = np.array([p["fitted_over_bound"] for p in per])
    bad = _failed_flows(fl)
    figures = []
    path = ctx.figure_path(f"lin_gf_rate_{family}")
    if path is not None:
        figures.append(_draw_rate(fl, family, loss_factor, path))
    return judged(
        margin >= -TOL_RATE and not bad,
        measured=float(np.nanmin(fits)),
        predicted=1.0,
        worst_margin=margin,
        tolerance=TOL_RATE,
        instances=len(fl),
        reason="; ".join(bad)
        or (
            f"R(t) <= bound with worst slack {margin:.3g}; fitted / bound exponent: "
            f"min {np.nanmin(fits):.3g}, median {np.nanmedian(fits):.3g} "
            "(measured = min fitted/bound exponent)"
        ),
        details={
            "loss_factor": loss_factor,
            "window": RATE_WINDOW,
            "fitted_over_bound": {
                "min": float(np.nanmin(fits)),
                "median": float(np.nanmedian(fits)),
                "max": float(np.nanmax(fits)),
            },
            "per_instance": per,
        },
        figures=figures,
    )


@check("LIN-GF-RATE", "scalar", "numeric")
def lin_gf_rate_scalar(ctx: Context) -> CheckResult:
    """LIN-GF-RATE (R4): R(t) <= R0 exp(-4 lambda t / Q0) along gradient flow."""
    return _rate(ctx, "scalar")


@check("LIN-GF-RATE", "matrix", "numeric")
def lin_gf_rate_matrix(ctx: Context) -> CheckResult:
    """LIN-GF-RATE (R4): R(t) <= R0 exp(-4 lambda t / lambda_max(C0)) (no readout)."""
    return _rate(ctx, "matrix")


def _draw_rate(fl, family, loss_factor, path) -> str:
    fig, axes = plotting.figure(size=(5.6, 4.0))
    ax = axes[0, 0]
    xmax, lowest = 0.0, 1.0
    for i, f in enumerate(fl[:4]):
        kappa = rates.gf_rate(f.model, f.theta0, loss_factor)
        ex = f.excess()
        keep = np.isfinite(ex) & (ex > 0)
        ax.plot(
            kappa * f.traj.times[keep], ex[keep] / f.R0, color=f"C{i}", label=f.label
        )
        lowest = min(lowest, float(np.min(ex[keep] / f.R0)))
        gd, eta = gd_overlay(f.model, f.theta0, f.t_end)
        gex = np.maximum(gd.risks - float(f.model.min_risk), 0.0) / f.R0
        every = max(1, len(gex) // 30)
        ok = np.isfinite(gex) & (gex > 0)
        idx = np.nonzero(ok)[0][::every]
        ax.plot(
            kappa * gd.times[idx],
            gex[idx],
            "o",
            color=f"C{i}",
            markersize=3,
            markerfacecolor="none",
        )
        xmax = max(xmax, kappa * f.t_end)
    x = np.linspace(0.0, xmax, 200)
    ax.plot(x, np.exp(-x), label="R4 envelope R0 exp(-kappa t)", **plotting.THEORY)
    ax.plot(
        [],
        [],
        "o",
        color="grey",
        markerfacecolor="none",
        label=f"GD at t = k eta (eta = {OVERLAY_ETA_FRACTION}/||H0||)",
    )
    ax.set_yscale("log")
    ax.set_ylim(max(1e-20, 0.1 * lowest), 3.0)
    ax.set_xlabel(
        "kappa t,  kappa = 4 lambda / "
        + ("Q0" if family == "scalar" else "lambda_max(C0)")
    )
    ax.set_ylabel("(R(t) - R_min) / R0")
    ax.set_title(f"LIN-GF-RATE ({family}): risk along gradient flow", fontsize=9)
    ax.legend(fontsize=6)
    for ax in fig.axes:
        _tidy(ax)
    return plotting.save(fig, path)


# -------------------------------------------------------------------- LIN-GF-LIMIT


@check("LIN-GF-LIMIT", "scalar", "numeric")
def lin_gf_limit_scalar(ctx: Context) -> CheckResult:
    """LIN-GF-LIMIT (R4): theta(t) -> (beta* (1-v_inf), v_inf), 1 - v_inf =
    sign(1-v0) r0 / sqrt(1 + ||beta*||^2)."""
    fl = flows(ctx.seed, ctx.profile, "scalar")
    per, skipped = [], []
    for f in fl:
        R_T = float(f.traj.risks[-1])
        if not (np.isfinite(R_T) and R_T <= LIMIT_RISK):
            skipped.append(f"{f.label}: R(T) = {R_T:.3g}")
            continue
        err = float(np.linalg.norm(f.traj.final - rates.gf_limit(f.model, f.theta0)))
        per.append({"instance": f.label, "R_T": R_T, "error": err, "T": f.t_end})
    if not per:
        return judged(
            False,
            instances=0,
            tolerance=TOL_LIMIT,
            reason=f"no flow reached R(T) <= {LIMIT_RISK:g}: {skipped}",
        )
    worst = max(p["error"] for p in per)
    return judged(
        worst <= TOL_LIMIT,
        measured=worst,
        predicted=0.0,
        worst_margin=tol_margin(worst, TOL_LIMIT),
        tolerance=TOL_LIMIT,
        instances=len(per),
        reason=(
            f"max ||theta(T) - theta_inf|| = {worst:.3g} over {len(per)} flows with "
            f"R(T) <= {LIMIT_RISK:g}" + (f"; not reached: {skipped}" if skipped else "")
        ),
        details={"per_instance": per, "not_reached": skipped},
    )
