"""Limited-memory (good) Broyden root finding on g(z) = f(z) - z."""

from __future__ import annotations

import dataclasses
from typing import final

import torch

from .._validate import positive_int
from ..errors import InvalidInputError
from .base import AbstractFixedPointSolver, Map, State

#: Skip a rank-one update whose denominator |dz^T H dg| is below this fraction of
#: ||dz|| ||H dg||: the secant condition is then numerically meaningless.
BROYDEN_SKIP = 1e-10


@final
@dataclasses.dataclass(frozen=True)
class Broyden(AbstractFixedPointSolver):
    """Broyden's ("good") method for ``f(z) - z = 0`` with an inverse Jacobian
    ``H = -I + U V^T`` of rank at most ``memory`` (oldest update dropped first).

    Superlinear near a regular root for smooth ``f``; no global guarantee; 1 NFE per
    step, full steps (no line search). The first step is a Picard step. Safeguards:
    updates with a vanishing secant denominator are skipped; an example whose step is
    non-finite takes a Picard step instead. Reference: Bai et al. (2019), DEQ.

    Args:
        memory: number of stored rank-one updates (>= 1).
    """

    memory: int = 16

    def __post_init__(self):
        positive_int(
            "Broyden memory", self.memory, error=InvalidInputError, exact_type=True
        )

    def init(self, f: Map, z0: torch.Tensor) -> State:
        fz = f(z0)
        b = z0.shape[0]
        d = z0[0].numel()
        shape = (b, self.memory, d)
        u = torch.zeros(shape, dtype=z0.dtype, device=z0.device)
        if torch.is_grad_enabled():
            # Functional path: an unrolled gradient differentiates through the loop,
            # so the history is rebuilt each step (nothing written in place).
            return {"fz": fz, "u": u, "v": u}
        # In-place path (no graph): u and v are ring buffers written one row per step
        # instead of being copied by torch.cat every step. H = -I + sum_i u_i v_i^T
        # does not depend on the order of the rows, so the iterates are the same up to
        # the summation order of the rank-one terms.
        v = torch.zeros(shape, dtype=z0.dtype, device=z0.device)
        slot = torch.zeros(b, dtype=torch.int64, device=z0.device)
        return {"fz": fz, "u": u, "v": v, "slot": slot}

    @staticmethod
    def _apply(u, v, x):  # H x with H = -I + U^T-rows: -x + sum_i u_i (v_i . x)
        return -x + ((v @ x[..., None])[..., 0][:, None, :] @ u)[:, 0]

    @staticmethod
    def _apply_t(u, v, x):  # H^T x = -x + sum_i v_i (u_i . x)
        return -x + ((u @ x[..., None])[..., 0][:, None, :] @ v)[:, 0]

    def step(self, f: Map, z: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        b = z.shape[0]
        u, v = state["u"], state["v"]
        zf = z.reshape(b, -1)
        g = state["fz"].reshape(b, -1) - zf
        dz = -self._apply(u, v, g)
        picard = g
        good = torch.isfinite(dz).all(dim=1, keepdim=True)
        dz = torch.where(good, dz, picard)
        z_next = (zf + dz).reshape(z.shape)
        fz = f(z_next)
        g_next = fz.reshape(b, -1) - z_next.reshape(b, -1)
        dg = g_next - g
        hdg = self._apply(u, v, dg)
        den = (dz * hdg).sum(dim=1, keepdim=True)
        scale = torch.linalg.vector_norm(
            dz, dim=1, keepdim=True
        ) * torch.linalg.vector_norm(hdg, dim=1, keepdim=True)
        use = (den.abs() > BROYDEN_SKIP * scale) & torch.isfinite(den)
        safe_den = torch.where(use, den, torch.ones_like(den))
        new_u = torch.where(use, (dz - hdg) / safe_den, torch.zeros_like(dz))
        new_v = torch.where(use, self._apply_t(u, v, dz), torch.zeros_like(dz))
        if "slot" in state:
            # Every buffer, the slot counter included, is updated in place, so the
            # driver's masking leaves them alone (a frozen example's history is never
            # read again); the oldest update is the one overwritten.
            slot = state["slot"]
            s = int(slot[0])
            u[:, s] = new_u
            v[:, s] = new_v
            slot.add_(1).remainder_(self.memory)
            return z_next, {"fz": fz, "u": u, "v": v, "slot": slot}
        u = torch.cat([u[:, 1:], new_u[:, None]], dim=1)
        v = torch.cat([v[:, 1:], new_v[:, None]], dim=1)
        return z_next, {"fz": fz, "u": u, "v": v}
