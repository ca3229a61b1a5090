"""Shared reference flows (and their cache) of the linear DEQ gradient-flow claims.

The checks live in ``lin_gf_cons`` (LIN-GF-CONS), ``lin_gf_sphere`` (LIN-SPHERE),
``lin_gf_cond`` (LIN-COND) and ``lin_gf_rate`` (LIN-GF-RATE, LIN-GF-LIMIT): the
gradient-flow claims of the linear DEQ (R1-R4).

Reference flows (protocol P-GF, docs/theory/protocols.md) are computed once per (seed,
profile) and
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

from dynamics import gradient_descent, rates
from dynamics._result import Result
from dynamics.flows.gradient_flow import flow_ivp, gradient_field, integrate
from dynamics.flows.trajectory import Trajectory
from dynamics.instances.linear import (
    matrix_instance,
    scalar_instance,
)
from dynamics.integrators._implicit_rk import fd_jacobian
from dynamics.models.linear_deq import LinearDEQ

from ..catalogue import tol
from ..registry import Context

#: Tolerances of the claim catalogue (float64).
#: LIN-GF-CONS and LIN-SPHERE, DOP853: max_t ||C(t)-C0|| / max(1, ||C0||).
TOL_CONS = tol("LIN-GF-CONS", "dop853")
STAGE_TOL = tol("LIN-GF-CONS", "stage")
IMPLICIT_FACTOR = tol("LIN-GF-CONS", "implicit-factor")  # drift <= 10 x STAGE_TOL
TOL_COND = tol("LIN-COND", "bound")  # measured / bound - 1 >= -TOL_COND
#: Not LIN-GD-RATE's 1e-9: the DOP853 error of R(t) adds to the rounding.
TOL_GF_RATE = tol("LIN-GF-RATE", "envelope")  # R(t) <= (1 + TOL_GF_RATE) bound ...
RATE_WINDOW = 1e-12  # ... wherever R(t) > 1e-12 R0
TOL_LIMIT = tol("LIN-GF-LIMIT", "limit")  # ||theta(T) - theta_inf|| <= TOL_LIMIT ...
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
        if not f.traj.result.ok
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


def _tidy(ax) -> None:
    """No minor tick labels: on short log ranges matplotlib labels every minor tick
    in mathtext, which is slow to lay out and unreadable."""
    from matplotlib.ticker import NullFormatter

    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.yaxis.set_minor_formatter(NullFormatter())


def _logt(ax, times, values, **kw):
    """Plot against flow time on a log axis (t = 0 has no place there)."""
    times = np.asarray(times)
    keep = times > 0.0
    ax.plot(times[keep], np.asarray(values)[keep], **kw)


def gd_overlay(model, theta0, t_end: float, max_steps: int = 600):
    """GD at eta = OVERLAY_ETA_FRACTION / ||H(theta0)|| for (at most) the flow's
    horizon: small enough that GD at t = k eta tracks the flow."""
    eta = OVERLAY_ETA_FRACTION / hessian_norm(model, theta0)
    steps = int(min(max_steps, max(1, math.ceil(t_end / eta))))
    return gradient_descent(model, theta0, eta, steps), eta
