"""REPRO-LEG part src (P-SRC): the early scripts' protocol, its independent
reference, and the verdict, including planted bugs that must turn it to fail."""

from __future__ import annotations

import copy
import dataclasses
import json

import numpy as np
import pytest
from scipy.optimize import brentq

from dynamics.models import activations as table
from dynamics.models.linear_deq import LinearDEQ
from proofs_check.checks import repro_src
from proofs_check.protocols import ProtocolContext, src as P, src_reference as ref
from proofs_check.registry import Status

PUBLISHED = json.loads(repro_src.PUBLISHED.read_text())


@pytest.mark.parametrize("name", sorted(ref.ACTIVATIONS))
@pytest.mark.parametrize("v", [-0.8, -0.2, 0.0, 0.3, 0.6])
def test_illinois_roots_match_tight_brent(name, v):
    """The reference's vectorised Illinois solve equals SciPy's Brent run to its
    tightest tolerance, to a few ulps, on the scripts' bracket [-10, 10]."""
    sigma = ref.ACTIVATIONS[name][0]
    a = np.clip(np.random.default_rng(7).normal(0.0, 1.5, 64), -3.0, 3.0)
    a[:8] = -np.abs(a[:8])  # ReLU roots exactly 0
    y, _ = ref.illinois_roots(lambda t: t - sigma(a + v * t), -10.0, 10.0, a.size)
    want = np.array(
        [
            brentq(
                lambda t, ai=ai: t - sigma(ai + v * t),
                -10.0,
                10.0,
                xtol=1e-300,
                rtol=8.9e-16,
                maxiter=500,
            )
            for ai in a
        ]
    )
    # F = y - sigma(a + v y) carries ~8 roundings of eps64 |y| and its slope is at
    # least 1 - |v| L >= 0.09 here, so two exact-to-rounding roots differ by at most
    # ~8 eps / 0.1 = 80 eps relative; 1e-29 absolute for roots at 0.
    np.testing.assert_allclose(y, want, rtol=80 * np.finfo(float).eps, atol=1e-29)


def test_illinois_reports_a_missing_sign_change():
    """Where the scripts' brentq raises (root outside [-10, 10]), so does the
    reference, naming the sample."""
    with pytest.raises(ref.BracketError, match="sample 1"):
        ref.illinois_roots(lambda t: t - np.array([0.0, 20.0]), -10.0, 10.0, 2)


def test_reference_derivative_conventions():
    """The scripts' ReLU-type slopes at 0 are 1; elsewhere the derivatives match
    central differences of the reference's own formulas."""
    for name in ("relu", "leaky_relu"):
        assert ref.ACTIVATIONS[name][1](np.array([0.0]))[0] == 1.0
    z, h = np.linspace(-3, 3, 25) + 0.013, 1e-6
    for name, (s, ds) in ref.ACTIVATIONS.items():
        np.testing.assert_allclose(
            (s(z + h) - s(z - h)) / (2 * h), ds(z), rtol=1e-7, atol=1e-8, err_msg=name
        )


def test_data_follow_the_scripts_legacy_global_seed():
    """RandomState(42) reproduces the scripts' np.random.seed(42) stream, in their
    draw order; the nonlinear script re-seeds before the model, so the model's
    first draws repeat the first training inputs."""
    state = np.random.get_state()
    try:
        np.random.seed(42)
        x = np.random.uniform(0.0, 1.0, 1000)
        theta0 = np.random.randn(2) * 0.1 + np.array([0, 1])
        np.random.seed(42)
        xn = np.random.randn(1000)
    finally:
        np.random.set_state(state)
    got_x, got_theta0 = P.linear_data()
    np.testing.assert_array_equal(got_x, x)
    np.testing.assert_array_equal(got_theta0, theta0)
    data = P.nonlinear_data()
    np.testing.assert_array_equal(data["x"], xn)
    np.testing.assert_array_equal(data["implicit"], [-0.1, 0.0] + 0.01 * xn[:2])
    assert data["explicit"] == -0.1 + 0.01 * xn[0]


def test_protocol_constants_are_the_published_ones():
    assert repro_src.provenance_problems(PUBLISHED) == []
    bad = copy.deepcopy(PUBLISHED)
    bad["protocol"]["nonlinear"]["bracket"] = [-100.0, 100.0]
    assert repro_src.provenance_problems(bad)


@pytest.fixture(scope="module")
def relu_train():
    """The ReLU runs at the train() defaults (4000 epochs, lr 0.5), no figures."""
    return P.src(
        ProtocolContext(),
        activations=("relu",),
        configs=("train",),
        linear=False,
        workers=1,
    )


def test_relu_runs_pass_and_record_the_kink(relu_train):
    """Engine and reference agree; the explicit ReLU baseline leaves theta = 0 only
    through underflowed pre-activations s = 0 and the convention relu'(0) = 1."""
    res = repro_src.judge_src(relu_train, PUBLISHED)
    assert res.status is Status.passed, res.reason
    rows = {r["run"]: r for r in res.details["runs"]}
    exp = rows["relu/explicit/train"]
    assert exp["kink_evaluations_reference"] > 0
    assert abs(exp["theta_final_engine"][0] - 2.0) < 1e-12
    imp = rows["relu/implicit/train"]
    assert imp["noise_floor_epoch"] is not None and imp["theta_digits"] >= 10


def test_planted_kink_bug_fails(monkeypatch):
    """Planted bug: the engine's relu'(0) = 0 instead of the scripts' 1. The table's
    own validation (finite differences off the kink) cannot see it; the src check
    must, through the explicit baseline's underflow to the kink."""
    bad = dataclasses.replace(
        table.RELU,
        dsigma=lambda z: np.where(np.asarray(z) > 0, 1.0, 0.0),
        derivatives=lambda z: (
            table.RELU.sigma(z),
            np.where(np.asarray(z) > 0, 1.0, 0.0),
            np.zeros_like(np.asarray(z, float)),
        ),
    )
    monkeypatch.setitem(table.ACTIVATIONS, "relu", bad)
    payload = P.src(
        ProtocolContext(),
        activations=("relu",),
        configs=("train",),
        linear=False,
        workers=1,
    )
    res = repro_src.judge_src(payload, PUBLISHED)
    assert res.status is Status.failed
    assert any("relu/explicit/train" in p for p in res.details["problems"])


def test_linear_script_and_a_planted_gradient_bug(monkeypatch):
    """The linear script (closed form) agrees with per-sample Brent to >= 10 digits;
    a gradient off by 1e-8 relative in the engine fails the check."""
    payload = P.src(ProtocolContext(), activations=(), configs=(), linear=True)
    res = repro_src.judge_src(payload, PUBLISHED)
    assert res.status is Status.passed, res.reason
    lin = res.details["runs"][0]
    assert lin["theta_digits"] >= 10 and lin["max_abs_root"] < 100

    original = LinearDEQ.value_and_grad

    def skewed(self, theta):
        r, g = original(self, theta)
        return r, g * (1.0 + 1e-8)

    monkeypatch.setattr(LinearDEQ, "value_and_grad", skewed)
    payload = P.src(ProtocolContext(), activations=(), configs=(), linear=True)
    res = repro_src.judge_src(payload, PUBLISHED)
    assert res.status is Status.failed and "linear" in res.details["problems"][0]
