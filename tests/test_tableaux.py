"""Butcher tableaux: the algebra that makes each method what it claims (style.md §5)."""

from __future__ import annotations

import numpy as np
import pytest

from dynamics.integrators.tableaux import (
    GAUSS_LEGENDRE,
    GAUSS_LEGENDRE_4,
    GAUSS_LEGENDRE_6,
    IMPLICIT_MIDPOINT,
    RK4,
    ButcherTableau,
)

ALL = [RK4, IMPLICIT_MIDPOINT, GAUSS_LEGENDRE_4, GAUSS_LEGENDRE_6]
SYMPLECTIC = [IMPLICIT_MIDPOINT, GAUSS_LEGENDRE_4, GAUSS_LEGENDRE_6]

#: The coefficients are built from sqrt(3) and sqrt(15) in float64: a few ulps.
EXACT = 1e-15


def cooper_defect(tab: ButcherTableau) -> float:
    """max_ij |b_i a_ij + b_j a_ji - b_i b_j| (zero: quadratic invariants are kept)."""
    b, a = tab.b, tab.a
    return float(np.max(np.abs(b[:, None] * a + (b[:, None] * a).T - np.outer(b, b))))


@pytest.mark.parametrize("tab", ALL, ids=lambda t: t.name)
def test_weights_sum_to_one(tab):
    assert abs(tab.b.sum() - 1.0) <= EXACT


@pytest.mark.parametrize("tab", ALL, ids=lambda t: t.name)
def test_row_sums_equal_nodes(tab):
    np.testing.assert_allclose(tab.a.sum(axis=1), tab.c, rtol=0, atol=EXACT)


@pytest.mark.parametrize("tab", ALL, ids=lambda t: t.name)
def test_float64_and_read_only(tab):
    for arr in (tab.a, tab.b, tab.c):
        assert arr.dtype == np.float64
        with pytest.raises(ValueError):
            arr[0] = 1.0


@pytest.mark.claim("LIN-GF-CONS")
@pytest.mark.parametrize("tab", SYMPLECTIC, ids=lambda t: t.name)
def test_cooper_condition_holds_for_gauss_rules(tab):
    """LIN-GF-CONS (P8): b_i a_ij + b_j a_ji = b_i b_j, so Q, C, C' are conserved."""
    assert cooper_defect(tab) <= EXACT


def test_cooper_condition_fails_for_rk4():
    assert cooper_defect(RK4) > 1e-2
    assert RK4.explicit and not GAUSS_LEGENDRE_4.explicit


@pytest.mark.parametrize("tab", ALL, ids=lambda t: t.name)
def test_order_conditions(tab):
    """The simplifying conditions B(p): sum_i b_i c_i^(k-1) = 1/k for k <= order."""
    for k in range(1, tab.order + 1):
        assert abs(tab.b @ tab.c ** (k - 1) - 1.0 / k) <= 4 * EXACT, k
    if tab.order < 8:  # order is exact: B(order + 1) fails (quadrature order 2s)
        k = tab.order + 1
        assert abs(tab.b @ tab.c ** (k - 1) - 1.0 / k) > 1e-6


def test_gauss_legendre_table_is_keyed_by_order():
    assert {k: v.order for k, v in GAUSS_LEGENDRE.items()} == {2: 2, 4: 4, 6: 6}
    assert [t.stages for t in GAUSS_LEGENDRE.values()] == [1, 2, 3]
