"""Deep equilibrium single-index model y = sigma(<u, x> + v y), theta = (u, v).

Spec §2.4 and R7.

Forward: a vectorised safeguarded Newton solve for all samples at once
(:mod:`dynamics.models.scalar_root`), after the well-posedness condition has been
checked (|v| L < 1, or v sup sigma' < 1 for increasing sigma): outside it a
:class:`WellPosednessError` is raised, never a wrong root.

Gradient (IFT, claim SIM-GRAD): with s = <u, x> + v f, p = sigma'(s), D = 1 - v p,
    w_i = 2 (f_i - y_i) p_i / D_i,  grad_u R = mean w_i x_i,  d_v R = mean w_i f_i.
Hessian (differentiating the IFT formula; SIM-HESS): with q = sigma''(s), r = f - y and
z_i = (x_i, f_i),
    H = (2/n) sum [ (p/D)^2 z z^T + r ( q/D^3 z z^T + (p/D)^2 (z e_v^T + e_v z^T) ) ],
which at theta* = (xi, 0) (r = 0, D = 1) is R7's H* = (2/n) sum sigma'(z_i)^2 w_i w_i^T.
"""

from __future__ import annotations

from typing import final

import numpy as np

from .._result import Result
from .._validate import finite_array, param_vector, positive_step
from ..errors import (
    ConvergenceError,
    NonFiniteError,
    ShapeError,
    WellPosednessError,
)
from .activations import Activation, get_activation
from .base import LOSS_FACTOR, AbstractModel
from .scalar_root import ROOT_TOL, RootSolution, solve_roots


@final
class SingleIndexDEQ(AbstractModel):
    """Single-index DEQ on fixed data; exact IFT gradient and Hessian (R7).

    Args:
        X: inputs, shape (n, d), one sample per row.
        y: targets, shape (n,).
        activation: an :class:`Activation` or a table name (``"tanh"``,
            ``"sigma_eps:0.25"``); unknown names raise UnknownOptionError.
        warm_start: start each training-data solve from the previous root moved along
            the IFT tangent (GD steps move theta a little, so one evaluation of sigma
            per sample then usually suffices; the root does not depend on it).
        authors_guard: also enforce the guard of the authors' scripts
            (tanh |v| < 1, sigmoid v < 4, sigma_eps |v| (1 + eps) < 0.95).
        tol: root residual tolerance.
    """

    def __init__(
        self,
        X,
        y,
        activation: str | Activation,
        *,
        warm_start: bool = True,
        authors_guard: bool = False,
        tol: float = ROOT_TOL,
    ):
        self.act = get_activation(activation)
        X = finite_array("X", X, ndim=2)
        y = finite_array("y", y, ndim=1)
        if X.shape[0] != y.shape[0]:
            raise ShapeError(f"X has {X.shape[0]} rows but y has {y.shape[0]} entries")
        if X.shape[0] == 0:
            raise ShapeError("X must contain at least one sample")
        self.X, self.y = X, y
        self.n, self.d = X.shape
        self.warm_start = bool(warm_start)
        self.authors_guard = bool(authors_guard)
        self.tol = positive_step("tol", tol)
        # (a, v, y, sigma'/(1 - v sigma')) of the last training-data solve.
        self._warm: tuple | None = None
        #: Diagnostics of the last training-data solve.
        self.last_residual = 0.0
        self.last_iterations = 0

    # -- parameters --------------------------------------------------------------------
    @property
    def n_params(self) -> int:
        return self.d + 1

    @staticmethod
    def pack(u, v) -> np.ndarray:
        return np.concatenate([np.atleast_1d(np.asarray(u, float)), [float(v)]])

    def unpack(self, theta) -> tuple[np.ndarray, float]:
        th = param_vector(theta, self.n_params)
        return th[:-1], float(th[-1])

    def target_theta(self, xi) -> np.ndarray:
        """theta* = (xi, 0): the zero-risk point of the target sigma(<xi, x>)."""
        return self.pack(finite_array("xi", xi, ndim=1), 0.0)

    def check_well_posed(self, v: float) -> None:
        """Raise WellPosednessError unless the fixed point is unique for every input."""
        if not np.isfinite(v):
            raise NonFiniteError(f"v = {v!r} is not finite")
        if not self.act.well_posed(v):
            raise WellPosednessError(
                f"{self.act.label}: v = {v!r} violates the well-posedness condition "
                f"{self.act.condition_text()}; the fixed point may not be unique, "
                "so no root is returned. Start closer to v = 0 or take smaller steps."
            )
        if self.authors_guard and not self.act.guard(v):
            raise WellPosednessError(
                f"{self.act.label}: v = {v!r} left the authors' guard "
                f"{self.act.guard_text}"
            )

    # -- forward -----------------------------------------------------------------------
    def solve(self, theta, X=None) -> RootSolution:
        """Fixed points for the rows of X (default: the training inputs)."""
        u, v = self.unpack(theta)
        self.check_well_posed(v)
        train = X is None
        Xm = self.X if train else finite_array("X", X, ndim=2)
        if Xm.shape[1] != self.d:
            raise ShapeError(f"X must have {self.d} columns; got {Xm.shape[1]}")
        a = Xm @ u
        y0 = None
        if train and self.warm_start and self._warm is not None:
            # Extrapolate the previous root along the IFT tangent:
            # dy = sigma'(s) (da + dv y) / (1 - v sigma'(s)), error O(|d theta|^2).
            a_prev, v_prev, y_prev, gain = self._warm
            y0 = y_prev + gain * ((a - a_prev) + (v - v_prev) * y_prev)
        sol = solve_roots(self.act, a, v, y0=y0, tol=self.tol)
        if sol.result is not Result.successful:
            exc = NonFiniteError if sol.result is Result.nonfinite else ConvergenceError
            raise exc(
                f"{sol.result.value}: root solve stopped at residual "
                f"{sol.residual:.3e} after {sol.iterations} iterations "
                f"({self.act.label}, v = {v!r})"
            )
        if train:
            if self.warm_start:
                self._warm = (a, v, sol.y, sol.slope / (1.0 - v * sol.slope))
            self.last_residual, self.last_iterations = sol.residual, sol.iterations
        return sol

    def predict(self, theta, X=None) -> np.ndarray:
        return self.solve(theta, X).y

    def risk(self, theta) -> float:
        return float(np.mean((self.predict(theta) - self.y) ** 2))

    def eval_risk(self, theta, X, y) -> float:
        """Risk on held-out data (cold-started solve)."""
        y = finite_array("y", y, ndim=1)
        return float(np.mean((self.predict(theta, X) - y) ** 2))

    # -- gradients ---------------------------------------------------------------------
    def value_and_grad(self, theta) -> tuple[float, np.ndarray]:
        """Risk and exact IFT gradient (SIM-GRAD)."""
        return self.value_and_direction(theta, None)

    def value_and_direction(self, theta, factor=None) -> tuple[float, np.ndarray]:
        """Risk and the gradient with (1 - J)^{-1}, J = v sigma'(s), replaced by
        ``factor(J)`` (elementwise); ``None`` is the exact IFT inverse."""
        sol = self.solve(theta)
        v = float(theta[-1])
        r = sol.y - self.y
        J = v * sol.slope
        inv = 1.0 / (1.0 - J) if factor is None else factor(J)
        w = LOSS_FACTOR * r * sol.slope * inv
        g = np.empty(self.n_params)
        g[:-1] = self.X.T @ w / self.n
        g[-1] = sol.y @ w / self.n
        return float(np.mean(r * r)), g

    def sample_weights(self, theta) -> tuple[RootSolution, np.ndarray]:
        """(solution, w) with w_i = 2 (f_i - y_i) sigma'(s_i) / (1 - v sigma'(s_i))."""
        sol = self.solve(theta)
        v = float(theta[-1])
        w = LOSS_FACTOR * (sol.y - self.y) * sol.slope / (1.0 - v * sol.slope)
        return sol, w

    def hessian(self, theta) -> np.ndarray:
        """Exact Hessian of the risk (the IFT gradient differentiated once more).

        Raises NonSmoothActivationError for a non-C^2 activation (ReLU, leaky ReLU)."""
        self.act.require_smooth("the Hessian of the risk")
        sol = self.solve(theta)
        v = float(theta[-1])
        p, D = sol.slope, 1.0 - v * sol.slope
        q = self.act.d2sigma(sol.s)
        r = sol.y - self.y
        Z = np.hstack([self.X, sol.y[:, None]])
        phi2 = (p / D) ** 2
        H = (Z * (phi2 + r * q / D**3)[:, None]).T @ Z
        cross = Z.T @ (r * phi2)
        H[:, -1] += cross
        H[-1, :] += cross
        return LOSS_FACTOR * H / self.n

    def hessian_at_target(self, xi) -> np.ndarray:
        """R7's H* = (2/n) sum sigma'(z_i)^2 w_i w_i^T, z_i = <xi, x_i>,
        w_i = (x_i, sigma(z_i)); the Hessian at theta* = (xi, 0) for realizable data.
        Raises NonSmoothActivationError for a non-C^2 activation."""
        self.act.require_smooth("R7's Hessian H* at the target")
        xi = finite_array("xi", xi, ndim=1)
        if xi.shape[0] != self.d:
            raise ShapeError(f"xi must have {self.d} entries; got {xi.shape[0]}")
        z = self.X @ xi
        Wm = np.hstack([self.X, self.act.sigma(z)[:, None]])
        return LOSS_FACTOR * (Wm * (self.act.dsigma(z) ** 2)[:, None]).T @ Wm / self.n

    # -- the (non-)conserved quantity --------------------------------------------------
    @staticmethod
    def Q(theta) -> float:
        """Q = ||u||^2 + (1 - v)^2, conserved by the linear DEQ's gradient flow (R1)."""
        th = np.asarray(theta, float)
        return float(th[:-1] @ th[:-1] + (1.0 - th[-1]) ** 2)

    def dQ_dt(self, theta) -> float:
        """R7: along gradient flow dQ/dt = -(2/n) sum_i w_i (s_i - sigma(s_i)) with the
        IFT weights w_i (LOSS_FACTOR = 2 is inside w_i, the 2 here comes from
        grad Q = 2 (u, v - 1)). Raises NonSmoothActivationError for a non-C^2
        activation (R7 assumes sigma in C^2)."""
        self.act.require_smooth("dQ/dt along gradient flow (R7)")
        sol, w = self.sample_weights(theta)
        return float(-2.0 * np.mean(w * (sol.s - sol.sigma_s)))
