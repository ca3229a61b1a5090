"""Hypothesis strategy factories: draw structure (seeds, shapes), then build arrays.

Each strategy draws a seed and small shapes with Hypothesis and builds the instance
with :mod:`dynamics.instances` from ``numpy.random.default_rng(seed)``, so shrinking
acts on seeds and shapes, never on raw floats (style.md §13).
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from dynamics.instances.linear import (
    MatrixInstance,
    ScalarInstance,
    matrix_instance,
    scalar_instance,
)

SEEDS = st.integers(min_value=0, max_value=2**32 - 1)


def linear_deq_instances(
    max_d: int = 4, near_singular: bool | None = False
) -> st.SearchStrategy[ScalarInstance]:
    """Scalar linear DEQ instances with 1 <= d <= max_d (spec §6.8 P-GF rules).

    Args:
        max_d: largest input dimension.
        near_singular: start near (0, 1) (True), away from it (False), or let
            Hypothesis choose (None).
    """
    ns = st.booleans() if near_singular is None else st.just(near_singular)
    return st.builds(
        lambda seed, d, extra, near: scalar_instance(
            np.random.default_rng(seed), d, n=2 * d + extra, near_singular=near
        ),
        SEEDS,
        st.integers(1, max_d),
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
        d = draw(st.integers(1, max_d))
        with_readout = draw(ro)
        k = draw(st.integers(1, max_m + 1)) if with_readout else m
        n = 2 * d + draw(st.integers(0, 12))
        return matrix_instance(
            np.random.default_rng(seed), m, d, k=k, readout=with_readout, n=n
        )

    return build()
