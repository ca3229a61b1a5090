"""Damped Neumann series: (1 - J)^{-1} replaced by lam sum_{k<m} ((1 - lam) + lam J)^k.

This is the truncated series of lam (1 - B)^{-1} with B = (1 - lam) + lam J, i.e. of
(1 - J)^{-1}; c(v) = 1 - (1 - lam (1 - v))^m. Damped-2 with lam = 1/2 has
c = (1 - v)(3 + v)/4, which vanishes only at v = -3 (claim APX-STALL).
"""

from __future__ import annotations

import dataclasses
from typing import final

from ._series import damped_series, unrolled_solve
from .base import AbstractGradient, check_damping, check_terms


@final
@dataclasses.dataclass(frozen=True)
class Damped(AbstractGradient):
    """Damped-m Neumann series with weight lam.

    Args:
        m: number of terms.
        lam: damping, 0 < lam <= 1 (lam = 1 is Neumann-m). A SymPy Rational is
            accepted so that the certificate stays exact.
    """

    m: int
    lam: float = 0.5

    def __post_init__(self):
        check_terms("m", self.m)
        check_damping(self.lam)

    def inverse_factor(self, J):
        return damped_series(J, self.m, self.lam)

    def linear_factor(self, v):
        return 1 - (1 - self.lam * (1 - v)) ** self.m

    @property
    def exact(self) -> bool:
        return False

    @property
    def label(self) -> str:
        return f"damped-{self.m}(lam={self.lam})"

    def solve(self, problem, solver, z0, *, tol, max_steps, throw):
        """In torch, damped-m is the phantom chain: m relaxed steps from z*."""
        return unrolled_solve(
            problem,
            solver,
            z0,
            self.m,
            self.lam,
            tol=tol,
            max_steps=max_steps,
            throw=throw,
        )
