"""dynamics.testing: check the theory on your own models, data and parametrisations.

In the spirit of :mod:`numpy.testing` and :mod:`hypothesis.extra.numpy`:

- assertion helpers (NumPy only, no Hypothesis needed):
  :func:`assert_conserved` (a quantity is constant along the gradient flow),
  :func:`assert_gd_drift` (a quantity changes under gradient descent by an exact
  per-step identity), :func:`assert_rate_bound` (the risk stays under
  ``R0 exp(-rate t)`` along the flow) and :func:`assert_gradient_matches` (a gradient
  agrees with an exact gradient and with a finite-difference oracle);
  :func:`as_model` turns a ``theta -> (risk, grad)`` callable into a model;
- Hypothesis strategies (``pip install deq-dynamics[testing]``):
  :mod:`dynamics.testing.strategies` (seeds, shapes, data, initialisations, linear
  DEQ instances) and :mod:`dynamics.testing.deq_strategies` (PyTorch DEQ maps with a
  certified Lipschitz constant).

The names of both strategy modules are also reachable from here (``from
dynamics.testing import linear_deq_instances``); they import Hypothesis on first use.
"""

from __future__ import annotations

import importlib

from .assertions import (
    as_model as as_model,
    assert_conserved as assert_conserved,
    assert_gd_drift as assert_gd_drift,
    assert_gradient_matches as assert_gradient_matches,
    assert_rate_bound as assert_rate_bound,
    fd_gradient as fd_gradient,
)

_STRATEGIES = {
    "seeds": "strategies",
    "dims": "strategies",
    "regression_data": "strategies",
    "scalar_initialisations": "strategies",
    "linear_deq_instances": "strategies",
    "matrix_deq_instances": "strategies",
    "betas": "deq_strategies",
    "RevCase": "deq_strategies",
    "revdeq_configs": "deq_strategies",
    "contractive_maps": "deq_strategies",
}

__all__ = [
    "as_model",
    "assert_conserved",
    "assert_gd_drift",
    "assert_gradient_matches",
    "assert_rate_bound",
    "fd_gradient",
    *_STRATEGIES,
]


def __getattr__(name: str):
    if name in _STRATEGIES:
        module = importlib.import_module(f".{_STRATEGIES[name]}", __name__)
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
