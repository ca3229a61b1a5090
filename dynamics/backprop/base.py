"""Contract of the approximate-backprop objects (spec §4).

Every method keeps the forward fixed point and replaces the IFT inverse (1 - J)^{-1},
J = d g / d y, by a cheaper factor. For scalar-state DEQs everything is elementwise:
J = v for the linear DEQ and J = v sigma'(s_i) per sample for the single-index DEQ.

Subclass contract:

1. ``factor(J)``: the replacement for (1 - J)^{-1}, elementwise. Use only +, -, * and
   ** with integer exponents (no NumPy functions), so that the same code accepts NumPy
   arrays, floats and SymPy expressions; the symbolic certificate and the numeric
   checks then read one source.
2. ``linear_factor(v)``: c(v) = factor(v) (1 - v) written in closed form (finite at
   v = 1), so that on the scalar linear DEQ the approximate gradient is c(v) times the
   exact one (claim APX-NEUMANN-FACTOR). Same operator rule as 1.
3. ``label``: a short name for tables and legends.
4. Be a frozen dataclass whose ``__post_init__`` validates its parameters.

``local_factor`` = c(0) is the scale of the approximate direction's Jacobian at
theta* = (xi, 0) of the single-index DEQ, where J = 0 (claim APX-LOCAL).
"""

from __future__ import annotations

import abc
import numbers

from ..errors import InvalidInputError


class AbstractBackprop(abc.ABC):
    """How the gradient passes through the fixed point; see the module docstring."""

    @abc.abstractmethod
    def factor(self, J):
        """Replacement for (1 - J)^{-1} (elementwise)."""

    @abc.abstractmethod
    def linear_factor(self, v):
        """c(v): approximate = c(v) x exact gradient on the scalar linear DEQ."""

    @property
    @abc.abstractmethod
    def label(self) -> str:
        """Short name, e.g. ``neumann-2``."""

    @property
    def local_factor(self):
        """c_0 = c(0): the Jacobian of the direction at theta* is c_0 H* (APX-LOCAL)."""
        return self.linear_factor(0)

    @property
    def exact(self) -> bool:
        """True only for the exact IFT gradient."""
        return False


def check_terms(name: str, m) -> int:
    if isinstance(m, bool) or not isinstance(m, numbers.Integral) or m < 1:
        raise InvalidInputError(f"{name} must be an integer >= 1; got {m!r}")
    return int(m)


def check_damping(lam) -> None:
    """0 < lambda <= 1 (floats, or exact SymPy rationals for the certificate)."""
    try:
        ok = bool(0 < lam <= 1)
    except TypeError as exc:
        raise InvalidInputError(f"damping must be a real number; got {lam!r}") from exc
    if not ok:
        raise InvalidInputError(
            f"damping lambda must satisfy 0 < lambda <= 1; got {lam!r}"
        )
