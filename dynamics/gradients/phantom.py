"""Phantom gradients: backprop through k damped steps started at the solution."""

from __future__ import annotations

import dataclasses
from typing import final

from .._result import Result
from ..errors import InvalidInputError
from .base import (
    AbstractGradient,
    record_backward,
    solve_detached,
)


@final
@dataclasses.dataclass(frozen=True)
class Phantom(AbstractGradient):
    """Phantom gradient (Geng et al., 2021): from the forward solution z*, run
    ``k`` steps ``z <- (1 - tau) z + tau f(z)`` with autograd and backpropagate through
    them only.

    Memory O(k) evaluations of f; k extra evaluations of f in the forward pass (counted
    in ``nfe_forward``) and k VJPs. The output value is z* (straight-through, so the
    forward value does not depend on the gradient method). Scalar factor
    ``c(v) = 1 - (1 - tau (1 - v))^k``. Authors' defaults: tau 0.5, k 10 (their
    test: 50).

    Args:
        k: number of unrolled damped steps (>= 1).
        tau: damping in (0, 1].
    """

    k: int = 10
    tau: float = 0.5

    def __post_init__(self):
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1:
            raise InvalidInputError(
                f"Phantom k must be an integer >= 1; got {self.k!r}"
            )
        tau = float(self.tau)
        if not 0.0 < tau <= 1.0:
            raise InvalidInputError(f"Phantom tau must lie in (0, 1]; got {self.tau!r}")
        object.__setattr__(self, "tau", tau)

    def factor(self, v: float) -> float:
        return 1.0 - (1.0 - self.tau * (1.0 - v)) ** self.k

    def solve(self, problem, solver, z0, *, tol, max_steps, throw):
        f, zs, stats = solve_detached(
            problem, solver, z0, tol=tol, max_steps=max_steps, throw=throw
        )
        z = zs
        for _ in range(self.k):
            z = (1.0 - self.tau) * z + self.tau * f(z)
        stats["nfe_forward"] += self.k
        stats["nfe_backward"] = self.k
        record_backward(stats, Result.successful)
        return zs + (z - z.detach()), stats
