"""Contract for one-step integrators of an autonomous or time-dependent vector field.

Subclass contract:

1. Implement ``step(field, t, y, h) -> (y_next, nfev)``: one step of size ``h`` of
   dy/dt = field(t, y); return the new state and the number of field evaluations.
2. Never mutate ``y``.
3. Raise :class:`dynamics.errors.ConvergenceError` when an implicit stage solve does
   not reach its tolerance (never return an unconverged stage as if it were exact).

The driver that loops, records and reports lives in :mod:`dynamics.flows.gradient_flow`.
"""

from __future__ import annotations

import abc
from collections.abc import Callable

import numpy as np

Field = Callable[[float, np.ndarray], np.ndarray]


class AbstractIntegrator(abc.ABC):
    """One step of a one-step method; see the module docstring for the contract."""

    @abc.abstractmethod
    def step(
        self, field: Field, t: float, y: np.ndarray, h: float
    ) -> tuple[np.ndarray, int]:
        """Advance ``y`` from ``t`` to ``t + h``; return (new state, evaluations)."""
