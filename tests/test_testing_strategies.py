"""dynamics.testing strategies build what their docstrings promise."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
from hypothesis import given, settings

from dynamics.testing import (
    contractive_maps,
    linear_deq_instances,
    regression_data,
    scalar_initialisations,
)


@settings(max_examples=20, deadline=None)
@given(regression_data(max_d=4))
def test_realizable_data_is_in_the_column_span(data):
    """y = X beta*: the least-squares residual is at rounding level."""
    X, y = data
    assert X.shape[0] >= 2 * X.shape[1] and y.shape == (X.shape[0],)
    beta = np.linalg.lstsq(X, y, rcond=None)[0]
    assert np.linalg.norm(X @ beta - y) <= 1e-10 * max(1.0, np.linalg.norm(y))


@settings(max_examples=20, deadline=None)
@given(scalar_initialisations(3, min_gap=0.1))
def test_initialisations_keep_away_from_the_singular_set(theta0):
    assert theta0.shape == (4,) and abs(1.0 - theta0[-1]) >= 0.1


@settings(max_examples=20, deadline=None)
@given(linear_deq_instances(max_d=3))
def test_instances_are_realizable_and_start_away_from_v_1(inst):
    assert inst.model.min_risk <= 1e-20 + 1e-12 * np.mean(inst.model.y**2)
    assert abs(1.0 - inst.theta0[-1]) >= 0.1


@settings(max_examples=10, deadline=None)
@given(contractive_maps(max_width=6))
def test_contractive_maps_have_the_certified_lipschitz_constant(case):
    import torch

    f, _, _ = case.build()
    assert torch.linalg.matrix_norm(f.W.detach(), 2).item() <= case.lipschitz * (
        1 + 1e-12
    )


def test_import_dynamics_needs_neither_hypothesis_nor_torch():
    """Hypothesis is an optional extra and torch is imported lazily."""
    code = (
        "import sys; import dynamics; from dynamics import LinearDEQ, "
        "gradient_descent, flow_ivp; import dynamics.testing; "
        "print('hypothesis' in sys.modules, 'torch' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["False", "False"]
