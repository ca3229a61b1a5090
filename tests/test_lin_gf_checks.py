"""The registered gradient-flow checks (LIN-GF-CONS, LIN-SPHERE, LIN-COND, LIN-GF-RATE,
LIN-GF-LIMIT): they pass in the quick profile, and they fail when the claim is
falsified (a perturbed C0, a wrong rate constant, a non-conserving integrator)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dynamics.flows.gradient_flow import integrate
from dynamics.integrators import RK4
from proofs_check.checks import _lin_gf_flows, lin_gf_cond, lin_gf_rate
from proofs_check.registry import Context, Status, load_checks

CLAIMS = ("LIN-GF-CONS", "LIN-SPHERE", "LIN-COND", "LIN-GF-RATE", "LIN-GF-LIMIT")
QUICK = Context(seed=0, profile="quick")


def registered_parts():
    return sorted((cid, part) for (cid, part) in load_checks() if cid in CLAIMS)


def test_every_claim_has_registered_parts():
    parts = registered_parts()
    assert {cid for cid, _ in parts} == set(CLAIMS)
    assert ("LIN-GF-CONS", "matrix-readout") in parts
    assert ("LIN-COND", "scalar-gd") in parts and ("LIN-COND", "matrix-gd") in parts


@pytest.mark.parametrize("cid, part", registered_parts())
def test_registered_check_passes_in_quick_profile(cid, part):
    res = load_checks()[(cid, part)].fn(QUICK)
    assert res.status is Status.passed, res.reason
    assert res.instances >= 2 and res.worst_margin is not None
    assert math.isfinite(res.worst_margin) and res.worst_margin >= -res.tolerance


@pytest.mark.claim("LIN-GF-CONS")
def test_quick_instances_cover_the_stiff_and_p1_cases():
    """Starts near the singular set, on the branch v > 1, and with rho(W0) > 1."""
    scalar = _lin_gf_flows.flows(0, "quick", "scalar")
    assert sum(f.near_singular for f in scalar) >= 2
    assert any(f.theta0[-1] > 1.0 for f in scalar)
    for family in ("matrix", "readout"):
        fl = _lin_gf_flows.flows(0, "quick", family)
        assert any(f.rho_w0 > 1.0 for f in fl) and any(f.near_singular for f in fl)


@pytest.mark.claim("LIN-COND")
def test_lin_cond_fails_with_a_perturbed_c0():
    """Falsification: |1 - v(t)| = r0 / sqrt(1 + ||beta(t)||^2) is tight, so inflating
    Q0 by one part in 10^6 (standing in for 'C(t) replaced by a perturbed C0') must
    fail, while the true C0 passes."""
    assert lin_gf_cond._cond_gf(QUICK, "scalar").status is Status.passed
    bad = lin_gf_cond._cond_gf(QUICK, "scalar", c0_scale=1.0 + 1e-6)
    assert bad.status is Status.failed
    assert bad.worst_margin < -1e-7


@pytest.mark.claim("LIN-GF-RATE")
def test_lin_gf_rate_fails_with_a_wrong_rate_constant():
    """Falsification: a loss factor large enough that the envelope decays faster than
    the slowest measured flow must fail; the true factor (2, no-1/2 MSE) passes."""
    good = lin_gf_rate._rate(QUICK, "scalar")
    assert good.status is Status.passed
    slowest = good.details["fitted_over_bound"]["min"]
    bad = lin_gf_rate._rate(QUICK, "scalar", loss_factor=2.0 * 2.0 * slowest)
    assert bad.status is Status.failed and bad.worst_margin < -1e-3


@pytest.mark.claim("LIN-GF-CONS")
def test_drift_measure_flags_a_non_conserving_integrator():
    """The LIN-GF-CONS drift measure sees RK4's O(h^4) drift on a coarse grid."""
    f = _lin_gf_flows.flows(0, "quick", "scalar")[0]
    rk = integrate(
        f.model,
        f.theta0,
        f.t_transient,
        integrator=RK4(),
        grid=np.append(f.traj.times[f.traj.times < f.t_transient][::8], f.t_transient),
    )
    assert _lin_gf_flows.drift(f.model, rk) > _lin_gf_flows.TOL_CONS
    assert _lin_gf_flows.drift(f.model, f.traj) <= _lin_gf_flows.TOL_CONS


def test_rate_figure_is_written(tmp_path):
    ctx = Context(seed=0, profile="quick", figures_dir=tmp_path)
    res = lin_gf_rate.lin_gf_rate_scalar(ctx)
    assert res.status is Status.passed
    assert res.figures and all((tmp_path / p).exists() for p in res.figures)
    # Quick-profile figures carry "-quick" (never the full run's name) and a PDF.
    assert (tmp_path / "lin-gf-rate-scalar-quick.png").stat().st_size > 10_000
    assert (tmp_path / "lin-gf-rate-scalar-quick.pdf").read_bytes()[:4] == b"%PDF"
