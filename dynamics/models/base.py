"""The contract every NumPy DEQ model implements.

A model owns its training data and maps a flat float64 parameter vector ``theta`` to
the empirical risk (mean squared error, **no factor 1/2**: docs/theory/linear.md) and
its exact IFT
gradient. Gradient descent, gradient flow and every integrator work on flat vectors,
so the same driver serves the scalar linear, matrix linear and single-index DEQs.
"""

from __future__ import annotations

import abc

import numpy as np

#: The MSE loss carries no 1/2, so every gradient carries this factor (pitfall P7).
LOSS_FACTOR = 2.0


class AbstractModel(abc.ABC):
    """A DEQ on fixed data, seen as a function of its flat parameter vector.

    Subclass contract:

    1. ``n_params``: the length of ``theta``.
    2. ``risk(theta)``: the no-1/2 MSE risk; raise a named error when the equilibrium
       is undefined at ``theta`` (never return NaN).
    3. ``value_and_grad(theta)``: the risk and its exact gradient, computed together.
    4. Never mutate ``theta``.
    """

    @property
    @abc.abstractmethod
    def n_params(self) -> int:
        """Length of the flat parameter vector."""

    @abc.abstractmethod
    def risk(self, theta: np.ndarray) -> float:
        """Empirical risk (1/n) sum ||f_theta(x_i) - y_i||^2."""

    @abc.abstractmethod
    def value_and_grad(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """Risk and its exact (IFT) gradient at ``theta``."""

    def grad(self, theta: np.ndarray) -> np.ndarray:
        """Exact gradient of the risk."""
        return self.value_and_grad(theta)[1]
