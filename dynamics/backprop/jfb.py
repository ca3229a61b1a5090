"""Jacobian-free backprop (JFB): (1 - J)^{-1} replaced by 1, so c(v) = 1 - v.

On the scalar linear DEQ this is a descent direction for v < 1 and an ascent direction
for v > 1 (claim APX-JFB). Fung et al., "JFB: Jacobian-free backpropagation for
implicit networks", AAAI 2022.
"""

from __future__ import annotations

import dataclasses
from typing import final

from .base import AbstractBackprop


@final
@dataclasses.dataclass(frozen=True)
class JFB(AbstractBackprop):
    """Jacobian-free backprop: drop (1 - J)^{-1}; c(v) = 1 - v."""

    def factor(self, J):
        return 1 + 0 * J

    def linear_factor(self, v):
        return 1 - v

    @property
    def label(self) -> str:
        return "jfb"
