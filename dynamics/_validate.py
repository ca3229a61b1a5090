"""Input validation shared by the public entry points (one place, one wording)."""

from __future__ import annotations

import math
import numbers

import numpy as np

from .errors import InvalidInputError, NonFiniteError, ShapeError, StepSizeError


def finite_array(
    name: str, value, ndim: int | tuple[int, ...] | None = None
) -> np.ndarray:
    """Return ``value`` as a float64 array, rejecting NaN/inf and a wrong rank."""
    arr = np.asarray(value, dtype=np.float64)
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else ndim
        if arr.ndim not in allowed:
            raise ShapeError(
                f"{name} must have {' or '.join(map(str, allowed))} "
                f"dimension(s); got shape {arr.shape}"
            )
    if not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise NonFiniteError(
            f"{name} contains {bad} non-finite value(s) (NaN or inf); "
            "clean or impute the data before fitting"
        )
    return arr


def positive_step(name: str, value) -> float:
    """Return ``value`` as a float after checking that it is positive and finite.

    Only real numbers pass: a string (``'0.1'``) or a boolean is refused, since
    ``float(True) == 1.0`` would silently take a unit step.
    """
    scalar_array = (
        isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "iuf"
    )
    if isinstance(value, (bool, np.bool_)) or not (
        isinstance(value, numbers.Real) or scalar_array
    ):
        raise StepSizeError(
            f"{name} must be a real number (not a string or a boolean); got {value!r}"
        )
    try:
        h = float(value)
    except (TypeError, ValueError) as exc:
        raise StepSizeError(f"{name} must be a number; got {value!r}") from exc
    if not math.isfinite(h) or h <= 0.0:
        raise StepSizeError(f"{name} must be a positive finite number; got {value!r}")
    return h


def positive_int(
    name: str,
    value,
    minimum: int = 1,
    *,
    error: type[InvalidInputError] = ShapeError,
    exact_type: bool = False,
) -> int:
    """Return ``value`` as an int ``>= minimum``, else raise ``error``.

    Booleans are refused. With ``exact_type`` only integer types pass (solver and
    gradient settings, where ``2.0`` is more likely a slip than a count); otherwise
    an integral float such as ``2.0`` (from a config file or a grid) is accepted.
    """
    try:
        integral = (
            isinstance(value, numbers.Integral) if exact_type else int(value) == value
        )
    except (TypeError, ValueError, OverflowError):
        integral = False
    if isinstance(value, bool) or not integral or value < minimum:
        raise error(f"{name} must be an integer >= {minimum}; got {value!r}")
    return int(value)


def param_vector(theta, n_params: int) -> np.ndarray:
    """Validate a flat parameter vector of length ``n_params``."""
    th = finite_array("theta", theta, ndim=1)
    if th.shape[0] != n_params:
        raise ShapeError(f"theta must have {n_params} entries; got {th.shape[0]}")
    return th
