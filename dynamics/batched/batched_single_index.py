"""B independent deep equilibrium single-index models y = sigma(<u, x> + v y) under
gradient descent, at once, in torch (the batched twin of
:class:`dynamics.models.single_index.SingleIndexDEQ`, docs/theory/single_index.md and
R7).

Forward: a batched safeguarded Newton solve of F(y) = y - sigma(a + v y) = 0 for all
samples of all instances, each root kept inside a bracket (the activation table's
rule: its range when bounded, the monotone bracket for an increasing sigma, else the
contraction bracket; pitfall P4), warm-started from the previous GD step's roots, to
residual <= ``tol`` (1e-13, the single-instance default). An element stops updating
once its own residual is below ``tol``, so results do not depend on the batch.

Gradient (SIM-GRAD): w_i = 2 (f_i - y_i) sigma'(s_i) / (1 - v sigma'(s_i)),
grad_u = mean_i w_i x_i, d_v = mean_i w_i f_i.

Per instance the GD run tracks the risk, whether it ever increased, the distance to
theta* = (xi, 0), and the late per-step risk ratio, compared with R7's asymptotic
prediction rho_lin^2, rho_lin = max_i |1 - eta lambda_i(H*)| (SIM-LOCAL-RATE).
Layout: batch last, X (n, d, B), parameters (d + 1, B) in ``SingleIndexDEQ.pack``
order (u then v).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch

from .._validate import positive_int
from ..errors import InvalidInputError, ShapeError, WellPosednessError
from ..models.activations import Activation, get_activation
from ..models.base import LOSS_FACTOR
from . import _small as sm
from .batched_linear import resolve_device, resolve_dtype
from .single_index import torch_sigma

Tensor = torch.Tensor
ROOT_TOL = 1e-13
ROOT_MAX_ITER = 100
#: Relative widening of brackets, as in the NumPy activation table.
_SLACK = 1e-12


class BatchedSingleIndexDEQ:
    """B single-index DEQs with per-instance data (same activation and dims).

    Args:
        X: (B, n, d) inputs; y: (B, n) targets.
        activation: an :class:`Activation` or a table name ("tanh", "sigma_eps:0.25").
        device, dtype: as for :class:`BatchedMatrixDEQ` (float64 default).
        tol: Newton residual tolerance.
    """

    def __init__(
        self,
        X,
        y,
        activation: str | Activation,
        *,
        device=None,
        dtype=torch.float64,
        tol: float = ROOT_TOL,
    ):
        self.act = get_activation(activation)
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype)
        X = torch.as_tensor(X, dtype=self.dtype, device=self.device)
        y = torch.as_tensor(y, dtype=self.dtype, device=self.device)
        if X.ndim != 3 or y.ndim != 2 or X.shape[:2] != y.shape:
            raise ShapeError(
                f"X must be (B, n, d) and y (B, n); got {tuple(X.shape)}, "
                f"{tuple(y.shape)}"
            )
        self.B, self.n, self.d = X.shape
        self.X = X.permute(1, 2, 0).contiguous()  # (n, d, B)
        self.y = y.T.contiguous()  # (n, B)
        self.tol = float(tol)
        self.sigma, self.dsigma = torch_sigma(self.act)
        self._warm: Tensor | None = None
        self.n_params = self.d + 1

    def _inputs_dot(self, u: Tensor) -> Tensor:
        """<u_b, x_bi> for every sample and instance, (n, B), in a fixed order."""
        a = self.X[:, 0, :] * u[0][None, :]
        for j in range(1, self.d):
            a = a + self.X[:, j, :] * u[j][None, :]
        return a

    def well_posed(self, v: Tensor) -> Tensor:
        """Per-instance well-posedness (|v| L < 1, or v S < 1 for increasing sigma)."""
        ok = v.abs() * self.act.lipschitz < 1.0
        if self.act.increasing:
            ok = ok | (v * self.act.sup_slope < 1.0)
        return ok

    def _bracket(self, a: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        lo_r, hi_r = self.act.value_range
        sa = self.sigma(a)
        if math.isfinite(lo_r) and math.isfinite(hi_r):
            lo, hi = torch.full_like(a, lo_r), torch.full_like(a, hi_r)
        elif self.act.increasing:
            end = torch.where(v <= 0, sa, sa / (1.0 - v * self.act.sup_slope))
            lo, hi = (
                torch.minimum(end, torch.zeros_like(end)),
                torch.maximum(end, torch.zeros_like(end)),
            )
        else:
            q = v.abs() * self.act.lipschitz
            r = q * sa.abs() / (1.0 - q)
            lo, hi = sa - r, sa + r
        pad = _SLACK * (1.0 + lo.abs() + hi.abs())
        return lo - pad, hi + pad

    def solve(self, theta: Tensor, warm: bool = True) -> tuple[Tensor, Tensor, int]:
        """Roots f (n, B) at ``theta`` (d + 1, B), converged (B,), iterations."""
        u, v = theta[:-1], theta[-1][None, :]
        a = self._inputs_dot(u)
        lo, hi = self._bracket(a, v)
        y = self.sigma(a) if (self._warm is None or not warm) else self._warm
        y = torch.minimum(torch.maximum(y, lo), hi)
        done = torch.zeros_like(y, dtype=torch.bool)
        it = 0
        for it in range(1, ROOT_MAX_ITER + 1):  # noqa: B007 - returned
            s = a + v * y
            F = y - self.sigma(s)
            done = done | (F.abs() <= self.tol * torch.clamp(y.abs(), min=1.0))
            if bool(done.all()):
                break
            prop = y - F / (1.0 - v * self.dsigma(s))
            pos = F > 0
            hi = torch.where(pos, y, hi)
            lo = torch.where(pos, lo, y)
            inside = (prop > lo) & (prop < hi)
            new = torch.where(inside, prop, 0.5 * (lo + hi))
            y = torch.where(done, y, new)
        self._warm = y
        return y, done.all(0), it

    def evaluate(self, theta: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(risk (B,), grad (d + 1, B), ok (B,)) at ``theta``."""
        v = theta[-1]
        ok = self.well_posed(v)
        f, conv, _ = self.solve(theta)
        s = self._inputs_dot(theta[:-1]) + v[None, :] * f
        p = self.dsigma(s)
        r = f - self.y
        w = LOSS_FACTOR * r * p / (1.0 - v[None, :] * p)  # (n, B)
        grad_u = (
            torch.stack([sm.colsum(self.X[:, j, :] * w) for j in range(self.d)])
            / self.n
        )
        grad_v = sm.colsum(w * f) / self.n
        risk = sm.colsum(r * r) / self.n
        ok = ok & conv & torch.isfinite(risk)
        return risk, torch.cat([grad_u, grad_v[None, :]], 0), ok

    def hessian_star(self, xi: Tensor) -> Tensor:
        """H* = (2/n) sum_i sigma'(z_i)^2 w_i w_i^T, w_i = (x_i, sigma(z_i))."""
        Xb = self.X.permute(2, 0, 1)  # (B, n, d)
        z = (Xb * xi.T[:, None, :]).sum(-1)  # (B, n)
        w = torch.cat([Xb, self.sigma(z)[..., None]], -1)  # (B, n, d+1)
        g = self.dsigma(z) ** 2
        return LOSS_FACTOR / self.n * torch.einsum("bn,bni,bnj->bij", g, w, w)


@dataclasses.dataclass
class SingleIndexRun:
    """Per-instance results of a batched single-index GD run (tensors (B,)).

    Attributes:
        theta: (d + 1, B) final parameters.
        risks: (K + 1, B) risk at every step.
        ok: no guard violation, unconverged root or non-finite value.
        risk_increased: the risk went up at some step (above 1e-14 R0).
        dist0, dist_final: ||theta - theta*|| at the start and the end.
        rate_ratio: geometric-mean per-step risk ratio over the last quarter of the
            run, divided by rho_lin^2 (NaN where the risk reached the float floor).
        rho_lin2: R7's asymptotic per-step ratio prediction.
    """

    theta: Tensor
    risks: Tensor
    ok: Tensor
    risk_increased: Tensor
    dist0: Tensor
    dist_final: Tensor
    rate_ratio: Tensor
    rho_lin2: Tensor


def gradient_descent(
    model: BatchedSingleIndexDEQ,
    theta0: Tensor,
    eta,
    steps: int,
    *,
    xi: Tensor | None = None,
) -> SingleIndexRun:
    """``steps`` GD updates of every instance (eta scalar or (B,)); SingleIndexRun."""
    if theta0.shape != (model.n_params, model.B):
        raise InvalidInputError(
            f"theta0 must be ({model.n_params}, {model.B}); got {tuple(theta0.shape)}"
        )
    positive_int("steps", steps, error=InvalidInputError)
    eta = torch.as_tensor(eta, dtype=model.dtype, device=model.device).expand(model.B)
    theta = theta0.to(model.device, model.dtype).clone()
    if not bool(model.well_posed(theta[-1]).all()):
        raise WellPosednessError(
            "some instances start outside the well-posedness region"
        )
    model._warm = None
    risks, ok = [], torch.ones(model.B, dtype=torch.bool, device=model.device)
    for k in range(steps + 1):
        risk, grad, good = model.evaluate(theta)
        ok = ok & good
        risks.append(risk)
        if k == steps:
            break
        theta = torch.where(ok[None, :], theta - eta[None, :] * grad, theta)
    R = torch.stack(risks)
    floor = 1e-14 * R[0]
    increased = ((R[1:] > R[:-1] * (1 + 1e-12)) & (R[1:] > floor)).any(0)
    nan = torch.full_like(R[0], math.nan)
    dist0 = dist_final = rho2 = ratio = nan
    if xi is not None:
        star = torch.cat([xi, torch.zeros_like(xi[:1])], 0).to(theta)
        dist0 = sm.colnorm(theta0.to(theta) - star)
        dist_final = sm.colnorm(theta - star)
        lam = torch.linalg.eigvalsh(model.hessian_star(xi.to(theta)))
        rho = torch.maximum(
            (1 - eta[:, None] * lam).abs().amax(1), torch.zeros_like(eta)
        )
        rho2 = rho * rho
        q = max(1, steps // 4)
        tail = R[-q - 1 :]
        valid = (tail > 1e4 * torch.finfo(model.dtype).eps ** 2 * R[0] + 1e-300).all(0)
        per_step = torch.exp((torch.log(tail[-1]) - torch.log(tail[0])) / q)
        ratio = torch.where(valid, per_step / rho2, nan)
    return SingleIndexRun(theta, R, ok, increased, dist0, dist_final, ratio, rho2)


def local_instances(
    seed: int,
    B: int,
    d: int = 5,
    n: int = 64,
    activation: str = "tanh",
    radius: float = 0.1,
    v0: float = 0.0,
) -> dict[str, np.ndarray]:
    """B realizable local instances (vectorised): x ~ N(0, I_d), xi a random unit
    vector,
    y = sigma(<xi, x>), theta0 = theta* + radius * (random unit direction) + (0, v0)."""
    rng = np.random.default_rng([int(seed), 0x51D])
    act = get_activation(activation)
    xi = rng.standard_normal((B, d))
    xi /= np.linalg.norm(xi, axis=1, keepdims=True)
    X = rng.standard_normal((B, n, d))
    y = act.sigma(np.einsum("bnd,bd->bn", X, xi))
    direc = rng.standard_normal((B, d + 1))
    direc /= np.linalg.norm(direc, axis=1, keepdims=True)
    theta0 = np.concatenate([xi, np.zeros((B, 1))], 1) + radius * direc
    theta0[:, -1] += v0
    return {"X": X, "y": y, "xi": xi, "theta0": theta0}
