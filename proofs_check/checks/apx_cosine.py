"""APX-COSINE (docs/theory/approximate.md, "Cosine with the exact gradient"): the
cosine of each approximate gradient with the exact one on the scalar-state DEQs.

- Scalar linear DEQ: the approximate direction is c(v) x the exact gradient, so its
  cosine is sign c(v) exactly and its norm ratio |c(v)|.
- Single-index DEQ: the direction is sum_i c(J_i) e_i, with e_i the exact per-sample
  terms and J_i = v sigma'(s_i). It is parallel to the gradient when every J_i is the
  same: at v = 0 (cosine 1 for every method, all have c(0) > 0). Elsewhere the
  cosine is bounded below by the spread of c over the samples (the bound below) and is
  in general strictly below 1; the check measures it and requires a point where it is.

Margins: ``1 - error / tolerance`` for the identities; for the bound, the relative
slack of ``sign(c_mid) cos >= sqrt(1 - rho^2)``; for the sharpness part, how far the
smallest single-index cosine sits below 1 - 1e-6 (relative).
"""

from __future__ import annotations

import math

import numpy as np

from dynamics.gradients import approx_direction
from dynamics.instances.single_index import local_instance
from dynamics.measure import rel_norm, tol_margin
from dynamics.models.base import LOSS_FACTOR

from ..catalogue import tol
from ..registry import CheckResult, Context, check, judged
from .apx import ALL_METHODS, linear_points

TOL_IDENTITY = tol("APX-COSINE", "identity")
TOL_BOUND = tol("APX-COSINE", "bound")
#: A single-index cosine at least this far below 1 shows that the +-1 statement
#: stops at v = 0 (1e-6 is 1e4 x the identity tolerance: no rounding artefact).
STRICT_GAP = 1e-6
#: v values of the single-index grid: both signs, inside every activation's
#: well-posedness range (|v| max sigma' < 1; GELU's max slope is about 1.13).
SIM_V = (-0.6, -0.3, -0.1, 0.0, 0.1, 0.3, 0.6)
#: Linear grid points added to the random ones: v < -1 makes c(v) < 0 for even
#: Neumann (cosine -1), v > 1 makes it negative for JFB.
LINEAR_V = (-2.0, -1.5, -0.5, 0.0, 0.5, 1.5, 2.5)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """<a, b> / (||a|| ||b||)."""
    return float(a @ b) / float(np.linalg.norm(a) * np.linalg.norm(b))


def per_sample_terms(model, theta) -> tuple[np.ndarray, np.ndarray]:
    """(e, J): the exact gradient's per-sample terms e_i (rows, summing to grad R)
    and J_i = v sigma'(s_i), from the model's own root solve."""
    sol = model.solve(theta)
    v = float(theta[-1])
    J = v * sol.slope
    w = LOSS_FACTOR * (sol.y - model.y) * sol.slope / (1.0 - J) / model.n
    return w[:, None] * np.c_[model.X, sol.y], J


def cosine_bound(c: np.ndarray, e: np.ndarray, g: np.ndarray) -> tuple[float, float]:
    """(rho, c_mid): with d = sum_i c_i e_i and g = sum_i e_i, write d = c_mid g + r,
    r = sum_i (c_i - c_mid) e_i, ||r|| <= delta S (delta = half the spread of c,
    S = sum ||e_i||). Then sin angle(d, g) <= rho = delta S / (|c_mid| ||g|| -
    delta S) and sign <d, g> = sign c_mid whenever rho < 1 (rho = inf otherwise)."""
    c_mid = 0.5 * (float(c.max()) + float(c.min()))
    delta_s = (
        0.5 * (float(c.max()) - float(c.min())) * float(np.linalg.norm(e, axis=1).sum())
    )
    den = abs(c_mid) * float(np.linalg.norm(g)) - delta_s
    return (delta_s / den if den > 0 else math.inf), c_mid


@check("APX-COSINE", part="linear", kind="numeric")
def apx_cosine_linear(ctx: Context) -> CheckResult:
    """Scalar linear DEQ: cos(direction, grad R) = sign c(v) and norm ratio = |c(v)|
    (both within 1e-12) for every method, on random points on both sides of v = 1 and
    on a fixed v grid that makes c negative for even Neumann and for JFB."""
    count = 24 if ctx.full else 8
    rng = ctx.rng("APX-COSINE linear grid")
    points = list(linear_points(ctx, "APX-COSINE", count))
    for model, theta in list(points[: len(LINEAR_V)]):
        for v in LINEAR_V:
            th = theta.copy()
            th[:-1] = rng.normal(size=th.shape[0] - 1)
            th[-1] = v
            points.append((model, th))
    worst_cos, worst_ratio, n, negative = 0.0, 0.0, 0, 0
    for model, theta in points:
        g = model.grad(theta)
        v = float(theta[-1])
        for m in ALL_METHODS:
            c = float(m.linear_factor(v))
            if c == 0.0:  # direction 0: cosine undefined (APX-STALL's point)
                continue
            _, d = approx_direction(model, m)(theta)
            worst_cos = max(worst_cos, abs(cosine(d, g) - math.copysign(1.0, c)))
            ratio = float(np.linalg.norm(d) / np.linalg.norm(g))
            worst_ratio = max(worst_ratio, abs(ratio - abs(c)) / max(abs(c), 1e-300))
            negative += c < 0
            n += 1
    return CheckResult.within(
        [(worst_cos, TOL_IDENTITY), (worst_ratio, TOL_IDENTITY)],
        also=negative > 0,
        measured=max(worst_cos, worst_ratio),
        tolerance=TOL_IDENTITY,
        instances=n,
        reason="" if negative else "no grid point had c(v) < 0",
        details={
            "max_abs_cos_minus_sign_c": worst_cos,
            "max_rel_norm_ratio_error": worst_ratio,
            "points_with_negative_c": negative,
            "methods": [m.label for m in ALL_METHODS],
            "margin": "1 - error / 1e-12",
        },
    )


@check("APX-COSINE", part="single-index", kind="numeric")
def apx_cosine_single_index(ctx: Context) -> CheckResult:
    """Single-index DEQ: direction = sum_i c(J_i) e_i (rel <= 1e-12); cosine 1 at
    v = 0; elsewhere sign(c_mid) cos >= sqrt(1 - rho^2) when rho < 1 (relative slack
    >= -1e-12); and some v != 0 point has cosine below 1 - 1e-6 (the +-1 statement
    does not extend past v = 0)."""
    rng = ctx.rng("APX-COSINE single-index")
    acts = ("tanh", "sigmoid", "sigma_eps:0.5", "gelu")
    approx = [m for m in ALL_METHODS if not m.exact]
    ident, at_zero, slack, n = 0.0, 0.0, math.inf, 0
    min_cos: dict[str, float] = {}
    uncertified = 0
    for act in acts:
        inst = local_instance(rng, act, d=3, n=40 if ctx.full else 24, radius=0.5)
        for v in SIM_V:
            theta = inst.theta0.copy()
            theta[-1] = v
            e, J = per_sample_terms(inst.model, theta)
            g = inst.model.grad(theta)
            ident = max(ident, rel_norm(e.sum(0), g))
            for m in approx:
                _, d = approx_direction(inst.model, m)(theta)
                c = np.asarray(m.linear_factor(J), float)
                ident = max(ident, rel_norm((c[:, None] * e).sum(0), d))
                cos = cosine(d, g)
                n += 1
                if v == 0.0:
                    at_zero = max(at_zero, abs(cos - 1.0))
                    continue
                key = f"{act} {m.label}"
                min_cos[key] = min(min_cos.get(key, 1.0), cos)
                rho, c_mid = cosine_bound(c, e, g)
                if rho < 1.0:
                    lower = math.sqrt(1.0 - rho * rho)
                    slack = min(slack, (math.copysign(1.0, c_mid) * cos - lower))
                else:
                    uncertified += 1
    smallest = min(min_cos.values())
    gap = 1.0 - smallest
    margin = min(
        tol_margin(ident, TOL_IDENTITY),
        tol_margin(at_zero, TOL_IDENTITY),
        slack / TOL_BOUND + 1.0 if slack < 0 else 1.0,
        gap / STRICT_GAP - 1.0,
    )
    return judged(
        margin >= 0,
        measured=smallest,
        predicted=1.0,
        tolerance=TOL_IDENTITY,
        worst_margin=margin,
        instances=n,
        reason=""
        if margin >= 0
        else "an identity, the v = 0 equality, the bound or its sharpness failed",
        details={
            "decomposition_rel_error": ident,
            "max_abs_cos_minus_1_at_v0": at_zero,
            "min_bound_slack": slack,
            "points_where_bound_is_vacuous": uncertified,
            "smallest_cosine_v_nonzero": smallest,
            "min_cosine_per_activation_method": min_cos,
            "v_grid": list(SIM_V),
            "margin": "min of 1 - err/1e-12 (identity, v = 0), bound slack / 1e-12 + 1 "
            "when negative, (1 - min cos) / 1e-6 - 1",
        },
    )
