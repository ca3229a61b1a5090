"""The activation table (docs/theory/single_index.md, P4, P5): derivatives, constants,
brackets."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import given, strategies as st
from scipy.optimize import minimize_scalar

from dynamics.errors import InvalidInputError, UnknownOptionError
from dynamics.models.activations import (
    ACTIVATIONS,
    GELU,
    GELU_CURVATURE,
    GELU_MIN_VALUE,
    GELU_SUP_SLOPE,
    SIGMOID,
    TANH,
    Activation,
    get_activation,
    sigma_eps,
)

ENTRIES = [*ACTIVATIONS.values(), sigma_eps(0.5), sigma_eps(0.125), sigma_eps(0.0)]
IDS = [a.label for a in ENTRIES]
GRID = np.linspace(-8.0, 8.0, 160001)


@pytest.mark.parametrize("act", ENTRIES, ids=IDS)
def test_derivatives_match_central_differences(act):
    z = np.linspace(-4.0, 4.0, 81) + 0.0123  # avoids the leaky-ReLU kink at 0
    h = 1e-6
    np.testing.assert_allclose(
        (act.sigma(z + h) - act.sigma(z - h)) / (2 * h),
        act.dsigma(z),
        rtol=1e-7,
        atol=1e-8,
    )
    np.testing.assert_allclose(
        (act.dsigma(z + h) - act.dsigma(z - h)) / (2 * h),
        act.d2sigma(z),
        rtol=1e-6,
        atol=1e-7,
    )
    for got, want in zip(
        act.derivatives(z), (act.sigma(z), act.dsigma(z), act.d2sigma(z)), strict=True
    ):
        np.testing.assert_allclose(got, want, rtol=1e-15, atol=1e-16)


@pytest.mark.parametrize("act", ENTRIES, ids=IDS)
def test_constants_bound_the_derivatives_and_are_tight(act):
    d1, d2 = act.dsigma(GRID), act.d2sigma(GRID)
    assert np.max(np.abs(d1)) <= act.lipschitz
    assert np.max(d1) <= act.sup_slope
    assert act.lipschitz - np.max(np.abs(d1)) < 1e-6  # tight (sup reached on the grid)
    assert act.sup_slope - np.max(d1) < 1e-6
    if act.smooth:
        assert np.max(np.abs(d2)) <= act.curvature
        assert act.curvature - np.max(np.abs(d2)) < 1e-6
    else:
        assert act.curvature == math.inf
    assert act.increasing == bool(np.all(d1 >= 0))
    lo, hi = act.value_range
    assert lo <= np.min(act.sigma(GRID)) and np.max(act.sigma(GRID)) <= hi


def test_gelu_constants_rederived():
    neg = minimize_scalar(lambda z: -GELU.dsigma(z), bracket=(1.0, 1.4, 2.0), tol=1e-14)
    assert 0 <= GELU_SUP_SLOPE - (-neg.fun) < 1e-12
    low = minimize_scalar(GELU.sigma, bracket=(-1.0, -0.75, -0.3), tol=1e-14)
    assert 0 <= low.fun - GELU_MIN_VALUE < 1e-12
    assert (
        GELU_CURVATURE
        >= abs(GELU.d2sigma(0.0))
        == pytest.approx(math.sqrt(2 / math.pi))
    )
    # GELU'(z) + GELU'(-z) = 1: inf GELU' = 1 - sup GELU'.
    # Rounding model: Phi(z) + z phi(z) + Phi(-z) - z phi(z), each term within a few
    # ulps of its size, so |sum - 1| <= 8 eps (1 + 2 |z| phi(z)).
    zphi = np.abs(GRID) * np.exp(-(GRID**2) / 2) / math.sqrt(2 * math.pi)
    err = np.abs(GELU.dsigma(GRID) + GELU.dsigma(-GRID) - 1.0)
    assert np.all(err <= 8 * np.finfo(float).eps * (1 + 2 * zphi))


@pytest.mark.parametrize("act", ENTRIES, ids=IDS)
def test_well_posedness_condition(act):
    if act.increasing:
        # any negative v (increasing sigma, docs/theory/single_index.md)
        assert act.well_posed(-1e6)
        assert act.well_posed(0.999 / act.sup_slope)
        assert not act.well_posed(1.0 / act.sup_slope)
    else:
        assert act.well_posed(0.999 / act.lipschitz)
        assert not act.well_posed(-1.0 / act.lipschitz)


def test_authors_guards():
    assert SIGMOID.guard(3.99) and not SIGMOID.guard(4.0)
    assert TANH.guard(-0.99) and not TANH.guard(1.0) and not TANH.guard(-1.0)
    s = sigma_eps(0.5)
    assert s.guard(0.6) and not s.guard(0.64)  # |v| (1 + eps) < 0.95


@given(
    name=st.sampled_from(
        [
            "sigmoid",
            "tanh",
            "sigma_eps:0.5",
            "sigma_eps:0.125",
            "gelu",
            "relu",
            "leaky_relu",
            "identity",
        ]
    ),
    frac=st.floats(-0.999, 0.999),
    neg=st.floats(0.0, 50.0),
    seed=st.integers(0, 2**31 - 1),
)
def test_bracket_contains_the_root(name, frac, neg, seed):
    """P4: F(lo) <= 0 <= F(hi) for F(y) = y - sigma(a + v y), wherever well posed."""
    act = get_activation(name)
    top = 1.0 / (act.sup_slope if act.increasing else act.lipschitz)
    v = frac * top if frac > -0.5 or not act.increasing else -neg
    a = np.random.default_rng(seed).normal(0, 5, 50)
    lo, hi = act.bracket(a, v)
    lo, hi = np.broadcast_to(lo, a.shape), np.broadcast_to(hi, a.shape)
    assert np.all(lo - act.sigma(a + v * lo) <= 0)
    assert np.all(hi - act.sigma(a + v * hi) >= 0)


def test_lookup_and_errors():
    assert get_activation("tanh") is TANH
    assert get_activation("sigma_eps:0.25").eps == 0.25
    assert get_activation("sigma_eps", eps=0.125).lipschitz == 1.125
    assert get_activation(TANH) is TANH
    with pytest.raises(UnknownOptionError, match="unknown activation 'relu6'"):
        get_activation("relu6")
    with pytest.raises(UnknownOptionError):
        get_activation("tanh", eps=0.1)
    with pytest.raises(UnknownOptionError):
        get_activation("sigma_eps", epsilon=0.1)
    with pytest.raises(InvalidInputError):
        get_activation("sigma_eps")
    with pytest.raises(InvalidInputError):
        sigma_eps(-0.1)
    with pytest.raises(InvalidInputError):
        get_activation("sigma_eps:abc")


def test_table_entries_are_validated_and_frozen():
    bad = dataclasses.replace
    with pytest.raises(InvalidInputError, match="finite differences"):
        bad(TANH, dsigma=lambda z: 1.0 - 0.5 * np.tanh(z) ** 2)
    with pytest.raises(InvalidInputError, match="L"):
        bad(TANH, lipschitz=0.5, sup_slope=0.5)
    with pytest.raises(InvalidInputError, match="sigma''"):
        bad(TANH, curvature=0.5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        TANH.lipschitz = 2.0  # type: ignore[misc]
    assert isinstance(TANH, Activation)


def test_non_smooth_and_affine_flags():
    assert not get_activation("leaky_relu").smooth  # P5: out of theorem checks
    assert get_activation("identity").affine and sigma_eps(0.0).affine
    assert not sigma_eps(0.25).affine and TANH.smooth
