"""The registered linear-DEQ checks pass in the quick profile, and fail when the
theory they test is deliberately broken (falsification)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dynamics import rates
from dynamics.instances.linear import leg_model, sweep_theta0
from dynamics.models.linear_deq import LinearDEQ
from proofs_check.cases import lin as lin_cases, lin_gd as lin_gd_cases
from proofs_check.checks import (
    lin_gd_drift,
    lin_gd_rate,
    lin_gd_step,
    lin_static,
    repro_leg,
)
from proofs_check.protocols import ProtocolContext, leg_linear, load_protocols
from proofs_check.registry import Context, Status, load_checks

MINE = (
    "LIN-GRAD",
    "LIN-FACTOR",
    "LIN-PL",
    "LIN-GD-DRIFT",
    "LIN-GD-MONO",
    "LIN-GD-CUMDRIFT",
    "LIN-GD-RATE",
    "LIN-GD-STEP",
    "REPRO-LEG",
)


@pytest.fixture(scope="module")
def quick_results():
    checks = load_checks()
    ctx = Context(seed=0, profile="quick")
    # Only the parts registered by lin_static / lin_gd (other modules may add parts,
    # e.g. the symbolic LIN-FACTOR certificate, which their own tests cover).
    return {
        key: chk.fn(ctx)
        for key, chk in checks.items()
        if chk.fn.__module__
        in {
            m.__name__
            for m in (lin_gd_drift, lin_gd_rate, lin_gd_step, repro_leg, lin_static)
        }
    }


def test_every_claim_of_mine_is_registered(quick_results):
    assert {cid for cid, _ in quick_results} == set(MINE)


@pytest.mark.parametrize("claim", MINE)
def test_registered_checks_pass_in_quick_profile(quick_results, claim):
    parts = {p: r for (c, p), r in quick_results.items() if c == claim}
    for part, res in parts.items():
        if (claim, part) == ("REPRO-LEG", "src"):
            assert res.status is Status.not_implemented  # later issue, never pass
            continue
        assert res.status is Status.passed, f"{claim}/{part}: {res.reason}"
        assert res.instances > 0 and res.worst_margin is not None
        assert res.reason


def test_checks_are_deterministic_for_a_seed():
    a = lin_static.lin_pl_scalar(Context(seed=3))
    b = lin_static.lin_pl_scalar(Context(seed=3))
    assert a.worst_margin == b.worst_margin


def test_lin_gd_step_reports_the_per_seed_table(quick_results):
    res = quick_results[("LIN-GD-STEP", "sweep+control")]
    proto, control = res.details["protocol"], res.details["control"]
    assert [r["seed"] for r in proto] == list(range(20))
    assert any(r["crossed_v_eq_1"] or r["failed"] for r in proto)
    assert not any(r["crossed_v_eq_1"] for r in control)
    assert all(r["eta"] <= r["one_over_ell"] for r in control)


# ------------------------------------------------------------------ falsification


def test_wrong_gd_rate_bound_fails(monkeypatch):
    """LIN-GD-RATE: claiming a rate twice as fast (factor q^2) must be caught."""
    true = rates.gd_rate_factor
    monkeypatch.setattr(rates, "gd_rate_factor", lambda *a, **k: true(*a, **k) ** 4)
    res = lin_gd_rate.lin_gd_rate_b(Context())
    assert res.status is Status.failed
    assert res.worst_margin < 0


def test_wrong_gradient_fails(monkeypatch):
    """LIN-GRAD: a gradient whose v-component is off by 1e-6 (relative) fails."""
    true = LinearDEQ.value_and_grad

    def off(self, theta):
        r, g = true(self, theta)
        g = g.copy()
        g[-1] *= 1 + 1e-6
        return r, g

    monkeypatch.setattr(LinearDEQ, "value_and_grad", off)
    assert lin_static.lin_grad_scalar(Context()).status is Status.failed


def test_step_condition_violated_in_control_fails(monkeypatch):
    """LIN-GD-STEP: if the control used the protocol step (not 1/ell), it crosses."""
    monkeypatch.setattr(rates, "gd_step_bound", lambda *a, **k: leg_linear.SWEEP_ETA)
    monkeypatch.setattr(lin_gd_step, "CONTROL_STEPS", 200)  # crossings happen early
    res = lin_gd_step.lin_gd_step(Context())
    assert res.status is Status.failed
    assert res.worst_margin < 0


def test_step_check_fails_when_nothing_fails(monkeypatch):
    """LIN-GD-STEP must *exhibit* a failure: with an unreachable failure criterion and
    a protocol step inside the R6 condition, nothing fails and the check fails."""
    monkeypatch.setattr(leg_linear, "SWEEP_ETA", 1e-7)  # the protocol's step
    monkeypatch.setattr(lin_gd_step, "CONTROL_STEPS", 50)
    res = lin_gd_step.lin_gd_step(Context(), failure_risk=np.inf)
    assert res.status is Status.failed


def test_wrong_pl_constant_is_violated():
    """LIN-PL: the inequality is tight enough that 4x the constant is violated."""
    rng = np.random.default_rng(0)
    cases = list(lin_cases.scalar_cases(rng, 30))
    slacks = [
        lin_static.rel_slack(t["grad_sq"], t["pl_rhs"])
        for _, m, th in cases
        for t in [lin_static.pl_terms(m, th, 8.0)]
    ]
    assert min(slacks) < 0


def test_cumulative_drift_bound_fails_beyond_the_descent_prefix():
    """Pitfall P3: near (0,1) at eta = 0.01 the descent inequality fails and Q_k
    exceeds Q_0 + 2 eta R_0, so the bound may only be asserted on the prefix."""
    run = lin_gd_cases.analyse_gd(leg_model(), np.array([0.0244, 1.0678]), 0.01, 200)
    assert run.prefix < len(run.grads)
    Q = run.Q
    assert Q[-1] > Q[0] + 2 * run.eta * run.risks[0]
    assert (
        lin_gd_cases.cumdrift_on_prefix(run)["violation"]
        <= lin_gd_cases.TOL_CUMDRIFT
    )


def test_drift_residual_detects_a_wrong_identity():
    """LIN-GD-DRIFT: a drift of eta^2 ||g||^2 (1 + 1e-9) would be caught."""
    run = lin_gd_cases.analyse_gd(leg_model(), sweep_theta0(3), 0.01, 20)
    res = lin_gd_cases.drift_residuals(run)
    assert res.max() <= lin_gd_cases.TOL_DRIFT
    wrong = [
        abs(
            LinearDEQ.Q(run.thetas[k + 1])
            - LinearDEQ.Q(run.thetas[k])
            - 0.01**2 * (g @ g) * (1 + 1e-9)
        )
        for k, g in enumerate(run.grads)
    ]
    assert max(wrong) > lin_gd_cases.TOL_DRIFT


# ---------------------------------------------------------------------- protocols


def test_near_singular_protocol_writes_json_and_figures(tmp_path):
    """REPRO-LEG: the protocol records every §6.0 field and writes its figures."""
    from proofs_check.report import to_jsonable

    proto = load_protocols()["leg-linear-near-singular"]
    payload = proto.fn(ProtocolContext(figures_dir=tmp_path))
    data = json.loads(json.dumps(to_jsonable(payload), allow_nan=False))
    (run,) = data["runs"]
    for field in repro_leg.RUN_FIELDS:
        assert field in run
    assert run["theta0"] == [0.024422950667176008, 1.0678178320078855]
    assert len(run["risks"]) == 201
    for name in ("dynamics-lm-unstable", "distances-lm-unstable"):
        assert (tmp_path / f"{name}.png").read_bytes()[:4] == b"\x89PNG"


def test_protocols_are_listed():
    names = set(load_protocols())
    assert {"leg-linear", "leg-linear-near-singular", "sweep"} <= names


def test_step_rule_ignores_final_risk_that_controls_also_reach():
    """LIN-GD-STEP: "final risk > 1e-3" is no evidence of a too-large step when runs
    at eta = 1/ell end above it too; then only crossings (or stopped runs) count."""
    base = {
        "sign_flip": False,
        "result": "fixed_steps_completed",
        "min_gap_over_delta": 1.0,
    }
    payload = {
        "failure_risk": 1e-3,
        "runs": [{**base, "seed": 0, "risk_final": 0.5}],
        "control_runs": [{**base, "seed": 0, "risk_final": 0.7}],
    }
    v = lin_gd_step.sweep_verdict(payload)
    assert v["bad"] == [] and not v["ok"] and not v["final_risk_counts"]
    payload["control_runs"][0]["risk_final"] = 1e-20
    v = lin_gd_step.sweep_verdict(payload)
    assert v["bad"] == [0] and v["ok"] and v["final_risk_counts"]
    payload["runs"][0].update(risk_final=1e-20, sign_flip=True)
    payload["control_runs"][0]["risk_final"] = 0.7
    assert lin_gd_step.sweep_verdict(payload)["bad"] == [0]


def test_crossings_start_far_beyond_the_step_condition():
    """Measured fact reported by LIN-GD-STEP: no P-SWEEP seed crosses v = 1 at
    eta <= 200/ell in 200 steps (R6 promises only eta <= 1/ell); some do by 500/ell."""
    thr = lin_gd_step.crossing_threshold(Context())
    counts = thr["crossings_by_eta_over_inv_ell"]
    assert all(counts[r] == 0 for r in counts if r <= 200)
    assert thr["first_crossing_eta_over_inv_ell"] == 500


def test_cumdrift_conclusion_fails_beyond_the_descent_prefix():
    """LIN-GD-CUMDRIFT's hypothesis is needed: in every run where the descent
    inequality failed, Q_k <= Q_0 + 2 eta (R_0 - R_k) fails at some later step."""
    from proofs_check.checks import lin_gd_drift

    res = lin_gd_drift.lin_gd_cumdrift(Context())
    b = res.details["beyond_prefix"]
    assert b["runs_hypothesis_failed"] > 0
    assert b["conclusion_fails"] == b["runs_hypothesis_failed"]
    assert f"{b['conclusion_fails']}/{b['runs_hypothesis_failed']}" in res.reason
