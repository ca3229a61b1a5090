"""B independent matrix linear DEQs z = W z + U x (optional readout B) at once.

The batched twin of :class:`dynamics.MatrixLinearDEQ` (docs/theory/linear.md):
per-instance data,
dims (m, d, n, k) fixed within a batch, no Python loop over instances. Used for the
P-SCALE protocol (claims SCALE-COND, SCALE-RATE), which runs 1e4-1e6 instances through
gradient descent and gradient flow and keeps, per instance, what the claims need.

Layout. Parameters are a flat ``(P, B)`` tensor, batch last, each instance's column in
the row-major order of ``MatrixLinearDEQ.pack`` (vec W, vec U[, vec B]), so column b
*is* instance b's ``theta``. Batch-last makes every matrix entry a length-B vector (see
:mod:`._small`).

Risk from sufficient statistics. With Sigma = X^T X / n, the least-squares end-to-end
map P_ls and R_min = its residual risk,

    R(theta) = tr((P - P_ls) Sigma (P - P_ls)^T) + R_min,   P = M or B M,

which equals (1/n) ||X P^T - Y||_F^2 exactly (normal equations) but costs O(k d^2)
instead of O(n k d) per instance and keeps full relative accuracy as R -> R_min (no
cancellation between large terms). The gradient with respect to P is 2 (P - P_ls) Sigma
(no-1/2 loss, LOSS_FACTOR = 2, pitfall P7), then the IFT formulas of LIN-GRAD (b).
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple, final

import torch

from .._validate import positive_int
from ..errors import InvalidInputError, ShapeError
from ..models.base import LOSS_FACTOR
from . import _small as sm

Tensor = torch.Tensor


def resolve_device(device) -> torch.device:
    """A torch device from ``None``/``"cpu"``/``"cuda"``/``torch.device``.

    Raises InvalidInputError with a clear message when CUDA is asked for and absent.
    """
    if device is None:
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise InvalidInputError(
            f"unknown device {device!r}; use 'cpu' or 'cuda'"
        ) from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InvalidInputError(
            "device 'cuda' was requested but CUDA is not available in this torch build "
            f"(torch {torch.__version__}, cuda={torch.version.cuda}); "
            "use --device cpu, "
            "or install a CUDA build of torch on a machine with an NVIDIA GPU"
        )
    if dev.type not in ("cpu", "cuda"):
        raise InvalidInputError(
            f"device {device!r} is not supported; use 'cpu' or 'cuda'"
        )
    return dev


_DTYPES = {"float64": torch.float64, "float32": torch.float32}


def resolve_dtype(dtype) -> torch.dtype:
    """torch.float64 / torch.float32 from a dtype or its name."""
    if isinstance(dtype, torch.dtype):
        if dtype not in _DTYPES.values():
            raise InvalidInputError(
                f"dtype {dtype} is not supported; use float64 or float32"
            )
        return dtype
    if dtype not in _DTYPES:
        raise InvalidInputError(f"unknown dtype {dtype!r}; use 'float64' or 'float32'")
    return _DTYPES[dtype]


class BatchEval(NamedTuple):
    """One evaluation of B risks and gradients (batch last).

    Attributes:
        risk: (B,) no-1/2 MSE risk.
        grad: (P, B) exact IFT gradient, flat in ``pack`` order.
        A: (m, m, B) I - W.
        A_inv: (m, m, B) its inverse.
        M: (m, d, B) end-to-end map (I - W)^{-1} U.
        ok: (B,) bool, False where I - W is singular or a value is non-finite.
    """

    risk: Tensor
    grad: Tensor
    A: Tensor
    A_inv: Tensor
    M: Tensor
    ok: Tensor


@final
class BatchedMatrixDEQ:
    """B matrix linear DEQs with per-instance data, risk and exact gradient in torch.

    Same model, loss and gradients as :class:`dynamics.MatrixLinearDEQ` (claim
    LIN-GRAD b); conserved quantities C = A A^T + U U^T and, with readout,
    C' = A^T A + B^T B (LIN-GF-CONS). The data enter only through the sufficient
    statistics, computed once in float64 and then cast to ``dtype``.

    Args:
        X: inputs, (B, n, d), one sample per row (as in ``MatrixLinearDEQ``).
        Y: targets, (B, n, k); without a readout k must equal ``m``.
        m: state dimension.
        readout: train a readout B (k x m).
        device: "cpu", "cuda" or a torch.device (CUDA absent -> InvalidInputError).
        dtype: torch.float64 (default) or torch.float32 for the dynamics.
    """

    def __init__(
        self, X, Y, m: int, readout: bool = False, *, device=None, dtype=torch.float64
    ):
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype)
        X = torch.as_tensor(X, dtype=torch.float64, device=self.device)
        Y = torch.as_tensor(Y, dtype=torch.float64, device=self.device)
        if X.ndim != 3 or Y.ndim != 3:
            raise ShapeError(
                f"X and Y must be (B, n, d) and (B, n, k); got {tuple(X.shape)}"
                f" and {tuple(Y.shape)}"
            )
        if X.shape[:2] != Y.shape[:2]:
            raise ShapeError(
                f"X {tuple(X.shape)} and Y {tuple(Y.shape)} disagree on (B, n)"
            )
        if not (bool(torch.isfinite(X).all()) and bool(torch.isfinite(Y).all())):
            raise InvalidInputError("X or Y contains non-finite values")
        positive_int("m", m)
        self.B, self.n, self.d = X.shape
        self.k = Y.shape[2]
        self.m = int(m)
        self.readout = bool(readout)
        if not self.readout and self.k != self.m:
            raise ShapeError(
                f"without a readout Y needs k = m = {self.m} columns; "
                f"got {self.k} (or pass readout=True)"
            )
        if self.n < self.d:
            raise ShapeError(
                f"need n >= d for a positive-definite covariance; got "
                f"n = {self.n}, d = {self.d}"
            )
        stats = _sufficient_statistics(X, Y)
        self.sigma_hat = stats["sigma"]  # (B, d, d) float64, batch first
        self.target_map = stats["target"]  # (B, k, d) least-squares P_ls
        self.min_risk = stats["min_risk"]  # (B,)
        self.lambda_min = stats["lambda_min"]  # (B,)
        self.lambda_max = stats["lambda_max"]  # (B,)
        self.target_norm = torch.linalg.matrix_norm(self.target_map, ord=2)
        # Batch-last working copies in the dynamics dtype.
        self._sigma = sm.to_batch_last(self.sigma_hat).to(self.dtype)
        self._target = sm.to_batch_last(self.target_map).to(self.dtype)
        self._min_risk = self.min_risk.to(self.dtype)
        mm, md, km = self.m * self.m, self.m * self.d, self.k * self.m
        self.sizes = (mm, md, km if self.readout else 0)
        self.n_params = sum(self.sizes)

    # -- parameters -------------------------------------------------------------------
    def pack(self, W, U, Bro=None) -> Tensor:
        """Flat (P, B) parameters from batch-first W (B,m,m), U (B,m,d)[, B (B,k,m)]."""
        parts = [
            torch.as_tensor(W, dtype=self.dtype, device=self.device).reshape(
                self.B, -1
            ),
            torch.as_tensor(U, dtype=self.dtype, device=self.device).reshape(
                self.B, -1
            ),
        ]
        if self.readout:
            if Bro is None:
                raise ShapeError("this batch trains a readout: pass B (B, k, m)")
            parts.append(
                torch.as_tensor(Bro, dtype=self.dtype, device=self.device).reshape(
                    self.B, -1
                )
            )
        elif Bro is not None:
            raise ShapeError("this batch has no readout: B must be None")
        theta = torch.cat(parts, dim=1)
        if theta.shape[1] != self.n_params:
            raise ShapeError(
                f"parameters have {theta.shape[1]} entries per instance; "
                f"expected {self.n_params}"
            )
        return theta.T.contiguous()

    def unpack(self, theta: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        """Batch-last views W (m, m, B), U (m, d, B), B (k, m, B) or None."""
        mm, md, km = self.sizes
        nb = theta.shape[1]
        W = theta[:mm].reshape(self.m, self.m, nb)
        U = theta[mm : mm + md].reshape(self.m, self.d, nb)
        Bro = theta[mm + md :].reshape(self.k, self.m, nb) if self.readout else None
        return W, U, Bro

    # -- risk and gradient ------------------------------------------------------------
    def evaluate(self, theta: Tensor) -> BatchEval:
        """Risks and exact gradients of all instances at ``theta`` (P, B)."""
        W, U, Bro = self.unpack(theta)
        A = sm.eye_like(self.m, theta) - W
        A_inv, det = sm.inv(A)
        M = sm.matmul(A_inv, U)
        P = M if Bro is None else sm.matmul(Bro, M)
        D = P - self._target
        DS = sm.matmul(D, self._sigma)
        risk = sm.colsum(DS * D) + self._min_risk
        G_out = DS * LOSS_FACTOR
        G = G_out if Bro is None else sm.matmul(sm.t(Bro), G_out)
        gU = sm.matmul(sm.t(A_inv), G)
        gW = sm.matmul(gU, sm.t(M))
        nb = theta.shape[1]
        parts = [gW.reshape(-1, nb), gU.reshape(-1, nb)]
        if Bro is not None:
            parts.append(sm.matmul(G_out, sm.t(M)).reshape(-1, nb))
        grad = torch.cat(parts, 0)
        # A finite non-zero determinant and a finite risk imply a finite gradient up
        # to overflow, which the next step's risk then shows.
        ok = torch.isfinite(det) & (det != 0) & torch.isfinite(risk)
        return BatchEval(risk, grad, A, A_inv, M, ok)

    def C(self, theta: Tensor) -> Tensor:
        """A A^T + U U^T per instance, (m, m, B)."""
        W, U, _ = self.unpack(theta)
        A = sm.eye_like(self.m, theta) - W
        return sm.gram(A) + sm.gram(U)

    def C_readout(self, theta: Tensor) -> Tensor:
        """A^T A + B^T B per instance, (m, m, B) (readout batches only)."""
        W, _, Bro = self.unpack(theta)
        if Bro is None:
            raise ShapeError("C' = A^T A + B^T B needs readout=True")
        A = sm.eye_like(self.m, theta) - W
        return sm.matmul(sm.t(A), A) + sm.matmul(sm.t(Bro), Bro)

    def select(self, idx: Tensor) -> BatchedMatrixDEQ:
        """The sub-batch of instances ``idx`` (a LongTensor), without recomputation."""
        new = object.__new__(BatchedMatrixDEQ)
        new.__dict__.update(self.__dict__)
        idx = idx.to(self.device)
        new.B = int(idx.numel())
        for name in (
            "sigma_hat",
            "target_map",
            "min_risk",
            "lambda_min",
            "lambda_max",
            "target_norm",
        ):
            setattr(new, name, getattr(self, name)[idx])
        new._sigma = self._sigma[..., idx]
        new._target = self._target[..., idx]
        new._min_risk = self._min_risk[idx]
        return new


def _sufficient_statistics(X: Tensor, Y: Tensor) -> dict[str, Tensor]:
    """Sigma, least-squares map, residual risk, Sigma's extreme eigenvalues (float64).

    The least-squares map comes from a QR factorisation of X (not the normal equations,
    whose error grows like cond(X)^2), as ``np.linalg.lstsq`` in the single-instance
    model does with an SVD.
    """
    n = X.shape[1]
    sigma = X.transpose(1, 2) @ X / n
    Q, R = torch.linalg.qr(X)  # (B, n, d), (B, d, d)
    target_t = torch.linalg.solve_triangular(R, Q.transpose(1, 2) @ Y, upper=True)
    target = target_t.transpose(1, 2).contiguous()  # (B, k, d)
    resid = X @ target_t - Y
    min_risk = (resid * resid).sum((1, 2)) / n
    eig = torch.linalg.eigvalsh(sigma)
    return {
        "sigma": sigma,
        "target": target,
        "min_risk": min_risk,
        "lambda_min": eig[:, 0],
        "lambda_max": eig[:, -1],
    }


@dataclasses.dataclass(frozen=True)
class RateConstants:
    """Per-instance constants of the bounds of R3, R4 and R6 at theta0 (float64, (B,)).

    Attributes:
        risk0: R(theta0) - R_min (risk above its minimum; docs/theory/linear.md
        non-realizable rule).
        lam_min_C0, lam_max_C0: extreme eigenvalues of C0 = A0 A0^T + U0 U0^T.
        M_bar: ||P_ls||_2 + sqrt(risk0 / lambda_min(Sigma)) (bounds ||M(t)||_2, R3).
        cond_lower: lambda_min(C0) / (1 + M_bar^2), the LIN-COND (b) bound on
            sigma_min(I - W(t))^2.
        kappa: GF rate 2 * loss_factor * lambda / lambda_max(C0) (LIN-GF-RATE;
            4 lambda / lambda_max(C0) for the no-1/2 loss).
        C0: (B, m, m) batch-first C0.
    """

    risk0: Tensor
    lam_min_C0: Tensor
    lam_max_C0: Tensor
    M_bar: Tensor
    cond_lower: Tensor
    kappa: Tensor
    C0: Tensor
    loss_factor: float


def rate_constants(
    batch: BatchedMatrixDEQ, theta0: Tensor, *, loss_factor: float = LOSS_FACTOR
) -> RateConstants:
    """Bound constants of every instance at ``theta0``, computed in float64.

    ``loss_factor`` is the factor every gradient carries (2 for the no-1/2 MSE of this
    project, 1 for a 1/2-MSE); the PL and rate constants scale with it (pitfall P7).
    """
    th = theta0.to(torch.float64)
    W, U, _ = batch.unpack(th)
    A = sm.eye_like(batch.m, th) - W
    C0 = sm.to_batch_first(sm.gram(A) + sm.gram(U))
    eig = torch.linalg.eigvalsh(C0)
    lam_min_C0, lam_max_C0 = eig[:, 0], eig[:, -1]
    sub = _float64_view(batch)
    risk0 = torch.clamp(sub.evaluate(th).risk - batch.min_risk, min=0.0)
    lam = batch.lambda_min
    M_bar = batch.target_norm + torch.sqrt(risk0 / lam)
    cond_lower = lam_min_C0 / (1.0 + M_bar * M_bar)
    kappa = 2.0 * loss_factor * lam / lam_max_C0
    return RateConstants(
        risk0, lam_min_C0, lam_max_C0, M_bar, cond_lower, kappa, C0, float(loss_factor)
    )


def hessian_norm(batch: BatchedMatrixDEQ, theta: Tensor, iters: int = 20) -> Tensor:
    """||Hessian of R||_2 at ``theta`` per instance, by power iteration (B,), float64.

    Hessian-vector products are central differences of the exact gradient (step
    1e-6 * (1 + |theta|)), which is ample for choosing a step size. The start vector is
    fixed (not random), so the estimate of an instance does not depend on its batch.
    """
    th = theta.to(torch.float64)
    sub = _float64_view(batch)
    P = th.shape[0]
    v = torch.linspace(1.0, 2.0, P, dtype=torch.float64, device=th.device)[:, None]
    v = v * torch.ones_like(th)
    v = v / sm.colnorm(v)
    eps = 1e-6 * (1.0 + sm.colnorm(th))
    lam = torch.zeros(th.shape[1], dtype=torch.float64, device=th.device)
    for _ in range(iters):
        hv = (sub.evaluate(th + eps * v).grad - sub.evaluate(th - eps * v).grad) / (
            2 * eps
        )
        lam = sm.colnorm(hv)
        v = hv / torch.where(lam > 0, lam, torch.ones_like(lam))
    return lam


def _float64_view(batch: BatchedMatrixDEQ) -> BatchedMatrixDEQ:
    if batch.dtype == torch.float64:
        return batch
    new = object.__new__(BatchedMatrixDEQ)
    new.__dict__.update(batch.__dict__)
    new.dtype = torch.float64
    new._sigma = sm.to_batch_last(batch.sigma_hat)
    new._target = sm.to_batch_last(batch.target_map)
    new._min_risk = batch.min_risk
    return new

