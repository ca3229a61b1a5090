"""Item 2 of issue 11: every inequality claim reports its tightness (measured/bound
at the tightest instance found, points equal by construction left out), and where
a targeted family exists the bound is attained to within its tolerance."""

from __future__ import annotations

import math

import pytest

from proofs_check.catalogue import tol
from proofs_check.registry import Context, Status, load_checks, run_check

#: (claim, part, lower end of the tightness a targeted family must reach, or None
#: where the bound is loose by nature and only its ratio <= 1 is asserted).
INEQUALITY_PARTS = [
    ("LIN-GF-RATE", "scalar", 1 - tol("LIN-GF-RATE", "tight-family")),
    ("LIN-GF-RATE", "matrix", 1 - tol("LIN-GF-RATE", "tight-family")),
    ("LIN-PL", "scalar", None),
    ("LIN-PL", "matrix", None),
    ("LIN-COND", "scalar", None),
    ("LIN-COND", "matrix", None),
    ("LIN-GD-RATE", "a-scalar", None),
    ("LIN-GD-RATE", "a-smoothness", None),
    ("LIN-GD-STEP", "safe-step", None),
    ("SIM-EPS2", "main", None),
    ("REV-RATE", "numeric", None),
    ("SCALE-RATE", "tight-family", 1 - tol("SCALE-RATE", "tight-family")),
]


@pytest.mark.parametrize("claim,part,attained", INEQUALITY_PARTS, ids=lambda x: str(x))
def test_tightness_reported(claim, part, attained):
    """The row passes, its details carry tightness (ratio, where), the ratio is at
    most 1 (up to the claim's own tolerance: the bound held) and, for a targeted
    family, at least 1 - tol."""
    chk = load_checks()[(claim, part)]
    row = run_check(chk, Context(seed=0, profile="quick"))
    assert row.result.status is Status.passed, row.result.reason
    t = row.result.details["tightness"]
    assert set(t) >= {"ratio", "where"}
    assert math.isfinite(t["ratio"]) and 0 < t["ratio"] <= 1 + 1e-8, t
    if attained is not None:
        assert t["ratio"] >= attained, t
