"""The implicit Runge-Kutta step, written once for every tableau and vector field.

With Z_i = Y_i - y the stage equations are Z = h (A kron I) F(y + Z), where
F(Y)_i = field(t + c_i h, Y_i). They are solved either by

- simplified Newton: the iteration matrix I - h (A kron J) is built from
  J = d field / d y at (t, y) (supplied, or forward differences) and factorised once
  per step; it is rebuilt at the current stages (at most 4 times) only when an
  iteration contracts by less than a factor 2; or
- fixed-point iteration Z <- h (A kron I) F(y + Z), which contracts only when
  h ||A|| Lip(field) < 1.

Convergence is declared when the last correction satisfies
||dZ||_inf <= tol * max(||y||_inf, ||Z||_inf) (a relative test), or when the observed
contraction rate theta < 1 shows that the remaining error theta / (1 - theta) ||dZ||
is below that threshold. Anything else (iteration limit, two non-contracting
iterations in a row, non-finite stages, a stage iterate outside the field's domain,
a singular iteration matrix) raises
:class:`dynamics.errors.ConvergenceError`: an unconverged stage is never returned.

The new state is y + h sum_i b_i F(Y_i), with F evaluated at the converged stages.
Then, for a tableau satisfying Cooper's condition, the change of a quadratic invariant
over one step is bounded by 2 h ||F|| times the stage residual, i.e. by the stage-solve
tolerance (not by the step size).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import scipy.linalg

from .._validate import positive_int
from ..errors import ConvergenceError, DEQError, InvalidInputError, reject_unknown
from .base import Field
from .tableaux import ButcherTableau

#: Stage-solve methods (the ``solver`` option of the implicit integrators).
SOLVERS = ("newton", "fixed_point")

Jacobian = Callable[[float, np.ndarray], np.ndarray]

#: Simplified Newton re-linearises at the current stages when an iteration contracts
#: by less than this factor, at most _MAX_REFRESHES times per step.
_REFRESH_RATE = 0.5
_MAX_REFRESHES = 4

#: Forward-difference step sqrt(eps) * max(1, |y_j|): balances truncation and rounding
#: for a first-order difference. Simplified Newton needs only a rough Jacobian (it
#: changes the contraction rate, not the converged stages).
_FD_STEP = math.sqrt(np.finfo(np.float64).eps)


def validate_options(tol: float, solver: str, max_iter: int) -> None:
    """Check the stage-solve options once (called from ``__post_init__``)."""
    if solver not in SOLVERS:
        raise reject_unknown("stage-solve method", solver, SOLVERS)
    if not (isinstance(tol, int | float) and math.isfinite(tol) and tol > 0.0):
        raise InvalidInputError(f"tol must be a positive finite number; got {tol!r}")
    if tol < 4.0 * np.finfo(np.float64).eps:
        raise InvalidInputError(
            f"tol = {tol!r} is below float64 rounding (4 eps = 8.9e-16): the stage "
            "solve could never meet it; use tol >= 1e-15"
        )
    positive_int("max_iter", max_iter, error=InvalidInputError, exact_type=True)


def fd_jacobian(field: Field, t: float, y: np.ndarray, f0: np.ndarray) -> np.ndarray:
    """Forward-difference Jacobian of ``field`` at (t, y), given f0 = field(t, y)."""
    n = y.shape[0]
    J = np.empty((n, n), dtype=np.float64)
    for j in range(n):
        dy = _FD_STEP * max(1.0, abs(y[j]))
        yp = y.copy()
        yp[j] += dy
        J[:, j] = (field(t, yp) - f0) / (yp[j] - y[j])
    return J


def implicit_rk_step(
    tableau: ButcherTableau,
    field: Field,
    t: float,
    y: np.ndarray,
    h: float,
    *,
    tol: float,
    solver: str,
    max_iter: int,
    jacobian: Jacobian | None,
) -> tuple[np.ndarray, int]:
    """One step of the implicit Runge-Kutta method ``tableau`` (see the module doc).

    Returns (y_next, number of field evaluations, finite-difference ones included).
    """
    y = np.asarray(y, dtype=np.float64)
    s, n = tableau.stages, y.shape[0]
    A = tableau.a
    times = t + tableau.c * h
    nfev = 0

    def stage_fields(Z: np.ndarray, it: int) -> np.ndarray:
        nonlocal nfev
        F = np.empty((s, n), dtype=np.float64)
        try:
            for i in range(s):
                F[i] = field(times[i], y + Z[i])
        except DEQError as exc:
            # An iterate of the stage solve, not a point of the solution, left the
            # field's domain (e.g. crossed a singular equilibrium).
            raise ConvergenceError(
                f"{solver} stage iterate left the field's domain at "
                f"t = {t!r} (iteration {it}): {exc}; take a smaller "
                "step h"
            ) from exc
        nfev += s
        if not np.all(np.isfinite(F)):
            raise ConvergenceError(
                f"non-finite field value in the stage solve at "
                f"t = {t!r} (iteration {it}); take a smaller step h"
            )
        return F

    def linearise(tc: float, yc: np.ndarray):
        nonlocal nfev
        if jacobian is None:
            f0 = field(tc, yc)
            nfev += 1 + n
            J = fd_jacobian(field, tc, yc, f0)
        else:
            J = np.asarray(jacobian(tc, yc), dtype=np.float64)
            if J.shape != (n, n):
                raise InvalidInputError(
                    f"jacobian returned shape {J.shape}; expected {(n, n)}"
                )
        if not np.all(np.isfinite(J)):
            raise ConvergenceError(
                f"non-finite Jacobian at t = {tc!r}: the stage "
                "equations cannot be linearised there"
            )
        with np.errstate(all="ignore"):
            lu = scipy.linalg.lu_factor(
                np.eye(s * n) - h * np.kron(A, J), check_finite=False
            )
        if not np.all(np.isfinite(lu[0])) or np.min(np.abs(np.diag(lu[0]))) == 0.0:
            raise ConvergenceError(
                f"singular Newton iteration matrix I - h A (x) J at "
                f"t = {tc!r}, h = {h!r}; take a smaller step h"
            )
        return lu

    lu = linearise(t, y) if solver == "newton" else None
    refreshes = 0
    Z = np.zeros((s, n), dtype=np.float64)
    prev = math.inf
    non_contracting = 0
    y_scale = float(np.max(np.abs(y))) if n else 0.0
    size = threshold = math.nan
    for it in range(1, max_iter + 1):
        residual = h * (A @ stage_fields(Z, it)) - Z
        if lu is None:
            dZ = residual
        else:
            dZ = scipy.linalg.lu_solve(
                lu, residual.ravel(), check_finite=False
            ).reshape(s, n)
        Z = Z + dZ
        size = float(np.max(np.abs(dZ)))
        threshold = tol * max(y_scale, float(np.max(np.abs(Z))))
        if not math.isfinite(size):
            raise ConvergenceError(
                f"{solver} stage solve diverged to non-finite values "
                f"at t = {t!r} (iteration {it}); take a smaller step h"
            )
        # Contraction rate of the last two corrections (unknown right after a start or
        # a re-linearisation, when prev is inf; then only the plain test applies).
        theta = size / prev if math.isfinite(prev) and prev > 0.0 else math.nan
        if size <= threshold or (
            theta < 1.0 and theta / (1.0 - theta) * size <= threshold
        ):
            return y + h * (tableau.b @ stage_fields(Z, it)), nfev
        if lu is not None and theta > _REFRESH_RATE and refreshes < _MAX_REFRESHES:
            # Slow or no contraction: the Jacobian frozen at (t, y) is too far from the
            # one at the stages. Re-linearise at the current stage mean; the converged
            # stages (and the convergence test) do not depend on which J is used.
            try:
                lu = linearise(t + float(np.mean(tableau.c)) * h, y + Z.mean(axis=0))
            except ConvergenceError:
                raise
            except DEQError as exc:
                raise ConvergenceError(
                    f"{solver} stage iterate left the field's domain "
                    f"at t = {t!r} (iteration {it}): {exc}; take a "
                    "smaller step h"
                ) from exc
            refreshes += 1
            prev, non_contracting = math.inf, 0
            continue
        non_contracting = non_contracting + 1 if theta >= 1.0 else 0
        if non_contracting >= 2:
            raise ConvergenceError(
                f"{solver} stage solve stopped contracting at t = {t!r} "
                f"(iteration {it},"
                f" correction {size:.3e} > {threshold:.3e}); take a smaller step h"
                + (" or use solver='newton'" if solver == "fixed_point" else "")
            )
        prev = size
    raise ConvergenceError(
        f"{solver} stage solve did not reach tol = {tol:.1e} in {max_iter} iterations "
        f"at t = {t!r} (last correction {size:.3e}, threshold {threshold:.3e}); take a "
        "smaller step h or raise max_iter"
    )
