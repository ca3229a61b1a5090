"""Hypothesis strategies for the linear DEQs: seeds, shapes, data, initialisations
and whole instances.

Every strategy draws structure (a seed and small shapes) with Hypothesis and builds
the arrays from ``numpy.random.default_rng(seed)``, so that shrinking acts on seeds
and shapes, never on raw floats (a shrunk float array is rarely a simpler example and
often an ill-conditioned one). Instances follow :mod:`dynamics.instances.linear`:
Gaussian inputs, n >= 2d samples, realizable targets, and initial feedback weights
kept at least 0.1 away from the singular set (|1 - v0| >= 0.1, or
sigma_min(I - W0) >= 0.1) without a spectral-radius constraint.

Needs Hypothesis (``pip install 'deq-dynamics[testing]'``).
"""

from __future__ import annotations

import numpy as np

from ..instances.linear import (
    MIN_SIGMA_A0,
    MatrixInstance,
    ScalarInstance,
    matrix_instance,
    scalar_instance,
)
from ._hypothesis import st

__all__ = [
    "SEEDS",
    "seeds",
    "dims",
    "regression_data",
    "scalar_initialisations",
    "linear_deq_instances",
    "matrix_deq_instances",
]

#: Seeds for ``numpy.random.default_rng``.
SEEDS = st.integers(min_value=0, max_value=2**32 - 1)


def seeds() -> st.SearchStrategy[int]:
    """Seeds for ``numpy.random.default_rng`` (shrink towards 0)."""
    return SEEDS


def dims(max_d: int = 4, *, min_d: int = 1) -> st.SearchStrategy[int]:
    """Input dimensions ``min_d <= d <= max_d``."""
    return st.integers(min_d, max_d)


def regression_data(
    max_d: int = 4, *, max_extra: int = 12, realizable: bool = True, k: int = 1
) -> st.SearchStrategy[tuple[np.ndarray, np.ndarray]]:
    """Data sets ``(X, y)``: X is (n, d) standard Gaussian with n = 2d + extra.

    Args:
        max_d: largest input dimension.
        max_extra: n is drawn in [2d, 2d + max_extra].
        realizable: y = X beta* for a Gaussian beta* (True), or y Gaussian and
            independent of X (False).
        k: output dimension; y has shape (n,) when k == 1, else (n, k).
    """

    @st.composite
    def build(draw):
        rng = np.random.default_rng(draw(SEEDS))
        d = draw(dims(max_d))
        n = 2 * d + draw(st.integers(0, max_extra))
        X = rng.standard_normal((n, d))
        if realizable:
            y = X @ rng.standard_normal((d, k))
        else:
            y = rng.standard_normal((n, k))
        return X, (y[:, 0] if k == 1 else y)

    return build()


def scalar_initialisations(
    d: int, *, min_gap: float = MIN_SIGMA_A0, scale: float = 1.0
) -> st.SearchStrategy[np.ndarray]:
    """Initial parameters theta0 = (u0, v0) of a scalar :class:`LinearDEQ` on R^d.

    u0 ~ N(0, scale^2 I / d); v0 on either side of 1 with |1 - v0| in
    [min_gap, min_gap + 2] (both branches v < 1 and v > 1 are drawn).
    """
    if not min_gap > 0.0:
        raise ValueError(f"min_gap must be > 0; got {min_gap!r}")

    @st.composite
    def build(draw):
        rng = np.random.default_rng(draw(SEEDS))
        u0 = scale * rng.standard_normal(d) / np.sqrt(d)
        gap = min_gap + draw(st.floats(0.0, 2.0, allow_nan=False))
        side = draw(st.sampled_from([1.0, -1.0]))
        v0 = 1.0 - side * gap
        while abs(1.0 - v0) < min_gap:  # 1 - (1 - gap) can round below gap
            v0 = float(np.nextafter(v0, -side * np.inf))
        return np.concatenate([u0, [v0]])

    return build()


def linear_deq_instances(
    max_d: int = 4, near_singular: bool | None = False
) -> st.SearchStrategy[ScalarInstance]:
    """Scalar linear DEQ instances (model, theta0, beta*) with 1 <= d <= max_d.

    Args:
        max_d: largest input dimension.
        near_singular: start near the singular point (0, 1) (True), away from it
            (False), or let Hypothesis choose (None).
    """
    ns = st.booleans() if near_singular is None else st.just(near_singular)
    return st.builds(
        lambda seed, d, extra, near: scalar_instance(
            np.random.default_rng(seed), d, n=2 * d + extra, near_singular=near
        ),
        SEEDS,
        dims(max_d),
        st.integers(0, 12),
        ns,
    )


def matrix_deq_instances(
    max_m: int = 3, readout: bool | None = None, max_d: int | None = None
) -> st.SearchStrategy[MatrixInstance]:
    """Matrix linear DEQ instances with 1 <= m <= max_m, 1 <= d <= max_d (default m+1).

    Args:
        max_m: largest state dimension.
        readout: with a trained readout (True), without (False) or either (None).
        max_d: largest input dimension (default ``max_m + 1``).
    """
    max_d = max_m + 1 if max_d is None else max_d
    ro = st.booleans() if readout is None else st.just(readout)

    @st.composite
    def build(draw):
        seed = draw(SEEDS)
        m = draw(st.integers(1, max_m))
        d = draw(dims(max_d))
        with_readout = draw(ro)
        k = draw(st.integers(1, max_m + 1)) if with_readout else m
        n = 2 * d + draw(st.integers(0, 12))
        return matrix_instance(
            np.random.default_rng(seed), m, d, k=k, readout=with_readout, n=n
        )

    return build()
