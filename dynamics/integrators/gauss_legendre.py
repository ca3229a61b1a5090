"""Gauss-Legendre collocation (implicit Runge-Kutta of order 2s with s stages)."""

from __future__ import annotations

import dataclasses
from typing import final

import numpy as np

from ..errors import reject_unknown
from ._implicit_rk import Jacobian, implicit_rk_step, validate_options
from .base import AbstractIntegrator, Field
from .tableaux import GAUSS_LEGENDRE


@final
@dataclasses.dataclass(frozen=True)
class GaussLegendre(AbstractIntegrator):
    """Gauss-Legendre collocation: order 4 (2 stages) or 6 (3 stages), symplectic.

    Like the implicit midpoint rule (its 1-stage member, ``order=2``) it satisfies
    Cooper's condition and so conserves Q, C and C' up to the stage-solve tolerance
    (claim LIN-GF-CONS, pitfall P8), at a higher order of accuracy.

    Args:
        order: 2, 4 (default) or 6.
        tol: relative tolerance of the stage solve; default 1e-14.
        solver: ``"newton"`` (simplified Newton, default) or ``"fixed_point"``.
        max_iter: stage-solve iteration limit; beyond it ``ConvergenceError``.
        jacobian: ``(t, y) -> d field / d y`` for Newton; forward differences when None.

    Reference: Hairer, Lubich and Wanner, *Geometric Numerical Integration*, §II.1.3
    and §IV.2.
    """

    order: int = 4
    tol: float = 1e-14
    solver: str = "newton"
    max_iter: int = 100
    jacobian: Jacobian | None = None

    def __post_init__(self):
        if self.order not in GAUSS_LEGENDRE:
            raise reject_unknown("Gauss-Legendre order", self.order, GAUSS_LEGENDRE)
        validate_options(self.tol, self.solver, self.max_iter)

    def step(
        self, field: Field, t: float, y: np.ndarray, h: float
    ) -> tuple[np.ndarray, int]:
        return implicit_rk_step(
            GAUSS_LEGENDRE[self.order],
            field,
            t,
            y,
            h,
            tol=self.tol,
            solver=self.solver,
            max_iter=self.max_iter,
            jacobian=self.jacobian,
        )
