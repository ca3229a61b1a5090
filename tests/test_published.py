"""The authors' published numbers and the digit count REPRO-* reports."""

from __future__ import annotations

import math

import pytest

from proofs_check.published import FULL_DIGITS, digits, load


def test_digits_counts_significant_agreement():
    assert digits(1.0, 1.0) == FULL_DIGITS
    assert digits(1.0 + 1e-12, 1.0) == pytest.approx(12.0, abs=1e-3)
    assert digits([2.0, 1.0 + 1e-8], [2.0, 1.0]) == pytest.approx(8.0, abs=1e-3)
    assert math.isclose(digits(-3.0, -3.0 * (1 + 1e-11)), 11.0, abs_tol=1e-3)
    with pytest.raises(ValueError, match="shapes differ"):
        digits([1.0, 2.0], [1.0])


def test_published_values_name_their_source():
    pub = load()
    assert pub["commit"].startswith("028e65b") and len(pub["commit"]) == 40
    assert pub["leg"]["file"].endswith("summary.json")
    assert set(pub["apx_linear"]["methods"]) == {
        "exact", "jfb", "neumann2", "neumann3", "damped2"
    }


def test_a_perturbed_published_value_fails_the_check(monkeypatch):
    """REPRO-APX/published can fail: shift one published number in its 9th digit."""
    import copy

    from proofs_check import published
    from proofs_check.checks import repro_published
    from proofs_check.registry import Context, Status

    bad = copy.deepcopy(load())
    th = bad["apx_linear"]["methods"]["jfb"]["final_theta"]
    th[0] *= 1 + 1e-9
    monkeypatch.setattr(repro_published, "load", lambda name="x": bad)
    res = repro_published.repro_apx_published(Context())
    assert res.status is Status.failed
    assert res.details["digits_matched"]["jfb theta_final"] < 10
    assert published.load()["apx_linear"]["methods"]["jfb"]["final_theta"][0] != th[0]
