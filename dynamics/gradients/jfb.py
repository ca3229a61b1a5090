"""Jacobian-free backprop (JFB): (I - J^T)^{-1} replaced by I, so c(v) = 1 - v.

On the scalar linear DEQ this is a descent direction for v < 1 and an ascent direction
for v > 1 (claim APX-JFB). Fung et al., "JFB: Jacobian-free backpropagation for
implicit networks", AAAI 2022.
"""

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
    ``z* + f(z*) - stop_grad(f(z*))``). Closed forms: (1 - J)^{-1} -> 1,
    ``c(v) = 1 - v``.
    """

    def inverse_factor(self, J):
        return 1 + 0 * J

    def linear_factor(self, v):
        return 1 - v

    @property
    def exact(self) -> bool:
        return False

    @property
    def label(self) -> str:
        return "jfb"

    def solve(self, problem, solver, z0, *, tol, max_steps, throw):
        f, zs, stats = solve_detached(
            problem, solver, z0, tol=tol, max_steps=max_steps, throw=throw
        )
        fz = f(zs)
        stats["nfe_forward"] += 1
        stats["nfe_backward"] = 1
        record_backward(stats, Result.successful)
        return zs + (fz - fz.detach()), stats
