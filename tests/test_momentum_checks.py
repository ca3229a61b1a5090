"""The momentum and Adam checks (LIN-MOM-DRIFT, LIN-MOM-SPHERE, LIN-ADAM-COND) give
their verdicts in the quick profile, and each turns to ``fail`` under a planted bug
(an in-process monkeypatch of one engine function)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dynamics.models.linear_deq import LinearDEQ
from dynamics.optim import optimizers
from proofs_check.checks import lin_adam, lin_mom
from proofs_check.registry import Context, Status, load_checks
from proofs_check.symbolic import certificates, certify
from proofs_check.symbolic.momentum import lin_sym_mom_matrix, lin_sym_mom_scalar

QUICK = Context(seed=0, profile="quick")


@pytest.fixture(scope="module")
def verdicts():
    checks = load_checks()
    mine = {lin_mom.__name__, lin_adam.__name__}
    return {k: c.fn(QUICK) for k, c in checks.items() if c.fn.__module__ in mine}


def test_every_part_is_registered(verdicts):
    assert set(verdicts) == {
        ("LIN-MOM-DRIFT", "numeric"),
        ("LIN-MOM-SPHERE", "scalar+matrix"),
        ("LIN-ADAM-COND", "torch-oracle"),
        ("LIN-ADAM-COND", "first-order"),
        ("LIN-ADAM-COND", "conditioning"),
    }
    assert ("LIN-MOM-DRIFT", "symbolic") in load_checks()


@pytest.mark.parametrize(
    "key",
    [
        ("LIN-MOM-DRIFT", "numeric"),
        ("LIN-MOM-SPHERE", "scalar+matrix"),
        ("LIN-ADAM-COND", "torch-oracle"),
        ("LIN-ADAM-COND", "first-order"),
    ],
)
def test_true_laws_pass(verdicts, key):
    res = verdicts[key]
    assert res.status is Status.passed, res.reason
    assert res.instances > 0 and res.worst_margin >= 0.0


def test_adam_conditioning_fails_with_a_counterexample(verdicts):
    """LIN-ADAM-COND (conditioning): the LIN-COND bound does not survive Adam; the
    check names a run with non-increasing risk that went below it, while the GD
    control on the same starts stays above it."""
    res = verdicts[("LIN-ADAM-COND", "conditioning")]
    assert res.status is Status.failed
    assert res.reason.startswith("counterexample")
    assert res.details["gd_control_ok"] and res.details["gd_control_worst_ratio"] >= 1
    bad = [r for r in res.details["table"]
           if r["optimizer"] != "gd" and r["risk_never_above_R0"]
           and r["min_ratio"] < 1 - lin_adam.TOL_COND]
    assert bad and res.measured < 1.0


def test_symbolic_part_passes():
    assert all(c.passed for c in certificates("LIN-MOM-DRIFT", full=False))


# ------------------------------------------------------------------ planted bugs


def _mu_twice(monkeypatch):
    """Planted bug: the momentum update multiplies the velocity by mu twice."""

    def update(self, grad, state):
        step = self.mu * self.mu * state["velocity"] - self.eta * grad
        state["velocity"] = step
        state["t"] += 1
        return step

    monkeypatch.setattr(optimizers.HeavyBall, "update", update)
    monkeypatch.setattr(optimizers.Nesterov, "update", update)


def test_drift_check_catches_mu_used_twice(monkeypatch):
    _mu_twice(monkeypatch)
    res = lin_mom.lin_mom_drift(QUICK)
    assert res.status is Status.failed and res.measured > 1e3


def test_drift_check_catches_a_missing_lookahead(monkeypatch):
    """Planted bug: Nesterov takes its gradient at theta_k (heavy ball in disguise)."""
    monkeypatch.setattr(optimizers.Nesterov, "lookahead", lambda self, th, st: th)
    res = lin_mom.lin_mom_drift(QUICK)
    assert res.status is Status.failed and "nesterov" in res.reason


def test_sphere_check_catches_mu_used_twice(monkeypatch):
    _mu_twice(monkeypatch)
    res = lin_mom.lin_mom_sphere(QUICK)
    assert res.status is Status.failed
    assert res.measured > lin_mom.TOL_SCALING


def test_wrong_symbolic_law_leaves_a_residual():
    for fn, kw in [(lin_sym_mom_scalar, {"d": 1, "cross_factor": 1}),
                   (lin_sym_mom_scalar, {"d": 1, "method": "nesterov",
                                         "cross_factor": 3}),
                   (lin_sym_mom_matrix, {"cross_factor": 2}),
                   (lin_sym_mom_matrix, {"method": "nesterov", "cross_factor": 2})]:
        cert = certify(fn, **kw)
        assert not cert.passed and cert.residual != "0"


def test_oracle_catches_a_dropped_bias_correction(monkeypatch):
    """Planted bug: Adam without bias correction (1 - beta^t replaced by 1)."""
    monkeypatch.setattr(optimizers, "bias_correction", lambda beta, t: 1.0)
    res = lin_adam.lin_adam_oracle(QUICK)
    assert res.status is Status.failed and res.measured > 1e-3


def _no_normalisation(monkeypatch):
    """Planted bug: Adam and RMSProp without the per-coordinate normalisation."""

    def adam(self, grad, state):
        state["t"] += 1
        state["m"] = self.beta1 * state["m"] + (1.0 - self.beta1) * grad
        return -self.eta * state["m"] / optimizers.bias_correction(self.beta1,
                                                                   state["t"])

    def rms(self, grad, state):
        state["t"] += 1
        return -self.eta * grad

    monkeypatch.setattr(optimizers.Adam, "update", adam)
    monkeypatch.setattr(optimizers.RMSProp, "update", rms)


def test_first_order_check_catches_a_lost_preconditioner(monkeypatch):
    _no_normalisation(monkeypatch)
    res = lin_adam.lin_adam_first_order(QUICK)
    assert res.status is Status.failed and res.measured > 0.5


def test_counterexample_comes_from_the_preconditioner(monkeypatch):
    """Without the per-coordinate normalisation (momentum GD) the same study finds no
    run below the bound: the counterexample is Adam's, not the harness's."""
    _no_normalisation(monkeypatch)
    monkeypatch.setattr(lin_adam, "COND_STEPS", 1500)
    monkeypatch.setattr(lin_adam, "GD_STEPS", 1500)
    res = lin_adam.lin_adam_conditioning(QUICK)
    assert res.status is Status.passed, res.reason


def test_conditioning_check_catches_a_wrong_conserved_quantity(monkeypatch):
    """Planted bug: Q = 4 (||u||^2 + (1-v)^2) doubles the bound; the GD control then
    violates it and the check reports the measurement as invalid."""
    true_q = LinearDEQ.Q
    monkeypatch.setattr(LinearDEQ, "Q", staticmethod(lambda th: 4.0 * true_q(th)))
    monkeypatch.setattr(lin_adam, "COND_STEPS", 1500)
    monkeypatch.setattr(lin_adam, "GD_STEPS", 1500)
    res = lin_adam.lin_adam_conditioning(QUICK)
    assert res.status is Status.failed
    assert not res.details["gd_control_ok"]
    assert res.reason.startswith("measurement invalid")


@pytest.mark.slow
def test_figures_are_written(tmp_path):
    ctx = Context(seed=0, profile="quick", figures_dir=tmp_path)
    res = lin_mom.lin_mom_sphere(ctx)
    assert res.figures and all(Path(f).stat().st_size > 10_000 for f in res.figures)


def test_figure_theory_curve_is_the_checked_constant():
    """The dashed c(mu) of the figure is the constant the scaling check judges."""
    from proofs_check.cases.lin_mom import drift_constant
    from proofs_check.figures.momentum import _c

    for method in ("heavy-ball", "nesterov"):
        for mu in (0.0, 0.3, 0.9):
            assert _c(method, mu) == drift_constant(method, mu)
    assert drift_constant("heavy-ball", 0.9) == pytest.approx(190.0)
    assert drift_constant("nesterov", 0.5) == pytest.approx(4.0)
