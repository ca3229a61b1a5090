"""Butcher tableaux as module-level float64 constants (data, not code).

Concrete integrators only bind one of these. ``tests/test_tableaux.py`` checks their
algebra: sum(b) = 1, the row sums of ``a`` equal ``c``, and Cooper's condition
b_i a_ij + b_j a_ji = b_i b_j for the implicit midpoint and Gauss-Legendre rules (the
reason they conserve the quadratic invariants Q, C and C' exactly, pitfall P8); RK4
does not satisfy it.
"""

from __future__ import annotations

import dataclasses
import math
from typing import final

import numpy as np


def _frozen(rows) -> np.ndarray:
    arr = np.array(rows, dtype=np.float64)
    arr.setflags(write=False)
    return arr


@final
@dataclasses.dataclass(frozen=True, eq=False)
class ButcherTableau:
    """Coefficients of an s-stage Runge-Kutta method (read-only float64 arrays).

    Attributes:
        name: a short label.
        order: classical order of accuracy.
        a: (s, s) stage matrix; strictly lower triangular for an explicit method.
        b: (s,) weights.
        c: (s,) nodes.
    """

    name: str
    order: int
    a: np.ndarray
    b: np.ndarray
    c: np.ndarray

    @property
    def stages(self) -> int:
        return self.b.shape[0]

    @property
    def explicit(self) -> bool:
        return bool(np.all(np.triu(self.a) == 0.0))


#: Classical fourth-order Runge-Kutta (explicit, 4 stages). Not symplectic: it does not
#: conserve quadratic invariants, so Q drifts at O(h^4) per unit time.
RK4 = ButcherTableau(
    "rk4",
    4,
    a=_frozen(
        [
            [0.0, 0.0, 0.0, 0.0],
            [0.5, 0.0, 0.0, 0.0],
            [0.0, 0.5, 0.0, 0.0],
            [0.0, 0.0, 1.0, 0.0],
        ]
    ),
    b=_frozen([1.0 / 6.0, 1.0 / 3.0, 1.0 / 3.0, 1.0 / 6.0]),
    c=_frozen([0.0, 0.5, 0.5, 1.0]),
)

#: Implicit midpoint rule (1-stage Gauss-Legendre, order 2, symplectic).
IMPLICIT_MIDPOINT = ButcherTableau(
    "implicit_midpoint",
    2,
    a=_frozen([[0.5]]),
    b=_frozen([1.0]),
    c=_frozen([0.5]),
)

_S3 = math.sqrt(3.0)

#: Two-stage Gauss-Legendre collocation (order 4, symplectic, A-stable).
GAUSS_LEGENDRE_4 = ButcherTableau(
    "gauss_legendre_4",
    4,
    a=_frozen([[0.25, 0.25 - _S3 / 6.0], [0.25 + _S3 / 6.0, 0.25]]),
    b=_frozen([0.5, 0.5]),
    c=_frozen([0.5 - _S3 / 6.0, 0.5 + _S3 / 6.0]),
)

_S15 = math.sqrt(15.0)

#: Three-stage Gauss-Legendre collocation (order 6, symplectic, A-stable).
GAUSS_LEGENDRE_6 = ButcherTableau(
    "gauss_legendre_6",
    6,
    a=_frozen(
        [
            [5.0 / 36.0, 2.0 / 9.0 - _S15 / 15.0, 5.0 / 36.0 - _S15 / 30.0],
            [5.0 / 36.0 + _S15 / 24.0, 2.0 / 9.0, 5.0 / 36.0 - _S15 / 24.0],
            [5.0 / 36.0 + _S15 / 30.0, 2.0 / 9.0 + _S15 / 15.0, 5.0 / 36.0],
        ]
    ),
    b=_frozen([5.0 / 18.0, 4.0 / 9.0, 5.0 / 18.0]),
    c=_frozen([0.5 - _S15 / 10.0, 0.5, 0.5 + _S15 / 10.0]),
)

#: Gauss-Legendre tableaux by order (the ``order`` option of ``GaussLegendre``).
GAUSS_LEGENDRE: dict[int, ButcherTableau] = {
    2: IMPLICIT_MIDPOINT,
    4: GAUSS_LEGENDRE_4,
    6: GAUSS_LEGENDRE_6,
}
