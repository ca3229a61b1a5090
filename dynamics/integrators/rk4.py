"""Classical explicit fourth-order Runge-Kutta, generic over vector fields."""

from __future__ import annotations

import dataclasses
from typing import final

import numpy as np

from .base import AbstractIntegrator, Field
from .tableaux import RK4 as _TABLEAU, ButcherTableau


def explicit_rk_step(
    tableau: ButcherTableau, field: Field, t: float, y: np.ndarray, h: float
) -> tuple[np.ndarray, int]:
    """One step of an explicit Runge-Kutta method given by ``tableau``.

    Returns the new state and the number of field evaluations (the number of stages).
    """
    s = tableau.stages
    k = np.empty((s, y.shape[0]), dtype=np.float64)
    for i in range(s):
        yi = y + h * (tableau.a[i, :i] @ k[:i]) if i else y
        k[i] = field(t + tableau.c[i] * h, yi)
    return y + h * (tableau.b @ k), s


@final
@dataclasses.dataclass(frozen=True)
class RK4(AbstractIntegrator):
    """Classical RK4: explicit, order 4, 4 field evaluations per step.

    Not structure-preserving: a quadratic invariant (Q, C, C') drifts by O(h^4) per
    unit time, which is how ``integrators`` tests tell it from the Gauss rules. Its
    stability interval is short, so near the singular point of a linear DEQ (where the
    gradient-flow field is stiff, pitfall P8) ``h`` must shrink like (1 - v)^2.

    Reference: Hairer, Norsett and Wanner, *Solving ODEs I*, §II.1.
    """

    def step(
        self, field: Field, t: float, y: np.ndarray, h: float
    ) -> tuple[np.ndarray, int]:
        return explicit_rk_step(_TABLEAU, field, t, np.asarray(y, dtype=np.float64), h)
