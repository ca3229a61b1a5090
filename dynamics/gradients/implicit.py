"""Implicit (IFT) gradient: the adjoint fixed point solved by a chosen method."""

from __future__ import annotations

import dataclasses
from typing import final

import torch

from .._result import Result, raise_for
from ..solvers.base import AbstractFixedPointSolver
from ..solvers.iterate import (
    check_tolerances,
    describe_failure,
    iterate,
    should_raise,
)
from .base import (
    AbstractGradient,
    record_backward,
    solve_detached,
)


@final
@dataclasses.dataclass(frozen=True)
class ImplicitIFT(AbstractGradient):
    """Implicit-function-theorem gradient with an iterative adjoint solve.

    After a ``no_grad`` forward solve to z*, the incoming gradient ``g`` is replaced by
    the solution ``u`` of the adjoint fixed point ``u = J_f(z*)^T u + g``, solved by
    ``linear_solver`` (default: the forward solver's own class and settings, as the
    authors do) to relative residual ``tol`` within ``max_steps``; then ``u`` is pulled
    back through one evaluation of f at z* to the parameters and to x. Memory of one f.
    Two error sources (docs/theory/reversible.md): z* is inexact and the adjoint solve
    is truncated.
    The backward residual and step counts are reported (``backward_residual``,
    ``backward_nstep``); a backward solve that does not converge raises
    :class:`ConvergenceError` when ``throw`` is true and is recorded in
    ``stats["backward_result"]`` otherwise. Scalar factor ``c(v) = 1``.

    Args:
        tol: relative residual tolerance of the adjoint solve (authors: 1e-8).
        max_steps: step cap of the adjoint solve (authors: 100).
        linear_solver: fixed-point solver for the adjoint equation, or None.
    """

    tol: float = 1e-8
    max_steps: int = 100
    linear_solver: AbstractFixedPointSolver | None = None

    def __post_init__(self):
        check_tolerances(self.tol, self.max_steps)
        if self.linear_solver is not None:
            self.check_solver(self.linear_solver)

    def solve(self, problem, solver, z0, *, tol, max_steps, throw):
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
        if not fz.requires_grad:  # nothing upstream needs a gradient
            record_backward(stats, Result.successful)
            return zs, stats
        lin = self.linear_solver if self.linear_solver is not None else solver
        btol, bsteps = self.tol, self.max_steps

        def hook(g: torch.Tensor) -> torch.Tensor:
            g = g.detach()

            def adjoint_map(u: torch.Tensor) -> torch.Tensor:
                (jtu,) = torch.autograd.grad(fz, zl, u, retain_graph=True)
                return jtu + g

            with torch.no_grad():
                back = iterate(lin, adjoint_map, g, tol=btol, max_steps=bsteps)
            stats["nfe_backward"] = back.stats["nfe_forward"] + 1
            stats["backward_residual"] = back.stats["residual"]
            stats["backward_nstep"] = back.stats["nstep"]
            record_backward(stats, back.result)
            if throw and should_raise(back.result, btol):
                raise_for(
                    back.result,
                    "implicit adjoint solve: " + describe_failure(back, btol, bsteps),
                )
            return back.z

        # The hook sits on a separate node: the VJPs inside it differentiate ``fz``
        # itself and must not re-trigger it.
        fz_out = fz.view_as(fz)
        fz_out.register_hook(hook)
        return zs + (fz_out - fz_out.detach()), stats
