"""Dense IFT gradient: the adjoint linear system solved exactly (small states)."""

from __future__ import annotations

import dataclasses
from typing import final

import torch

from .._result import Result, raise_for
from ..errors import InvalidInputError
from .base import (
    AbstractGradient,
    record_backward,
    solve_detached,
)


#: The dense solve marks the system singular when its relative residual exceeds
#: sqrt(eps) of the dtype (1.5e-8 in float64, 3.5e-4 in float32): the residual of a
#: backward-stable solve is about cond(I - J^T) * eps, so this is "more than half the
#: digits lost" (cond > 1/sqrt(eps)). A fixed 1e-8 sat below float32 rounding and
#: called every float32 system singular.
def dense_residual_tol(dtype: torch.dtype) -> float:
    """Singularity threshold of the dense IFT solve for ``dtype``: sqrt(eps)."""
    return float(torch.finfo(dtype).eps) ** 0.5


@final
@dataclasses.dataclass(frozen=True)
class DenseIFT(AbstractGradient):
    """IFT gradient with the per-example Jacobian formed densely and
    ``(I - J_f(z*)^T) u = g`` solved by ``torch.linalg.solve``.

    Ground truth for small states (d <= ``max_dim``): costs d VJPs to build J (counted
    in ``nfe_backward``) and O(B d^2) memory. The relative residual of the solve is
    reported in ``stats["backward_residual"]``; a singular system (solver failure or
    residual above sqrt(eps) of the dtype) gives ``Result.singular`` and raises
    :class:`SingularEquilibriumError` when ``throw`` is true. Exact at an exact fixed
    point; the error then comes only from the inexact z*. Scalar factor ``c(v) = 1``.

    Args:
        max_dim: largest per-example state size accepted.
    """

    max_dim: int = 2048

    def solve(self, problem, solver, z0, *, tol, max_steps, throw):
        d = z0[0].numel()
        if d > self.max_dim:
            raise InvalidInputError(
                f"DenseIFT forms a {d}x{d} Jacobian per example; the state is larger "
                f"than max_dim={self.max_dim}. Use ImplicitIFT() for large states."
            )
        f, zs, stats = solve_detached(
            problem, solver, z0, tol=tol, max_steps=max_steps, throw=throw
        )
        if not torch.is_grad_enabled():  # inference: no graph, no hook
            record_backward(stats, Result.successful)
            return zs, stats
        zl = zs.clone().requires_grad_()
        with torch.enable_grad():
            fz = f(zl)
        stats["nfe_forward"] += 1
        if not fz.requires_grad:
            record_backward(stats, Result.successful)
            return zs, stats

        def hook(g: torch.Tensor) -> torch.Tensor:
            b = g.shape[0]
            rows = []
            for i in range(d):  # row i of J for every example at once
                e = torch.zeros(b, d, dtype=g.dtype, device=g.device)
                e[:, i] = 1.0
                (r,) = torch.autograd.grad(
                    fz, zl, e.reshape(g.shape), retain_graph=True
                )
                rows.append(r.reshape(b, d))
            jac = torch.stack(rows, dim=1)  # (B, d, d): J[b, i, j]
            eye = torch.eye(d, dtype=g.dtype, device=g.device)
            a = eye - jac.transpose(1, 2)
            rhs = g.detach().reshape(b, d, 1)
            u, info = torch.linalg.solve_ex(a, rhs)
            res = torch.linalg.vector_norm(
                (a @ u - rhs)[..., 0], dim=1
            ) / torch.linalg.vector_norm(rhs[..., 0], dim=1).clamp_min(1e-300)
            stats["nfe_backward"] = d + 1
            stats["backward_residual"] = res
            bad = bool((info != 0).any()) or not bool(
                torch.isfinite(res).all() and (res <= dense_residual_tol(g.dtype)).all()
            )
            result = Result.singular if bad else Result.successful
            record_backward(stats, result)
            if throw and bad:
                raise_for(
                    result,
                    f"dense IFT: I - J^T is singular or ill-conditioned at "
                    f"z* (relative residual {float(res.max()):.3e}); the "
                    "equilibrium is not differentiable there",
                )
            return u.reshape(g.shape)

        # The hook sits on a separate node: the VJPs inside it differentiate ``fz``
        # itself and must not re-trigger it.
        fz_out = fz.view_as(fz)
        fz_out.register_hook(hook)
        return zs + (fz_out - fz_out.detach()), stats
