"""The REV-* claim checks of proofs_check/checks/rev_*.py pass in the quick profile.

The heavier checks (each a few seconds; their content is also covered by the unit
tests of test_reversible.py and test_fixed_point.py) are marked slow.
"""

from __future__ import annotations

import pytest

from proofs_check.registry import Context, Status, load_checks, run_check

FAST = [
    ("REV-INVERT", "numeric"),
    ("REV-EXACT", "unit"),
    ("REV-FD", "numeric"),
    ("REV-MEMORY", "saved-bytes"),
    ("REV-NFE", "numeric"),
    ("REV-SYM", "numeric"),
    ("REV-DET", "numeric"),
    ("REV-IFT-APPROX", "tight"),
    ("REV-IFT-APPROX", "loose"),
]
SLOW = [
    ("REV-EXACT", "toy"),
    ("REV-EXACT", "stored"),
    ("REV-EXACT", "gradcheck"),
    ("REV-SAME-FP", "numeric"),
    ("REV-RATE", "numeric"),
    ("REV-SHARP", "numeric"),
    ("REV-RECON", "numeric"),
]


def _run(claim: str, part: str):
    checks = load_checks()
    row = run_check(checks[(claim, part)], Context(seed=0, profile="quick"))
    res = row.result
    assert res.status is Status.passed, f"{claim}/{part}: {res.reason} {res.details}"
    assert res.worst_margin is not None and res.worst_margin >= 0
    return res


@pytest.mark.parametrize("claim,part", FAST, ids=lambda v: str(v))
def test_rev_check_passes(claim, part):
    """Each fast REV-* numeric part passes with a non-negative worst margin."""
    _run(claim, part)


@pytest.mark.slow
@pytest.mark.parametrize("claim,part", SLOW, ids=lambda v: str(v))
def test_rev_check_passes_slow(claim, part):
    """The heavier REV-* parts (run by `make test-slow` and by `verify`)."""
    _run(claim, part)


def test_every_rev_claim_has_a_numeric_part():
    """Every REV-* claim has a registered non-symbolic part in this module."""
    checks = load_checks()
    rev = {
        cid for (cid, part) in checks if cid.startswith("REV-") and part != "symbolic"
    }
    assert rev == {
        "REV-INVERT",
        "REV-EXACT",
        "REV-FD",
        "REV-MEMORY",
        "REV-NFE",
        "REV-SAME-FP",
        "REV-RATE",
        "REV-SHARP",
        "REV-SYM",
        "REV-DET",
        "REV-RECON",
        "REV-IFT-APPROX",
    }


def test_memory_details_show_flat_reversible_and_linear_unrolled():
    res = _run("REV-MEMORY", "saved-bytes")
    d = res.details
    assert len(set(d["reversible_bytes"])) == 1
    assert d["unrolled_r2"] > 0.99 and d["unrolled_slope_bytes_per_step"] > 0
