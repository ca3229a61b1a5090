"""Test tolerances and the shared comparison helper.

A claim's own tolerances live with the claim in :mod:`proofs_check.catalogue`; the
entries below that name a claim read them from there. The rest are test-only
comparisons (engine agreement, replay), each with its reason beside it.
"""

from __future__ import annotations

import numpy as np

from dynamics.measure import FD_STEP, central_difference, rel_error
from proofs_check.catalogue import tol

#: Tolerances keyed by claim ID (or claim ID and a qualifier), from the claim catalogue.
TOL: dict[str, float] = {
    "LIN-GRAD-autograd": tol("LIN-GRAD", "autograd"),
    "LIN-GRAD-fd": tol("LIN-GRAD", "fd"),
    "LIN-FACTOR": tol("LIN-FACTOR", "numeric"),
    "LIN-GF-CONS-dop853": tol("LIN-GF-CONS", "dop853"),
    # Implicit midpoint / Gauss-Legendre: 10 x the stage-solve tolerance 1e-14.
    "LIN-GF-CONS-implicit": 1e-13,
    "LIN-GF-LIMIT": tol("LIN-GF-LIMIT", "limit"),
    "LIN-PL": tol("LIN-PL", "identity"),
    "LIN-GD-DRIFT": tol("LIN-GD-DRIFT", "drift"),
    "LIN-GD-MONO": tol("LIN-GD-MONO", "mono"),
    # Single-index DEQ and approximate backprop (claims.md SIM-*, APX-*).
    "SIM-GRAD-fd": tol("SIM-GRAD", "fd"),
    "SIM-GRAD-autograd": tol("SIM-GRAD", "autograd"),
    "SIM-FP-brent": tol("SIM-FP", "brent"),
    "SIM-FP-residual": 1e-13,
    "SIM-HESS-torch": tol("SIM-HESS", "torch"),
    "SIM-HESS-fd": tol("SIM-HESS", "fd"),
    "SIM-NONCONS": tol("SIM-NONCONS", "formula"),
    "APX-NEUMANN-FACTOR": tol("APX-NEUMANN-FACTOR", "identity"),
    "APX-JFB": tol("APX-NEUMANN-FACTOR", "identity"),
    "APX-LOCAL-fd": tol("APX-LOCAL", "fd"),
    # P-SCALE batched engine (tests/test_batched_linear.py): batched vs the
    # single-instance engine on the same instance (different summation orders only);
    # replay of a scale-run instance; float32 against float64 (unit roundoff 6e-8 times
    # the conditioning of a few-step run); implicit midpoint at stage tolerance 1e-15.
    "SCALE-vs-single": 1e-12,
    "SCALE-replay": 1e-10,
    "SCALE-float32": 1e-5,
    "SCALE-midpoint-drift": 1e-13,
    # batched single-index vs SingleIndexDEQ: both solve the roots to residual 1e-13.
    "SCALE-sim-vs-single": 1e-11,
    # Reversible DEQ (claims.md REV-*; tests/test_reversible.py and friends).
    "REV-INVERT-float64": 1e-12,  # for |1 - beta| >= 0.2, scaled by 0.2/|1-beta| closer
    "REV-INVERT-float32": 1e-5,
    "REV-EXACT-float64": 1e-8,  # reconstructed states, N <= 10 (EXACT_TIGHT_N)
    "REV-EXACT-stored": 1e-12,  # same recursion on the stored states
    "REV-EXACT-unit-atol": 1e-5,  # the authors' unit-test tolerance
    "REV-FD": 1e-6,
    "REV-SAME-FP": 1e-10,
    "REV-RATE-slack": 1e-9,
    "REV-IFT-tight": 1e-6,
    # mixed precision (f in float32, float64 state): f's rounding, a few steps
    "REV-EXACT-mixed": 1e-5,
    # solvers agree with Picard's fixed point at tol 1e-12 (contraction <= 0.9)
    "FP-agree": 1e-9,
}


#: max |a - e| / max(1, max |e|): relative for large values, absolute near zero.
rel_err = rel_error


def assert_close(actual, expected, tol: float | str, what: str = "") -> None:
    """Assert ``rel_err(actual, expected) <= tol``; ``tol`` may be a key of TOL."""
    t = TOL[tol] if isinstance(tol, str) else float(tol)
    err = rel_err(actual, expected)
    assert err <= t, f"{what}: relative error {err:.3e} exceeds tolerance {t:.1e}"


def central_fd_grad(fun, theta: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """Central finite-difference gradient, step eps^(1/3) * scale per coordinate."""
    return central_difference(fun, theta, FD_STEP * scale)
