"""Measurement helpers shared by the engine, the checks and the tests.

One definition each of relative error, central differences and margins, so that a
number called "relative error" or "margin" means the same everywhere. Each function
accepts NumPy arrays; :func:`rel_error` also accepts torch tensors (and then does the
arithmetic in the tensors' dtype, as a float32 comparison should).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

#: Central-difference step for a function with O(1) third derivative: balances the
#: truncation error h^2 against the rounding error eps/h.
FD_STEP = np.finfo(float).eps ** (1.0 / 3.0)


def _is_torch(x) -> bool:
    return type(x).__module__.startswith("torch")


def rel_error(actual, expected, floor: float = 1.0) -> float:
    """max |a - e| / max(floor, max |e|).

    With the default ``floor = 1`` this is relative for large values and absolute near
    zero; a tiny ``floor`` (1e-300) makes it purely relative.
    """
    if _is_torch(actual):
        den = max(floor, float(expected.abs().max()))
        return float((actual - expected).abs().max() / den)
    a = np.asarray(actual, dtype=float)
    e = np.asarray(expected, dtype=float)
    return float(np.max(np.abs(a - e)) / max(floor, float(np.max(np.abs(e)))))


def rel_norm(actual, expected) -> float:
    """||a - e|| / ||e|| (Frobenius), with 0/0 = 0 and ||a|| when e = 0."""
    a, e = np.asarray(actual, float), np.asarray(expected, float)
    den = float(np.linalg.norm(e))
    num = float(np.linalg.norm(a - e))
    return num / den if den > 0 else num


def central_difference(fun: Callable, x: np.ndarray, h: float = FD_STEP) -> np.ndarray:
    """(fun(x + h e_i) - fun(x - h e_i)) / 2h for every coordinate i, stacked on axis 0.

    For a scalar ``fun`` this is the gradient; for a vector ``fun`` it is the
    transposed Jacobian (see :func:`central_jacobian`). Error O(h^2) + O(eps/h).
    """
    x = np.asarray(x, dtype=float)
    steps = np.eye(x.size)
    return np.array([(fun(x + h * e) - fun(x - h * e)) / (2 * h) for e in steps])


def central_jacobian(fun: Callable, x: np.ndarray, h: float = FD_STEP) -> np.ndarray:
    """Central-difference Jacobian d fun_i / d x_j of a vector function."""
    return central_difference(fun, x, h).T


def tol_margin(err: float, tol: float) -> float:
    """1 - err / tol: the unused fraction of the tolerance (>= 0 when within it)."""
    return 1.0 - err / tol


def rel_slack(lhs: float, rhs: float) -> float:
    """(lhs - rhs) / |rhs|: the relative slack of ``lhs >= rhs`` (inf when rhs = 0)."""
    if rhs == 0.0:
        return math.inf if lhs >= 0.0 else -math.inf
    return (lhs - rhs) / abs(rhs)
