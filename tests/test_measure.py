"""dynamics.measure: the one relative error, central difference and margin."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dynamics.measure import (
    FD_STEP,
    central_difference,
    central_jacobian,
    rel_error,
    rel_norm,
    rel_slack,
    tol_margin,
)


def test_rel_error_is_relative_above_one_and_absolute_below():
    """max|a-e| / max(1, max|e|): 1e-3 off a value of 100 is 1e-5; off 0.01, 1e-3."""
    assert rel_error([100.001], [100.0]) == pytest.approx(1e-5, rel=1e-9)
    assert rel_error([0.011], [0.01]) == pytest.approx(1e-3, rel=1e-9)
    assert rel_error([2.0], [1e-300], floor=1e-300) == pytest.approx(2e300)


def test_rel_error_on_tensors_matches_numpy():
    a, e = np.array([1.5, -2.0, 3.25]), np.array([1.0, -2.5, 3.0])
    assert rel_error(torch.tensor(a), torch.tensor(e)) == rel_error(a, e) == 0.5 / 3.0


def test_rel_norm_is_frobenius_and_handles_zero():
    """||a - e|| / ||e|| (Frobenius); against a zero reference, ||a||."""
    assert rel_norm([3.0, 4.0], [0.0, 0.0]) == 5.0
    eye, diag = np.eye(2), np.diag([1.0, 2.0])
    assert rel_norm(eye, diag) == 1 / np.sqrt(5)


def test_central_difference_matches_a_closed_form_gradient():
    """Gradient of sin(x0) x1^3 at (0.7, 1.3); central FD error O(h^2) ~ 4e-11."""
    x = np.array([0.7, 1.3])
    g = central_difference(lambda t: np.sin(t[0]) * t[1] ** 3, x)
    exact = np.array([np.cos(0.7) * 1.3**3, 3 * np.sin(0.7) * 1.3**2])
    assert rel_error(g, exact) < 1e-9
    assert FD_STEP == np.finfo(float).eps ** (1 / 3)


def test_central_jacobian_is_rows_of_outputs():
    """d(A x)/dx = A exactly for a linear map (FD of a linear map has no truncation)."""
    A = np.array([[1.0, 2.0, 0.5], [-1.0, 0.0, 3.0]])
    J = central_jacobian(lambda x: A @ x, np.array([0.1, -0.2, 0.3]))
    assert J.shape == (2, 3)
    assert rel_error(J, A) < 1e-10


def test_margins():
    assert tol_margin(2e-13, 1e-12) == pytest.approx(0.8)
    assert tol_margin(2e-12, 1e-12) == pytest.approx(-1.0)
    assert rel_slack(1.1, 1.0) == pytest.approx(0.1)
    assert rel_slack(0.0, 0.0) == np.inf and rel_slack(-1.0, 0.0) == -np.inf
