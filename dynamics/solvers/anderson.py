"""Anderson acceleration with a safeguarded, regularised least-squares mixing step."""

from __future__ import annotations

import dataclasses
import math
from typing import final

import torch

from .._validate import positive_int
from ..errors import InvalidInputError
from .base import AbstractFixedPointSolver, Map, State
from .relaxed import check_beta

#: Tikhonov term of the mixing system H = G G^T + lam * s I, where s is the mean
#: diagonal of G G^T. The authors use an absolute 1e-6; an absolute term swamps G G^T
#: once residuals fall below ~1e-3 and turns Anderson into a plain average of the
#: history (it then converges slower than relaxed iteration), so the term is made
#: relative to the residual scale. It still keeps H positive definite when the history
#: is singular (repeated or collinear rows).
ANDERSON_LAM = 1e-6


@final
@dataclasses.dataclass(frozen=True)
class Anderson(AbstractFixedPointSolver):
    """Anderson acceleration (type II) with history ``m + 1``.

    Stack the residuals ``g_i = f(z_i) - z_i`` of the last ``m + 1`` iterates row-wise
    into ``G``, solve ``(G G^T + lam I) alpha = 1``, normalise ``alpha /= sum(alpha)``
    and set ``z <- (1 - beta) sum_i alpha_i z_i + beta sum_i alpha_i f(z_i)``; 1 NFE per
    step. Safeguards: the system is regularised relative to its own scale (see
    ``ANDERSON_LAM``), solved with a non-raising solver, and an example whose weights
    come out non-finite (e.g. an exactly zero history) takes a plain relaxed step
    instead, so a singular history never crashes. The history starts as ``m + 1``
    copies of ``(z0, f(z0))``, which makes the first step a relaxed step.
    Reference: docs/theory/reversible.md (authors' baseline ``m = 1``, ``beta = 0.8``).

    Args:
        m: history length minus one (>= 1).
        beta: mixing parameter in (0, 2).
        lam: relative Tikhonov regularisation (> 0).
    """

    m: int = 1
    beta: float = 0.8
    lam: float = ANDERSON_LAM

    def __post_init__(self):
        positive_int("Anderson m", self.m, error=InvalidInputError, exact_type=True)
        object.__setattr__(self, "beta", check_beta("Anderson beta", self.beta))
        if not (math.isfinite(float(self.lam)) and float(self.lam) > 0):
            raise InvalidInputError(
                f"Anderson lam must be positive and finite; got {self.lam!r}"
            )

    def init(self, f: Map, z0: torch.Tensor) -> State:
        fz = f(z0)
        b, h = z0.shape[0], self.m + 1
        if torch.is_grad_enabled():
            # Functional path: the unrolled gradient differentiates through the loop,
            # so nothing may be written in place.
            zh = z0.reshape(b, 1, -1).expand(b, h, -1)
            fh = fz.reshape(b, 1, -1).expand(b, h, -1)
            return {"fz": fz, "zh": zh, "fh": fh}
        # In-place path (no graph): ring buffers of iterates and residuals and the Gram
        # matrix, updated one row per step instead of being rebuilt and copied.
        zf = z0.reshape(b, 1, -1)
        gf = (fz - z0).reshape(b, 1, -1)
        zh = zf.expand(b, h, -1).clone()
        gh = gf.expand(b, h, -1).clone()
        g2 = (gf * gf).sum(dim=2)  # (B, 1)
        gram = g2[:, :, None].expand(b, h, h).clone()
        slot = torch.zeros(b, dtype=torch.int64, device=z0.device)
        return {"fz": fz, "zh": zh, "gh": gh, "gram": gram, "slot": slot}

    def _weights(self, gram: torch.Tensor, newest: int | None) -> torch.Tensor:
        """Normalised mixing weights from ``(G G^T + reg I) alpha = 1``; an example
        with non-finite weights puts all mass on the newest iterate."""
        h = gram.shape[-1]
        diag = torch.diagonal(gram, dim1=1, dim2=2)
        reg = self.lam * diag.mean(dim=1).detach()
        eye = torch.eye(h, dtype=gram.dtype, device=gram.device)
        mat = gram + reg[:, None, None] * eye
        ones = torch.ones(gram.shape[0], h, 1, dtype=gram.dtype, device=gram.device)
        alpha, _ = torch.linalg.solve_ex(mat, ones)
        alpha = alpha[..., 0]
        alpha = alpha / alpha.sum(dim=1, keepdim=True)
        good = torch.isfinite(alpha).all(dim=1, keepdim=True)
        last = torch.zeros_like(alpha)
        last[:, -1 if newest is None else newest] = 1.0
        return torch.where(good, alpha, last)

    def step(self, f: Map, z: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        if "gh" in state:
            return self._step_inplace(f, z, state)
        zh, fh = state["zh"], state["fh"]
        g = fh - zh
        gram = g @ g.transpose(1, 2)
        alpha = self._weights(gram, None)
        mix = (1.0 - self.beta) * zh + self.beta * fh
        z_next = (alpha[:, None, :] @ mix)[:, 0].reshape(z.shape)
        fz = f(z_next)
        b = z.shape[0]
        zh = torch.cat([zh[:, 1:], z_next.reshape(b, 1, -1)], dim=1)
        fh = torch.cat([fh[:, 1:], fz.reshape(b, 1, -1)], dim=1)
        return z_next, {"fz": fz, "zh": zh, "fh": fh}

    def _step_inplace(
        self, f: Map, z: torch.Tensor, state: State
    ) -> tuple[torch.Tensor, State]:
        # Same iterate as the functional step (the weights do not depend on the order
        # of the history), with z_i + beta g_i = (1 - beta) z_i + beta f(z_i). Every
        # buffer, the slot counter included, is updated in place, so the driver's
        # masking leaves them alone (a frozen example's history is never read again).
        zh, gh, gram, slot = state["zh"], state["gh"], state["gram"], state["slot"]
        h = gram.shape[-1]
        s = int(slot[0])
        alpha = self._weights(gram, (s - 1) % h)[:, None, :]
        # Two bmm and in-place scaling: torch.baddbmm is ~5x slower here on CPU.
        z_next = torch.bmm(alpha, gh).mul_(self.beta).add_(torch.bmm(alpha, zh))
        z_next = z_next[:, 0].reshape(z.shape)
        fz = f(z_next)
        b = z.shape[0]
        zh[:, s] = z_next.reshape(b, -1)
        torch.sub(fz.reshape(b, -1), zh[:, s], out=gh[:, s])
        row = (gh @ gh[:, s, :, None])[..., 0]
        gram[:, s, :] = row
        gram[:, :, s] = row
        slot.add_(1).remainder_(h)
        return z_next, {"fz": fz, "zh": zh, "gh": gh, "gram": gram, "slot": slot}
