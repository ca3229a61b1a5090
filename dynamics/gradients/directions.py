"""Approximate update directions for ``gradient_descent(direction=...)``.

``approx_direction(model, method)`` returns ``theta -> (risk, d)`` where d is the
gradient with (1 - J)^{-1} replaced by ``method.inverse_factor(J)``:

- scalar linear DEQ (J = v): d = factor(v) (g_beta, <g_beta, beta>) with
  g_beta = (2/n) X^T (X beta - y); this equals c(v) x the exact gradient, and is
  computed without passing through 1/(1 - v) (the form of the authors' population
  script, which multiplies 2 (beta - 1) by the backward factor);
- single-index DEQ (J_i = v sigma'(s_i)): per-sample weights
  2 (f_i - y_i) sigma'(s_i) factor(J_i), then (mean w x, mean w f).

The exact IFT object returns the model's own ``value_and_grad``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..errors import InvalidInputError
from ..models.base import LOSS_FACTOR, AbstractModel
from ..models.linear_deq import SINGULAR_RTOL, LinearDEQ
from ..models.single_index import SingleIndexDEQ
from .base import AbstractGradient

Direction = Callable[[np.ndarray], tuple[float, np.ndarray]]


def approx_direction(model: AbstractModel, backprop: AbstractGradient) -> Direction:
    """``theta -> (risk, direction)`` for ``backprop`` on a scalar-state DEQ."""
    if not isinstance(backprop, AbstractGradient):
        raise InvalidInputError(
            f"backprop must be a gradient method object; got {backprop!r}"
        )
    if backprop.exact:
        return model.value_and_grad
    if isinstance(model, SingleIndexDEQ):

        def single_index(theta):
            return model.value_and_direction(theta, backprop.inverse_factor)

        return single_index
    if isinstance(model, LinearDEQ):
        X, y, scale = model.X, model.y, LOSS_FACTOR / model.n
        factor = backprop.inverse_factor

        def linear(theta):
            gap = 1.0 - float(theta[-1])
            # the model's own relative test (rounding of 1 - v is ~eps64 max(1, |v|))
            if not abs(gap) > SINGULAR_RTOL * max(1.0, abs(float(theta[-1]))):
                gap = model.one_minus_v(theta)  # raises the named error when singular
            beta = theta[:-1] / gap
            resid = X @ beta - y
            out = np.empty(theta.shape[0])
            out[:-1] = scale * (X.T @ resid) * factor(float(theta[-1]))
            out[-1] = out[:-1] @ beta
            return float(resid @ resid) / len(y), out

        return linear
    raise InvalidInputError(
        f"approximate backprop is defined here for scalar-state DEQs (LinearDEQ, "
        f"SingleIndexDEQ); got {type(model).__name__}"
    )
