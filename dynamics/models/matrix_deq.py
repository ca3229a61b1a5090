"""Matrix-state linear DEQ z = W z + U x with an optional trained readout B.

Theory: docs/theory/linear.md.

The equilibrium z* = (I - W)^{-1} U x is computed by a linear solve, never by
iteration, so W needs no spectral-radius bound (pitfall P1).
"""

from __future__ import annotations

from typing import NamedTuple, final

import numpy as np

from .._validate import finite_array, param_vector, positive_int
from ..errors import ShapeError, SingularEquilibriumError
from .base import LOSS_FACTOR, AbstractModel

#: I - W counts as singular when its condition number exceeds this: a solve then has
#: no correct significant digit left in float64 (1 / (1e3 * machine epsilon)).
SINGULAR_COND = 1.0 / (1e3 * np.finfo(np.float64).eps)


class MatrixParams(NamedTuple):
    W: np.ndarray
    U: np.ndarray
    B: np.ndarray | None


@final
class MatrixLinearDEQ(AbstractModel):
    """Linear DEQ with state in R^m, theta = (vec W, vec U[, vec B]) in row-major order.

    Gradients (LIN-GRAD b): grad_U = A^-T G, grad_W = A^-T G M^T, grad_B = G_out M^T
    with A = I - W, M = A^-1 U, G = B^T G_out (or G_out without readout).
    Conserved under gradient flow: C = A A^T + U U^T and, with readout,
    C' = A^T A + B^T B (LIN-GF-CONS).

    Args:
        X: inputs, shape (n, d), one sample per row.
        Y: targets, shape (n, k); without a readout k must equal ``m``.
        m: state dimension.
        readout: train a readout B (k x m); otherwise the output is z* itself.
    """

    def __init__(self, X, Y, m: int, readout: bool = False):
        X = finite_array("X", X, ndim=2)
        Y = finite_array("Y", Y, ndim=(1, 2))
        if Y.ndim == 1:
            Y = Y[:, None]
        if X.shape[0] != Y.shape[0]:
            raise ShapeError(f"X has {X.shape[0]} rows but Y has {Y.shape[0]}")
        if X.shape[0] == 0 or X.shape[1] == 0:
            raise ShapeError(
                f"X has shape {X.shape}: the matrix DEQ needs at least one sample "
                "(row) and one feature (column)"
            )
        self.m = positive_int("m", m)
        self.readout = bool(readout)
        self.X, self.Y = X, Y
        self.n, self.d = X.shape
        self.k = Y.shape[1]
        if not self.readout and self.k != self.m:
            raise ShapeError(
                f"without a readout the output is z*, so Y needs m = "
                f"{self.m} columns; got {self.k} (or pass readout=True)"
            )
        self.sigma_hat = X.T @ X / self.n
        eig = np.linalg.eigvalsh(self.sigma_hat)
        self.lambda_min, self.lambda_max = float(eig[0]), float(eig[-1])
        # Least-squares end-to-end map (k x d): the realizable target when min_risk = 0.
        self.M_star = np.linalg.lstsq(X, Y, rcond=None)[0].T
        self.min_risk = float(np.sum((X @ self.M_star.T - Y) ** 2) / self.n)
        self._sizes = (
            self.m * self.m,
            self.m * self.d,
            self.k * self.m if self.readout else 0,
        )

    @property
    def n_params(self) -> int:
        return sum(self._sizes)

    def pack(self, W, U, B=None) -> np.ndarray:
        parts = [
            np.asarray(W, float).reshape(self.m, self.m).ravel(),
            np.asarray(U, float).reshape(self.m, self.d).ravel(),
        ]
        if self.readout:
            if B is None:
                raise ShapeError("this model trains a readout: pass B (k x m)")
            parts.append(np.asarray(B, float).reshape(self.k, self.m).ravel())
        elif B is not None:
            raise ShapeError("this model has no readout: B must be None")
        return np.concatenate(parts)

    def unpack(self, theta) -> MatrixParams:
        th = param_vector(theta, self.n_params)
        a, b, _ = self._sizes
        W = th[:a].reshape(self.m, self.m)
        U = th[a : a + b].reshape(self.m, self.d)
        B = th[a + b :].reshape(self.k, self.m) if self.readout else None
        return MatrixParams(W, U, B)

    def A(self, theta) -> np.ndarray:
        """I - W, after checking that it is invertible."""
        return self._factor(self.unpack(theta).W)[0]

    def _factor(self, W: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(A, A^-1) with A = I - W, or SingularEquilibriumError.

        The 1-norm condition number ||A||_1 ||A^-1||_1 costs one inverse, which the
        gradient needs anyway; an SVD per call dominated small-m flows.
        """
        A = np.eye(self.m) - W
        try:
            A_inv = np.linalg.inv(A)
        except np.linalg.LinAlgError:
            A_inv = None
        cond = (
            np.inf if A_inv is None else np.linalg.norm(A, 1) * np.linalg.norm(A_inv, 1)
        )
        if not np.isfinite(cond) or cond > SINGULAR_COND:
            raise SingularEquilibriumError(
                f"I - W is singular (1-norm condition number {cond:.3e}): the linear "
                "DEQ has no unique equilibrium; move W away from the singular set"
            )
        return A, A_inv

    def end_to_end(self, theta) -> np.ndarray:
        """M = (I - W)^{-1} U, the map x -> z*."""
        W, U, _ = self.unpack(theta)
        return self._factor(W)[1] @ U

    def predict(self, theta, X=None) -> np.ndarray:
        X = self.X if X is None else finite_array("X", X, ndim=2)
        M = self.end_to_end(theta)
        B = self.unpack(theta).B
        out = X @ M.T
        return out if B is None else out @ B.T

    def risk(self, theta) -> float:
        return float(np.sum((self.predict(theta) - self.Y) ** 2) / self.n)

    def value_and_grad(self, theta) -> tuple[float, np.ndarray]:
        W, U, B = self.unpack(theta)
        _, A_inv = self._factor(W)
        M = A_inv @ U
        Z = self.X @ M.T
        pred = Z if B is None else Z @ B.T
        resid = pred - self.Y
        G_out = LOSS_FACTOR / self.n * resid.T @ self.X  # k x d
        G = G_out if B is None else B.T @ G_out  # m x d
        grad_U = A_inv.T @ G
        parts = [(grad_U @ M.T).ravel(), grad_U.ravel()]
        if B is not None:
            parts.append((G_out @ M.T).ravel())
        return float(np.sum(resid**2) / self.n), np.concatenate(parts)

    def C(self, theta) -> np.ndarray:
        """A A^T + U U^T, conserved by gradient flow."""
        W, U, _ = self.unpack(theta)
        A = np.eye(self.m) - W
        return A @ A.T + U @ U.T

    def C_readout(self, theta) -> np.ndarray:
        """A^T A + B^T B, conserved by gradient flow when the readout is trained."""
        W, _, B = self.unpack(theta)
        if B is None:
            raise ShapeError("C' = A^T A + B^T B needs a model with readout=True")
        A = np.eye(self.m) - W
        return A.T @ A + B.T @ B
