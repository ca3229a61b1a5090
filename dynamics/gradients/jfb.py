"""Jacobian-free backprop: replace (I - J^T)^{-1} by I."""

from __future__ import annotations

import dataclasses
from typing import final

from .._result import Result
from .base import (
    AbstractGradient,
    record_backward,
    solve_detached,
)


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
        f, zs, stats = solve_detached(
            problem, solver, z0, tol=tol, max_steps=max_steps, throw=throw
        )
        fz = f(zs)
        stats["nfe_forward"] += 1
        stats["nfe_backward"] = 1
        record_backward(stats, Result.successful)
        return zs + (fz - fz.detach()), stats
