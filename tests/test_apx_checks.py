"""The registered approximate-backprop checks (APX-*, REPRO-APX) pass in the quick
profile; the P-APX-LIN protocol reproduces its stated structure."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dynamics.gradients import Neumann
from proofs_check.checks import apx
from proofs_check.protocols import load_protocols
from proofs_check.protocols.apx import METHODS, apx_lin_run
from proofs_check.registry import Context, Status, load_checks

MINE = {
    ("APX-NEUMANN-FACTOR", "numeric"),
    ("APX-STALL", "main"),
    ("APX-JFB", "numeric"),
    ("APX-LOCAL", "jacobian"),
    ("APX-LOCAL", "rates"),
    ("REPRO-APX", "main"),
}


@pytest.fixture(scope="module")
def quick_results():
    checks = load_checks()
    ctx = Context(seed=0, profile="quick")
    return {
        key: chk.fn(ctx)
        for key, chk in checks.items()
        if chk.fn.__module__ == apx.__name__
    }


def test_every_part_is_registered(quick_results):
    assert set(quick_results) == MINE


@pytest.mark.parametrize("key", sorted(MINE), ids=lambda k: "/".join(k))
def test_checks_pass_in_the_quick_profile(quick_results, key):
    res = quick_results[key]
    assert res.status is Status.passed, f"{key}: {res.reason} {res.details}"
    assert res.instances > 0 and res.worst_margin is not None and res.worst_margin >= 0


def test_repro_apx_states_its_limits(quick_results):
    reason = quick_results[("REPRO-APX", "main")].reason
    assert "not possible offline" in reason and "Reduced" in reason


def test_protocols_are_registered():
    protos = load_protocols()
    for name in (
        "apx-lin",
        "apx-tanh",
        "weak",
        "leg-sigmoid",
        "leg-sigmoid-far",
        "leg-sigmoid-extended",
        "leg-sigmoid-far-extended",
    ):
        assert name in protos


def test_stall_is_at_minus_one_and_not_at_the_gf_limit():
    """Neumann-2 stops at b = -1, short of the GF limit v_inf = 1 - 3/sqrt 2."""
    r = apx_lin_run(Neumann(2), (math.sqrt(8), 0.0))
    assert r["stalled"] and not r["converged"]
    assert r["gf_limit"][-1] == pytest.approx(1 - 3 / math.sqrt(2))
    assert r["distance_to_gf_limit"] > 0.1
    # Q grows only by the approximate drift eta^2 c^2 ||grad R||^2 (>= 0 per step).
    assert np.all(np.diff(r["Q"]) >= -1e-14 * r["Q"][1:])


def test_methods_of_the_protocol():
    assert [m.label for m in METHODS] == [
        "exact",
        "jfb",
        "neumann-2",
        "neumann-3",
        "damped-2(lam=0.5)",
    ]
