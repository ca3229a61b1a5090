"""APX-COSINE (proofs_check.checks.apx_cosine): the claim passes, its planted bug is
caught, and the cosine bound of the single-index part against hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from proofs_check.checks.apx_cosine import cosine, cosine_bound
from proofs_check.mutants import BY_NAME, run_mutant
from proofs_check.registry import Context, Status, claim_status, run


def test_apx_cosine_passes():
    rows = run(["APX-COSINE"], Context(seed=0, profile="quick"))
    assert claim_status(rows)["APX-COSINE"] is Status.passed
    by_part = {r.part: r for r in rows}
    # the single-index cosine is strictly below 1 away from v = 0 (measured)
    assert by_part["single-index"].result.measured < 1 - 1e-6


def test_neumann_abs_mutant_is_killed():
    """Losing the sign of the Neumann series flips c < 0 directions: the linear part
    sees cosine +1 where sign c(v) = -1."""
    kill = run_mutant(BY_NAME["neumann-abs"])
    assert kill.killed, kill.statuses


def test_cosine_bound_hand_cases():
    """Equal factors: rho = 0 (parallel); two orthogonal unit terms with factors 1
    and 3: c_mid = 2, delta S = 2, ||g|| = sqrt 2, rho = 2 / (2 sqrt 2 - 2), and the
    true cosine (1 + 3) / (sqrt 2 sqrt 10) sits above sqrt(1 - rho^2) when rho < 1."""
    e = np.eye(2)
    g = e.sum(0)
    rho, c_mid = cosine_bound(np.array([2.0, 2.0]), e, g)
    assert rho == 0.0 and c_mid == 2.0
    rho, c_mid = cosine_bound(np.array([1.0, 3.0]), e, g)
    assert c_mid == 2.0
    assert rho == pytest.approx(2.0 / (2.0 * math.sqrt(2.0) - 2.0))
    assert rho > 1  # too wide a spread: the bound is vacuous here
    rho, _ = cosine_bound(np.array([1.9, 2.1]), e, g)
    d = np.array([1.9, 2.1])
    assert rho < 1 and cosine(d, g) >= math.sqrt(1 - rho**2)
