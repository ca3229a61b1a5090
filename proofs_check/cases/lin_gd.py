"""Gradient-descent cases of the linear DEQ (R5, R6): LIN-GD-DRIFT, LIN-GD-MONO,
LIN-GD-CUMDRIFT, LIN-GD-RATE, LIN-GD-STEP, REPRO-LEG: shared constants, run analysis
and case streams.

Every run goes through the project's GD driver (:func:`dynamics.gradient_descent`);
the exact gradient of each step is recorded as it is used. Margins follow
:mod:`proofs_check.checks.lin_static`: ``1 - error / tolerance`` for identities and
tolerance checks, the relative slack of the inequality for bounds. The constants of
R6 come from :mod:`dynamics.rates`, with the loss factor a parameter.

The run analysis (:func:`analyse_gd`) and the P-SWEEP constants are shared with the
P-LEG / P-SWEEP / P-SRC protocols (:mod:`proofs_check.protocols.leg_linear`,
:mod:`proofs_check.protocols.src`) and the figure panels
(:mod:`proofs_check.figures.lin_gd`).

The checks live in ``lin_gd_drift`` (LIN-GD-DRIFT, LIN-GD-MONO, LIN-GD-CUMDRIFT),
``lin_gd_rate`` (LIN-GD-RATE), ``lin_gd_step`` (LIN-GD-STEP) and ``repro_leg``
(REPRO-LEG) of :mod:`proofs_check.checks`.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from dynamics import gradient_descent
from dynamics.measure import rel_slack
from dynamics.models.base import LOSS_FACTOR
from dynamics.models.linear_deq import LinearDEQ

from ..catalogue import tol
from ..registry import Context
from .lin import matrix_cases, n_instances, scalar_cases

TOL_DRIFT = tol("LIN-GD-DRIFT", "drift")  # per step, relative to max(Q, 1) or ||C||
TOL_MONO = tol("LIN-GD-MONO", "mono")
TOL_CUMDRIFT = tol("LIN-GD-CUMDRIFT", "cumdrift")  # relative
#: Not LIN-GF-RATE's 1e-8: GD iterates carry rounding only, no integrator error.
TOL_GD_RATE = tol("LIN-GD-RATE", "envelope")  # R_k <= (1 + TOL_GD_RATE) bound
RATE_FLOOR = 1e-14  # LIN-GD-RATE is judged while R_k > 1e-14 R_0 (float floor)
#: P-SWEEP protocol constants (docs/theory/protocols.md) and the LIN-GD-STEP failure
#: criterion.
SWEEP_SEEDS = tuple(range(20))
SWEEP_ETA = 0.01
SWEEP_STEPS = 200
#: Steps of each LIN-GD-STEP control run at eta = 1/ell (quick; full uses 10x). By
#: 1000 steps the control runs have moved well towards the zero-risk line (some reach
#: the float floor), so "no crossing" is not trivially true.
CONTROL_STEPS = 1000
#: R6 (a): with eta <= 1/ell, |1 - v_k| >= delta; judged with this relative slack.
TOL_DELTA = tol("LIN-GD-STEP", "delta")
FAILURE_RISK = 1e-3


# ------------------------------------------------------------------- run analysis


@dataclasses.dataclass(frozen=True)
class GDRun:
    """A GD run with the exact gradient of every step taken.

    Attributes:
        model, theta0, eta: what was run.
        traj: the driver's :class:`dynamics.Trajectory`.
        thetas: (K+1, P) iterates; the last one may be the point where the run
            stopped (singular equilibrium), whose risk is NaN.
        risks: (K+1,) risks (NaN where undefined).
        grads: (K, P) the gradient used at step k (theta_{k+1} = theta_k - eta g_k).
        descent: (K,) whether R_{k+1} <= R_k - (eta/2) ||g_k||^2 (False when R_{k+1}
            is undefined).
        prefix: the number of leading steps where the descent inequality held.
        crossed: whether sign(1 - v) (scalar) ever differed from its initial value.
    """

    model: object
    theta0: np.ndarray
    eta: float
    traj: object
    thetas: np.ndarray
    risks: np.ndarray
    grads: np.ndarray
    descent: np.ndarray
    prefix: int
    crossed: bool

    @property
    def ok(self) -> bool:
        return self.traj.result.ok

    @property
    def Q(self) -> np.ndarray:
        """||u||^2 + (1 - v)^2 (scalar) or tr C (matrix) at every iterate."""
        if isinstance(self.model, LinearDEQ):
            return np.array([LinearDEQ.Q(t) for t in self.thetas])
        return np.array([np.trace(self.model.C(t)) for t in self.thetas])


#: Overflow in a diverging run (large eta) is expected: the driver then stops with
#: Result.nonfinite, and steps whose quantities overflowed are not judged (reported).
_QUIET = np.errstate(over="ignore", invalid="ignore")


@_QUIET
def analyse_gd(model, theta0, eta: float, steps: int) -> GDRun:
    """Run GD with the driver and keep every gradient it used (no recomputation)."""
    grads: list[np.ndarray] = []

    def direction(theta):
        r, g = model.value_and_grad(theta)
        grads.append(g)
        return r, g

    traj = gradient_descent(model, theta0, eta, steps, direction=direction)
    thetas, risks = traj.thetas, traj.risks
    K = len(thetas) - 1
    G = np.array(grads[:K]).reshape(K, model.n_params)
    gsq = np.einsum("ij,ij->i", G, G)
    desc = risks[1:] <= risks[:-1] - 0.5 * eta * gsq
    desc = np.where(np.isfinite(risks[1:]), desc, False)
    prefix = int(np.argmin(desc)) if not desc.all() else K
    crossed = False
    if isinstance(model, LinearDEQ):
        gaps = 1.0 - thetas[:, -1]
        crossed = bool(np.any(np.sign(gaps) != np.sign(gaps[0])))
    return GDRun(
        model,
        np.asarray(theta0, float),
        float(eta),
        traj,
        thetas,
        risks,
        G,
        desc,
        prefix,
        crossed,
    )


def _blocks(model, g):
    """Gradient blocks (G_W, G_U, G_B) of a matrix model."""
    return model.unpack(g)


@_QUIET
def drift_residuals(run: GDRun) -> np.ndarray:
    """Per-step LIN-GD-DRIFT residuals, normalised as claims.md says (R5).

    Scalar: |Q_{k+1} - Q_k - eta^2 ||g_k||^2| / max(Q_k, Q_{k+1}, 1). Matrix: the
    largest entry of C_{k+1} - C_k - eta^2 (G_W G_W^T + G_U G_U^T) over
    max(||C_k||, ||C_{k+1}||, 1), and likewise for C' with a readout. The scale uses
    Q_{k+1} too because a large step's rounding error is relative to the new Q.
    """
    m, eta = run.model, run.eta
    out = []
    for k, g in enumerate(run.grads):
        a, b = run.thetas[k], run.thetas[k + 1]
        if isinstance(m, LinearDEQ):
            qa, qb = LinearDEQ.Q(a), LinearDEQ.Q(b)
            out.append(abs(qb - qa - eta**2 * (g @ g)) / max(qa, qb, 1.0))
            continue
        GW, GU, GB = _blocks(m, g)
        ca, cb = m.C(a), m.C(b)
        res = cb - ca - eta**2 * (GW @ GW.T + GU @ GU.T)
        worst = np.abs(res).max() / max(np.linalg.norm(ca), np.linalg.norm(cb), 1.0)
        if m.readout:
            pa, pb = m.C_readout(a), m.C_readout(b)
            res2 = pb - pa - eta**2 * (GW.T @ GW + GB.T @ GB)
            worst = max(
                worst,
                np.abs(res2).max() / max(np.linalg.norm(pa), np.linalg.norm(pb), 1.0),
            )
        out.append(worst)
    return np.array(out)


@_QUIET
def mono_violations(run: GDRun) -> np.ndarray:
    """Per-step LIN-GD-MONO violation (>= 0; 0 when monotone), normalised (R5).

    Scalar: max(0, -(dist_{k+1} - dist_k)) / max(1, dist_k, dist_{k+1}),
    dist = ||theta - (0,1)||. Matrix: max(0, -lambda_min(C_{k+1} - C_k)) /
    max(||C_k||, ||C_{k+1}||) (and C' with a readout). claims.md normalises by the
    old value; the new one is included because after a large (diverging) step the
    rounding error of C_{k+1} - C_k is relative to ||C_{k+1}||.
    """
    m = run.model
    out = []
    for k in range(len(run.thetas) - 1):
        a, b = run.thetas[k], run.thetas[k + 1]
        if isinstance(m, LinearDEQ):
            da, db = math.sqrt(LinearDEQ.Q(a)), math.sqrt(LinearDEQ.Q(b))
            out.append(max(0.0, da - db) / max(1.0, da, db))
            continue
        v = 0.0
        for f in (m.C, m.C_readout) if m.readout else (m.C,):
            ca, cb = f(a), f(b)
            scale = max(np.linalg.norm(ca), np.linalg.norm(cb))
            v = max(v, max(0.0, -np.linalg.eigvalsh(cb - ca)[0]) / scale)
        out.append(v)
    return np.array(out)


@_QUIET
def cumdrift_on_prefix(run: GDRun) -> dict:
    """LIN-GD-CUMDRIFT on the steps where the descent inequality held so far (R5).

    Checks Q_0 <= Q_k <= Q_0 + 2 eta (R_0 - R_k) <= Q_0 + 2 eta R_0 for k <= prefix
    (matrix: tr(C_k - C_0) <= 2 eta (R_0 - R_k), and the C' analogue with a readout).
    Returns the worst normalised violation and how much of the bound was used.
    """
    m, eta, P = run.model, run.eta, run.prefix
    R = run.risks
    worst, used = 0.0, 0.0
    series = [run.Q]
    if not isinstance(m, LinearDEQ) and m.readout:
        series.append(np.array([np.trace(m.C_readout(t)) for t in run.thetas]))
    for q in series:
        for k in range(1, P + 1):
            if not np.isfinite(q[k]):
                break
            scale = max(q[k], 1.0)
            bound = q[0] + 2.0 * eta * (R[0] - R[k])
            worst = max(
                worst,
                (q[0] - q[k]) / scale,
                (q[k] - bound) / scale,
                (bound - (q[0] + 2.0 * eta * R[0])) / scale,
            )
            if R[0] > R[k]:
                used = max(used, (q[k] - q[0]) / (2.0 * eta * (R[0] - R[k])))
    return {"violation": max(worst, 0.0), "bound_used": used}


def rate_slack(run: GDRun, q: float, upto: int | None = None) -> tuple[float, int]:
    """min_k of the relative slack of R_k - R_min <= (1 + TOL_GD_RATE) q^k R_0 (R6).

    Judged on k <= ``upto`` (default: all steps) while R_k - R_min > RATE_FLOOR R_0.
    Returns (worst slack of ``measured <= bound``, number of steps judged).
    """
    m = run.model
    exc = run.risks - m.min_risk
    R0 = exc[0]
    last = len(exc) - 1 if upto is None else upto
    worst, count = math.inf, 0
    for k in range(1, last + 1):
        if not (np.isfinite(exc[k]) and exc[k] > RATE_FLOOR * R0):
            break
        bound = R0 * q**k
        worst = min(worst, rel_slack(bound * (1.0 + TOL_GD_RATE), exc[k]))
        count += 1
    return worst, count


# ----------------------------------------------------------------- case streams


def eta_grid(model, theta0, rng) -> float:
    """A step size around the local curvature scale
    sigma_min(A0)^2 / (2 Lam (1 + ||M0||^2)), times a random factor in [0.1, 10]: some
    runs satisfy the descent inequality throughout, some do not (pitfall P3)."""
    if isinstance(model, LinearDEQ):
        s2, mm = model.one_minus_v(theta0) ** 2, float(np.sum(model.beta(theta0) ** 2))
    else:
        s2 = float(np.linalg.svd(model.A(theta0), compute_uv=False)[-1]) ** 2
        mm = float(np.linalg.norm(model.end_to_end(theta0), 2)) ** 2
    ref = s2 / (LOSS_FACTOR * model.lambda_max * (1.0 + mm))
    return ref * 10.0 ** rng.uniform(-1.0, 1.0)


def gd_cases(ctx: Context, tag: str, quick: int, full: int, readout=None):
    """(label, GDRun) for scalar (half near (0,1)) and matrix instances, eta varied."""
    rng = ctx.rng(tag)
    steps = 120 if ctx.full else 40
    count = n_instances(ctx, quick, full)
    for label, model, th in [
        *scalar_cases(rng, count),
        *matrix_cases(rng, count, readout=readout),
    ]:
        eta = eta_grid(model, th, rng)
        yield f"{label} eta={eta:.2e}", analyse_gd(model, th, eta, steps)
