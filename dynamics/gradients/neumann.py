"""Truncated Neumann series: (1 - J)^{-1} replaced by sum_{k<m} J^k, so c(v) = 1 - v^m.

For even m, c(-1) = 0 and c < 0 for v < -1: GD cannot pass v = -1 and stalls there
when the zero-risk point of its sphere lies beyond (claim APX-STALL).
"""

from __future__ import annotations

import dataclasses
from typing import final

from .base import AbstractBackprop, check_terms


@final
@dataclasses.dataclass(frozen=True)
class Neumann(AbstractBackprop):
    """Neumann-m: the first m terms of the Neumann series of (1 - J)^{-1}.

    Args:
        m: number of terms (m = 1 is JFB).
    """

    m: int

    def __post_init__(self):
        check_terms("m", self.m)

    def factor(self, J):
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
