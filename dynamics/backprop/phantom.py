"""Phantom gradient: k relaxed unrolled steps y <- (1 - lam) y + lam g(y) from the
detached fixed point, differentiated by backprop.

Starting at the fixed point, every unrolled step sits at y*, so the chain rule gives
dy_k/dtheta = lam sum_{j<k} ((1 - lam) + lam J)^j d_theta g: the same factor as
damped-k, and c(v) = 1 - (1 - lam (1 - v))^k (spec §4). Geng et al., "On training
implicit models", NeurIPS 2021.
"""

from __future__ import annotations

import dataclasses
from typing import final

from .base import AbstractBackprop, check_damping, check_terms
from .damped import damped_series


@final
@dataclasses.dataclass(frozen=True)
class Phantom(AbstractBackprop):
    """Phantom-k: k unrolled relaxed steps with damping lam from the detached root.

    Args:
        k: number of unrolled steps.
        lam: damping, 0 < lam <= 1.
    """

    k: int
    lam: float = 0.5

    def __post_init__(self):
        check_terms("k", self.k)
        check_damping(self.lam)

    def factor(self, J):
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
    def label(self) -> str:
        return f"phantom-{self.k}(lam={self.lam})"
