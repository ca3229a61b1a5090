"""Exact implicit differentiation: (1 - J)^{-1} itself (c = 1)."""

from __future__ import annotations

import dataclasses
from typing import final

from .base import AbstractBackprop


@final
@dataclasses.dataclass(frozen=True)
class ExactIFT(AbstractBackprop):
    """Exact IFT gradient; c(v) = 1 on the scalar linear DEQ (spec §4 table)."""

    def factor(self, J):
        return 1 / (1 - J)

    def linear_factor(self, v):
        return 1 + 0 * v

    @property
    def label(self) -> str:
        return "exact"

    @property
    def exact(self) -> bool:
        return True
