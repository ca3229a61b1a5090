"""Consistency: the gradients the certificates derive, lambdified, equal the numeric
engine's gradients at random points (proofs_check.symbolic.consistency)."""

from __future__ import annotations

import pytest

from proofs_check.symbolic import consistency as C


@pytest.mark.claim("LIN-SYM-CONS")
@pytest.mark.parametrize("d", [1, 3])
def test_scalar_linear_gradient(rng, d):
    a = C.scalar_linear(rng, d)
    assert a.passed, a


@pytest.mark.claim("LIN-SYM-CONS")
@pytest.mark.parametrize(
    "m,d,k",
    [(2, 3, None), (2, 2, 3)]
    + [pytest.param(*s, marks=pytest.mark.slow) for s in ((3, 2, None), (3, 1, 2))],
)
def test_matrix_general_gradients(rng, m, d, k):
    a = C.matrix_general(rng, m, d, k)
    assert a.passed, a


@pytest.mark.claim("LIN-SYM-CONS")
@pytest.mark.parametrize("m,d,k", [(2, 1, None), (2, 1, 1)])
def test_matrix_explicit_gradients(rng, m, d, k):
    a = C.matrix_explicit(rng, m, d, k)
    assert a.passed, a


@pytest.mark.claim("SIM-NONCONS")
def test_single_index_gradient(rng):
    a = C.single_index_gradient(rng, 2, 3)
    assert a.passed, a


@pytest.mark.claim("SIM-HESS")
def test_single_index_hessian(rng):
    a = C.single_index_hessian(rng, 1, 2)
    assert a.passed, a


@pytest.mark.claim("APX-NEUMANN-FACTOR")
def test_backprop_factors(rng):
    a = C.backprop_factors(rng)
    assert a.passed, a


@pytest.mark.slow
def test_run_all_full(rng):
    assert all(a.passed for a in C.run_all(rng, full=True))
