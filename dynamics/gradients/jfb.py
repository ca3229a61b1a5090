"""Jacobian-free backprop: replace (I - J^T)^{-1} by I."""

from __future__ import annotations

import dataclasses
from typing import final

import torch

from .._result import Result
from ..fixed_point.iterate import iterate
from .base import AbstractGradient, finish_forward, forward_stats, record_backward


@final
@dataclasses.dataclass(frozen=True)
class JFB(AbstractGradient):
    """Jacobian-free backprop (Fung et al., 2022): gradient ``(d_theta f(z*))^T g``.

    One extra evaluation of f at the solution (with autograd) and one VJP; memory of a
    single f. The output value is the solver's iterate z* (straight-through:
    ``z* + f(z*) - stop_grad(f(z*))``). Scalar factor ``c(v) = 1 - v``.
    """

    def factor(self, v: float) -> float:
        return 1.0 - v

    def solve(self, problem, solver, z0, *, tol, max_steps, throw):
        f = problem.bind()
        with torch.no_grad():
            run = iterate(solver, f, z0, tol=tol, max_steps=max_steps)
        stats = forward_stats(run)
        finish_forward(run, stats, tol, max_steps, throw)
        zs = run.z.detach()
        fz = f(zs)
        stats["nfe_forward"] += 1
        stats["nfe_backward"] = 1
        record_backward(stats, Result.successful)
        return zs + (fz - fz.detach()), stats
