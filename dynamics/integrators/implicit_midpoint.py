"""Implicit midpoint rule: y1 = y + h f(t + h/2, (y + y1)/2)."""

from __future__ import annotations

import dataclasses
from typing import final

import numpy as np

from ._implicit_rk import Jacobian, implicit_rk_step, validate_options
from .base import AbstractIntegrator, Field
from .tableaux import IMPLICIT_MIDPOINT as _TABLEAU


@final
@dataclasses.dataclass(frozen=True)
class ImplicitMidpoint(AbstractIntegrator):
    """Implicit midpoint (1-stage Gauss-Legendre): order 2, symplectic, A-stable.

    Conserves every quadratic invariant of the field exactly up to the stage-solve
    tolerance (Cooper's condition), so along a linear-DEQ gradient flow Q, C and C'
    drift only at the level of ``tol`` (claim LIN-GF-CONS, pitfall P8).

    Args:
        tol: relative tolerance of the stage solve (see
            :mod:`dynamics.integrators._implicit_rk`); default 1e-14.
        solver: ``"newton"`` (simplified Newton, the default) or ``"fixed_point"``.
        max_iter: stage-solve iteration limit; beyond it ``ConvergenceError``.
        jacobian: ``(t, y) -> d field / d y`` for Newton; forward differences when None
            (for a gradient flow pass ``lambda t, th: -model.hessian(th)``).

    Reference: Hairer, Lubich and Wanner, *Geometric Numerical Integration*, §IV.2.
    """

    tol: float = 1e-14
    solver: str = "newton"
    max_iter: int = 100
    jacobian: Jacobian | None = None

    def __post_init__(self):
        validate_options(self.tol, self.solver, self.max_iter)

    def step(
        self, field: Field, t: float, y: np.ndarray, h: float
    ) -> tuple[np.ndarray, int]:
        return implicit_rk_step(
            _TABLEAU,
            field,
            t,
            y,
            h,
            tol=self.tol,
            solver=self.solver,
            max_iter=self.max_iter,
            jacobian=self.jacobian,
        )
