"""Batched single-index DEQ under GD (batched Newton forward) against SingleIndexDEQ."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from support import TOL, assert_close

from dynamics import gradient_descent
from dynamics.batched.batched_single_index import (
    BatchedSingleIndexDEQ,
    gradient_descent as batched_gd,
    local_instances,
)
from dynamics.errors import WellPosednessError
from dynamics.models.single_index import SingleIndexDEQ


@pytest.mark.claim("SIM-GRAD")
@pytest.mark.parametrize("act", ["tanh", "sigmoid", "sigma_eps:0.25"])
def test_batched_single_index_matches_single_engine(act):
    """SIM-GRAD: batched risk/gradient and a GD path equal SingleIndexDEQ's."""
    data = local_instances(1, 12, d=3, n=30, activation=act, radius=0.2)
    model = BatchedSingleIndexDEQ(data["X"], data["y"], act)
    theta = torch.as_tensor(data["theta0"]).T.contiguous()
    risk, grad, ok = model.evaluate(theta)
    assert bool(ok.all())
    for b in range(3):
        single = SingleIndexDEQ(data["X"][b], data["y"][b], act)
        r, g = single.value_and_grad(data["theta0"][b])
        assert_close(risk[b].item(), r, TOL["SCALE-sim-vs-single"], "risk")
        assert_close(grad[:, b].numpy(), g, TOL["SCALE-sim-vs-single"], "gradient")
    run = batched_gd(model, theta, 0.3, 40)
    single = gradient_descent(
        SingleIndexDEQ(data["X"][2], data["y"][2], act), data["theta0"][2], 0.3, 40
    )
    assert_close(
        run.theta[:, 2].numpy(),
        single.final,
        TOL["SCALE-sim-vs-single"],
        "GD end point",
    )


@pytest.mark.claim("SIM-LOCAL-RATE")
def test_batched_local_rate_matches_prediction():
    """SIM-LOCAL-RATE: the late per-step risk ratio tends to rho_lin^2 (within 5 %)."""
    data = local_instances(2, 64, d=3, n=40, activation="tanh", radius=0.1)
    model = BatchedSingleIndexDEQ(data["X"], data["y"], "tanh")
    theta = torch.as_tensor(data["theta0"]).T.contiguous()
    run = batched_gd(model, theta, 0.3, 400, xi=torch.as_tensor(data["xi"]).T)
    assert bool(run.ok.all()) and not bool(run.risk_increased.any())
    ratio = run.rate_ratio.numpy()
    ratio = ratio[np.isfinite(ratio)]
    assert ratio.size >= 32
    assert np.all(np.abs(ratio - 1.0) <= 0.05), ratio


def test_batched_single_index_guard():
    data = local_instances(3, 4, d=2, n=10, activation="tanh", v0=1.5)
    model = BatchedSingleIndexDEQ(data["X"], data["y"], "tanh")
    with pytest.raises(WellPosednessError):
        batched_gd(model, torch.as_tensor(data["theta0"]).T.contiguous(), 0.1, 5)
