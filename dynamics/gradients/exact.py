"""Exact implicit differentiation: (1 - J)^{-1} itself (c = 1), the reference of the
closed-form family."""

from __future__ import annotations

import dataclasses
from typing import final

from .base import AbstractGradient
from .dense_ift import DenseIFT


@final
@dataclasses.dataclass(frozen=True)
class ExactIFT(AbstractGradient):
    """Exact IFT gradient; c(v) = 1 on the scalar linear DEQ. In torch it is
    :class:`DenseIFT` (the adjoint system solved directly, so the only error is that
    of z*); for large states use :class:`ImplicitIFT`."""

    @property
    def label(self) -> str:
        return "exact"

    def solve(self, problem, solver, z0, *, tol, max_steps, throw):
        return DenseIFT().solve(
            problem, solver, z0, tol=tol, max_steps=max_steps, throw=throw
        )
