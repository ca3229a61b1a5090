"""The registered single-index checks (SIM-*, REPRO-WEAK, REPRO-LEG sigmoid part) pass
in the quick profile, and their analysis helpers fail when the theory is broken."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dynamics.models.activations import sigma_eps
from dynamics.models.single_index import SingleIndexDEQ
from proofs_check import sim_tools as st
from proofs_check.checks import sim
from proofs_check.protocols.single_index import risk_mono
from proofs_check.registry import Context, Status, load_checks

MINE = {
    ("SIM-GRAD", "main"),
    ("SIM-FP", "main"),
    ("SIM-HESS", "numeric"),
    ("SIM-EPS2", "main"),
    ("SIM-NONCONS", "numeric"),
    ("SIM-LOCAL-RATE", "main"),
    ("SIM-MONO", "main"),
    ("REPRO-WEAK", "main"),
    ("REPRO-LEG", "sigmoid"),
}


@pytest.fixture(scope="module")
def quick_results():
    checks = load_checks()
    ctx = Context(seed=0, profile="quick")
    return {
        key: chk.fn(ctx)
        for key, chk in checks.items()
        if chk.fn.__module__ == sim.__name__
    }


def test_every_part_is_registered(quick_results):
    assert set(quick_results) == MINE


@pytest.mark.parametrize("key", sorted(MINE), ids=lambda k: "/".join(k))
def test_checks_pass_in_the_quick_profile(quick_results, key):
    res = quick_results[key]
    assert res.status is Status.passed, f"{key}: {res.reason} {res.details}"
    assert res.instances > 0 and res.worst_margin is not None and res.worst_margin >= 0


def test_reduced_runs_say_so(quick_results):
    """Reduced protocol runs say so: SIM-MONO through its sizes (the registry marks
    the row reduced against the catalogue's 60000 updates), the REPRO record checks
    in their reason, which points at the comparison with the published values."""
    from proofs_check.registry import reduced_sizes

    mono = quick_results[("SIM-MONO", "main")]
    assert reduced_sizes("SIM-MONO", mono.ran) == ["updates 1500/60000", "seeds 1/5"]
    for key in (("REPRO-WEAK", "main"), ("REPRO-LEG", "sigmoid")):
        assert "reduced" in quick_results[key].reason.lower()
        assert "part 'published'" in quick_results[key].reason


def test_eps2_is_deterministic_and_seed_dependent():
    a = sim.sim_eps2(Context(seed=3))
    b = sim.sim_eps2(Context(seed=3))
    c = sim.sim_eps2(Context(seed=4))
    assert a.details == b.details and a.details != c.details


# ------------------------------------------------------------ falsification


def test_local_rate_rejects_a_wrong_prediction():
    """A risk decaying at rho^2 = 0.81 fits 2 log 0.9 within 5 %, not 2 log 0.8."""
    k = np.arange(400)
    dist = 0.9**k
    risks = 0.81**k * (1 + 0.01 * np.sin(k))
    good = st.local_rate(k, risks, dist, 1e-300, 2 * math.log(0.9))
    bad = st.local_rate(k, risks, dist, 1e-300, 2 * math.log(0.8))
    assert good["reached"] and good["rel_error"] < 0.01 and good["ci"][1] < 0
    assert bad["rel_error"] > st.RATE_RTOL


def test_window_rule():
    k = np.arange(1000)
    dist = np.r_[np.ones(300), 0.005 * np.ones(700)]
    risks = np.r_[np.ones(800), 1e-40 * np.ones(200)]
    start, end, why = st.asymptotic_window(risks, dist, floor=1e-32)
    assert (start, end) == (300, 800) and "fell" in why
    start, _, why = st.asymptotic_window(risks, np.ones(1000), floor=1e-32)
    assert start == 500 and "second half" in why
    assert not st.local_rate(k, risks, np.ones(1000), 1.0, -1.0)["reached"]


def test_risk_mono_flags_an_increase():
    R = np.array([1.0, 0.5, 0.25, 0.3, 0.1])
    out = risk_mono(R, fmax=1.0)
    assert out["violations"] == 1 and out["worst_margin"] < 0
    assert risk_mono(R[:3], 1.0)["worst_margin"] == 1.0
    tiny = np.array([1e-30, 1e-30 + 1e-46])  # within the rounding allowance
    assert risk_mono(tiny, 1.0)["violations"] == 0


def test_eps2_family_slope_and_affine_limit():
    """SIM-EPS2 / P9: lambda_min(H*) falls like eps^2 along sigma_eps, and at the
    affine limit H* is singular to rounding (no isolated minimiser)."""
    data = np.random.default_rng(0).normal(size=(500, 3))
    xi = np.array([0.6, 0.8, 0.0])
    eps = [0.5, 0.25, 0.125, 0.0625]
    lam = np.array([r["lambda_min"] for r in sim.eps2_table(data, xi, eps)])
    slope = np.polyfit(np.log(eps[-3:]), np.log(lam[-3:]), 1)[0]
    assert abs(slope - 2) < 0.15
    tiny = 1e-12
    row = sim.eps2_table(data, xi, [tiny])[0]
    # Rounding model: eigvalsh is backward stable, |lambda_hat - lambda| <= c d eps64
    # ||H*||_2 with d = 4 here; c d <= 64 is generous. The true lambda_min and the
    # bound are ~eps^2 = 1e-24, far below that, so both must lie within it.
    act = sigma_eps(tiny)
    z = data @ xi
    h = SingleIndexDEQ(data, act.sigma(z), act).hessian_at_target(xi)
    rounding = 64 * np.finfo(float).eps * np.linalg.norm(h, 2)
    assert abs(row["lambda_min"]) <= rounding
    assert row["lambda_min"] <= row["bound"] + rounding
