"""Phantom gradient: k relaxed unrolled steps z <- (1 - lam) z + lam f(z) from the
detached fixed point, differentiated by backprop.

Starting at the fixed point, every unrolled step sits at z*, so the chain rule gives
dz_k/dtheta = lam sum_{j<k} ((1 - lam) + lam J)^j d_theta f: the same factor as
damped-k, and c(v) = 1 - (1 - lam (1 - v))^k. Geng et al., "On training implicit
models", NeurIPS 2021.
"""

from __future__ import annotations

import dataclasses
from typing import final

from ._series import damped_series, unrolled_solve
from .base import AbstractGradient, check_damping, check_terms


@final
@dataclasses.dataclass(frozen=True)
class Phantom(AbstractGradient):
    """Phantom gradient (Geng et al., 2021): from the forward solution z*, run
    ``k`` steps ``z <- (1 - lam) z + lam f(z)`` with autograd and backpropagate through
    them only.

    Memory O(k) evaluations of f; k extra evaluations of f in the forward pass (counted
    in ``nfe_forward``) and k VJPs. The output value is z* (straight-through, so the
    forward value does not depend on the gradient method). Closed forms: the damped-k
    series for (1 - J)^{-1} and ``c(v) = 1 - (1 - lam (1 - v))^k``. Authors'
    defaults: lam 0.5, k 10 (their test: 50).

    Args:
        k: number of unrolled damped steps (>= 1).
        lam: damping in (0, 1]; a SymPy Rational is accepted so that the symbolic
            certificate stays exact.
    """

    k: int = 10
    lam: float = 0.5

    def __post_init__(self):
        check_terms("Phantom k", self.k)
        check_damping(self.lam)

    def inverse_factor(self, J):
        return damped_series(J, self.k, self.lam)

    def unrolled_factor(self, J):
        """The same factor obtained by running the k-step chain rule literally
        (a cross-check of the closed form)."""
        dy = 0 * J
        for _ in range(self.k):
            dy = (1 - self.lam) * dy + self.lam * (1 + J * dy)
        return dy

    def linear_factor(self, v):
        return 1 - (1 - self.lam * (1 - v)) ** self.k

    @property
    def exact(self) -> bool:
        return False

    @property
    def label(self) -> str:
        return f"phantom-{self.k}(lam={self.lam})"

    def solve(self, problem, solver, z0, *, tol, max_steps, throw):
        return unrolled_solve(
            problem,
            solver,
            z0,
            self.k,
            self.lam,
            tol=tol,
            max_steps=max_steps,
            throw=throw,
        )
