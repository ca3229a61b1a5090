"""Vectorised safeguarded Newton for the scalar fixed points y_i = sigma(a_i + v y_i).

All samples are solved at once. F(y) = y - sigma(a + v y) is strictly increasing
wherever the activation is well posed (F' = 1 - v sigma' >= 1 - max(v S, |v| L) > 0),
so a bracket with F(lo) <= 0 <= F(hi) holds exactly one root. Each iteration takes the
Newton step where it stays inside the (shrinking) bracket and at least halves the
previous step, and bisects elsewhere; this converges from any start, so a warm start
changes the cost, never the root.

Stopping. After an evaluation at y with Newton step dy = -F/F', Taylor's theorem gives
|F(y + dy)| <= v^2 M dy^2 / 2 with M = sup |sigma''| (the table's ``curvature``). The
solve stops at the first evaluation where either |F(y)| <= tol was measured, or this
bound certifies |F(y + dy)| <= tol / 10; in both cases it returns y + dy (the last
Newton step squares the error, bringing the root to rounding level), sigma(s) = y
there (up to that bound) and sigma'(s) carried to y + dy to first order (error
O(dy^2)). A warm start extrapolated along the IFT tangent is ~1e-9 from the root, so a
GD step then costs one evaluation of sigma per sample.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .._result import Result
from .activations import Activation

#: Residual |y - sigma(a + v y)| the solve must reach (docs/theory/protocols.md: <=
#: 1e-13).
ROOT_TOL = 1e-13
#: Iteration cap: bisection alone takes a width-1e6 bracket to 1e-13 in ~63 steps.
ROOT_MAX_ITER = 200
#: Large roots: rounding alone leaves |F| ~ 2 eps64 |y|, so the residual test accepts
#: max(tol, 8 eps64 |y|) (only roots with |y| > ~50 are affected).
ROUNDING_ULPS = 8.0
#: The curvature certificate must beat the tolerance by this factor, leaving room for
#: the rounding of y + dy itself.
CERTIFICATE_MARGIN = 0.1


@dataclasses.dataclass(frozen=True)
class RootSolution:
    """Roots y, pre-activations s = a + v y, sigma(s), sigma'(s), with diagnostics.

    ``residual`` bounds max_i |y_i - sigma(s_i)|: the curvature certificate of the
    final Newton step (rounding, ~eps64 |y|, comes on top), or the measured residual
    for a non-C^2 activation.
    """

    y: np.ndarray
    s: np.ndarray
    sigma_s: np.ndarray
    slope: np.ndarray
    residual: float
    iterations: int
    result: Result


def solve_roots(
    act: Activation,
    a: np.ndarray,
    v: float,
    *,
    y0: np.ndarray | None = None,
    tol: float = ROOT_TOL,
    max_iter: int = ROOT_MAX_ITER,
) -> RootSolution:
    """Solve y = sigma(a + v y) elementwise; the caller has checked well-posedness.

    Args:
        act: the activation (its ``bracket`` rule gives the starting bracket).
        a: pre-activations <u, x_i>, shape (n,).
        v: the feedback weight (scalar).
        y0: optional warm start (clipped into the bracket).
        tol: residual tolerance (absolute; raised to 8 eps64 |y| for large roots,
            where rounding alone leaves |F| ~ 2 eps64 |y|).
        max_iter: iteration cap; ``result`` says whether the tolerance was met.
    """
    a = np.asarray(a, dtype=float)
    # Certificate factor v^2 M / 2 (inf when sigma is not C^2: measured residual only).
    cert = 0.5 * v * v * act.curvature if np.isfinite(act.curvature) else np.inf
    # F' = 1 - v sigma' is bounded below on the well-posed set.
    if act.increasing:
        fprime_min = 1.0 - v * act.sup_slope if v > 0 else 1.0
    else:
        fprime_min = 1.0 - abs(v) * act.lipschitz
    lo = hi = dx_old = None
    if y0 is None or np.shape(y0) != a.shape:
        lo, hi = _bracket(act, a, v)
        y = np.clip(act.sigma(a), lo, hi)
    else:
        # The bracket is only needed if the warm start does not certify at once.
        y = np.asarray(y0, dtype=float)
    eps64 = np.finfo(float).eps
    result = Result.max_steps_reached
    residual = np.inf
    it = 0
    s = sig = slope = y
    for it in range(1, max_iter + 1):
        s = a + v * y
        sig, slope, curv = act.derivatives(s)
        F = y - sig
        fmax = float(np.max(np.abs(F), initial=0.0))
        if not np.isfinite(fmax):
            result = Result.nonfinite
            break
        dy = F / (v * slope - 1.0)
        # |dy| = |F| / F' <= fmax / min F' (a scalar bound saves a pass over dy).
        dmax = fmax / fprime_min
        certified = cert * dmax * dmax <= CERTIFICATE_MARGIN * tol
        measured = fmax <= tol or (
            not certified
            and bool(
                np.all(np.abs(F) <= np.maximum(tol, ROUNDING_ULPS * eps64 * np.abs(y)))
            )
        )
        if np.isfinite(cert) and (measured or certified):
            # Either way the Newton step lands within the certificate of the root;
            # F is monotone, so no bracket test is needed for it. sigma(s) = y there
            # up to the certified residual (rounding, ~eps64 |y|, comes on top).
            vdy = v * dy
            y = y + dy
            s = s + vdy
            slope = slope + curv * vdy
            sig = y
            residual = cert * dmax * dmax
            result = Result.successful
            break
        if measured:
            # Non-C^2 activation: keep the measured point as it is.
            residual = fmax
            result = Result.successful
            break
        if lo is None:
            lo, hi = _bracket(act, a, v)
            y = np.clip(y, lo, hi)
            continue
        if dx_old is None:
            dx_old = hi - lo
        pos = F > 0
        hi = np.where(pos, y, hi)
        lo = np.where(pos, lo, y)
        prop = y + dy
        # Newton only where it stays in the bracket and at least halves the previous
        # step (rtsafe's rule): this breaks the 2-cycles Newton falls into on steep
        # S-shaped F (sigmoid with v = -40), where both points stay in the bracket.
        # Samples already within tolerance keep their (tiny) Newton step.
        newton = (
            (prop >= lo)
            & (prop <= hi)
            & ((2.0 * np.abs(dy) <= np.abs(dx_old)) | (np.abs(F) <= tol))
        )
        mid = 0.5 * (lo + hi)
        dx_old = np.where(newton, dy, mid - y)
        y = np.where(newton, prop, mid)
        if np.all(hi - lo <= 4 * np.spacing(np.abs(y) + 1.0)):
            # The bracket has collapsed to adjacent floats: nothing left to refine.
            s = a + v * y
            sig, slope, _ = act.derivatives(s)
            residual = float(np.max(np.abs(y - sig), initial=0.0))
            result = Result.successful
            break
    if result is Result.successful and not (
        np.isfinite(residual) and np.all(np.isfinite(y)) and np.all(np.isfinite(slope))
    ):
        # A collapsed bracket or a certificate says nothing about a root that is not
        # a number (e.g. GELU at |a| ~ 1e200 overflows): never call it successful.
        result = Result.nonfinite
    return RootSolution(y, s, sig, slope, residual, it, result)


def _bracket(act: Activation, a: np.ndarray, v: float) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = act.bracket(a, v)
    return np.broadcast_to(lo, a.shape), np.broadcast_to(hi, a.shape)
