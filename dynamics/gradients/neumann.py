"""Truncated Neumann series: (1 - J)^{-1} replaced by sum_{k<m} J^k, so c(v) = 1 - v^m.

For even m, c(-1) = 0 and c < 0 for v < -1: GD cannot pass v = -1 and stalls there
when the zero-risk point of its sphere lies beyond (claim APX-STALL).
"""

from __future__ import annotations

import dataclasses
from typing import final

from ._series import unrolled_solve
from .base import AbstractGradient, check_terms


@final
@dataclasses.dataclass(frozen=True)
class Neumann(AbstractGradient):
    """Neumann-m: the first m terms of the Neumann series of (1 - J)^{-1}.

    Args:
        m: number of terms (m = 1 is JFB).
    """

    m: int

    def __post_init__(self):
        check_terms("m", self.m)

    def inverse_factor(self, J):
        total = 1 + 0 * J
        power = 1 + 0 * J
        for _ in range(1, self.m):
            power = power * J
            total = total + power
        return total

    def linear_factor(self, v):
        return 1 - v**self.m

    @property
    def label(self) -> str:
        return f"neumann-{self.m}"

    @property
    def exact(self) -> bool:
        return False

    def solve(self, problem, solver, z0, *, tol, max_steps, throw):
        """In torch, Neumann-m is the phantom chain with lam = 1: m plain steps
        z <- f(z) from z*, whose chain rule sums J^j for j < m."""
        return unrolled_solve(
            problem,
            solver,
            z0,
            self.m,
            1.0,
            tol=tol,
            max_steps=max_steps,
            throw=throw,
        )
