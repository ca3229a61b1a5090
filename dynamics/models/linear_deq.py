"""Scalar-state linear DEQ: y = <u, x> + v y, theta = (u, v) (docs/theory/linear.md).

The forward pass is the closed form f(x) = <u, x> / (1 - v); it is valid for every
v != 1, including |v| > 1 (pitfall P1: never iterate).
"""

from __future__ import annotations

from typing import final

import numpy as np

from .._validate import finite_array, param_vector
from ..errors import ShapeError, SingularEquilibriumError
from .base import LOSS_FACTOR, AbstractModel

#: |1 - v| below this multiple of max(1, |v|) counts as singular: 1 - v is computed
#: with an error of ~eps64 max(1, |v|), so beyond it fewer than ~4 digits of 1 - v are
#: left. The test is relative to v, not to ||u||: a large u with a small but
#: well-resolved 1 - v (u = 1e6, v = 1 - 1e-7) is a legitimate, if large, predictor.
SINGULAR_RTOL = 1e-12


@final
class LinearDEQ(AbstractModel):
    """Scalar-state linear DEQ with parameters theta = (u_1..u_d, v).

    Exact IFT gradient in closed form (claim LIN-GRAD), the conserved quantity
    Q = ||u||^2 + (1 - v)^2 (LIN-GF-CONS) and the Hessian of R6.

    Args:
        X: inputs, shape (n, d), one sample per row.
        y: targets, shape (n,).
    """

    def __init__(self, X, y):
        X = finite_array("X", X, ndim=2)
        y = finite_array("y", y, ndim=1)
        if X.shape[0] != y.shape[0]:
            raise ShapeError(f"X has {X.shape[0]} rows but y has {y.shape[0]} entries")
        if X.shape[0] == 0:
            raise ShapeError("X must contain at least one sample")
        if X.shape[1] == 0:
            raise ShapeError(
                "X has 0 columns: the linear DEQ needs at least one input feature"
            )
        self.X, self.y = X, y
        self.n, self.d = X.shape
        self.sigma_hat = X.T @ X / self.n
        eig = np.linalg.eigvalsh(self.sigma_hat)
        self.lambda_min, self.lambda_max = float(eig[0]), float(eig[-1])
        self.beta_star = np.linalg.lstsq(X, y, rcond=None)[0]
        self.min_risk = float(np.mean((X @ self.beta_star - y) ** 2))

    @property
    def n_params(self) -> int:
        return self.d + 1

    @staticmethod
    def pack(u, v) -> np.ndarray:
        return np.concatenate([np.atleast_1d(np.asarray(u, float)), [float(v)]])

    def unpack(self, theta) -> tuple[np.ndarray, float]:
        th = param_vector(theta, self.n_params)
        return th[:-1], float(th[-1])

    def one_minus_v(self, theta) -> float:
        """1 - v, after checking that the equilibrium exists."""
        return self._gap(*self.unpack(theta))

    @staticmethod
    def _gap(u: np.ndarray, v: float) -> float:
        gap = 1.0 - v
        if abs(gap) <= SINGULAR_RTOL * max(1.0, abs(v)):
            raise SingularEquilibriumError(
                f"1 - v = {gap:.3e} at v = {v!r}: the linear DEQ has no unique fixed "
                "point on v = 1; start away from the singular point (0, 1) or take "
                "smaller steps near it"
            )
        return gap

    def beta(self, theta) -> np.ndarray:
        """Effective predictor beta = u / (1 - v)."""
        u, v = self.unpack(theta)
        return u / self._gap(u, v)

    def predict(self, theta, X=None) -> np.ndarray:
        X = self.X if X is None else finite_array("X", X, ndim=2)
        return X @ self.beta(theta)

    def risk(self, theta) -> float:
        return float(np.mean((self.predict(theta) - self.y) ** 2))

    def g_beta(self, beta) -> np.ndarray:
        """Gradient of the risk with respect to the effective predictor."""
        return LOSS_FACTOR / self.n * self.X.T @ (self.X @ beta - self.y)

    def value_and_grad(self, theta) -> tuple[float, np.ndarray]:
        u, v = self.unpack(theta)
        gap = self._gap(u, v)
        beta = u / gap
        resid = self.X @ beta - self.y
        g = LOSS_FACTOR / self.n * self.X.T @ resid
        grad_u = g / gap
        return float(np.mean(resid**2)), np.concatenate([grad_u, [grad_u @ beta]])

    def hessian(self, theta) -> np.ndarray:
        """Hessian J^T (2 Sigma) J + (1-v)^-2 [[0, g], [g^T, 2 <g, beta>]] (R6)."""
        gap = self.one_minus_v(theta)
        beta = self.unpack(theta)[0] / gap
        g = self.g_beta(beta)
        J = np.hstack([np.eye(self.d), beta[:, None]]) / gap
        H = J.T @ (LOSS_FACTOR * self.sigma_hat) @ J
        H[:-1, -1] += g / gap**2
        H[-1, :-1] += g / gap**2
        H[-1, -1] += 2.0 * (g @ beta) / gap**2
        return H

    @staticmethod
    def Q(theta) -> float:
        """Conserved quantity ||u||^2 + (1 - v)^2 = squared distance to (0, 1)."""
        th = np.asarray(theta, float)
        return float(th[:-1] @ th[:-1] + (1.0 - th[-1]) ** 2)
