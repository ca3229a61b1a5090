"""The one place tolerances live, and the shared comparison helper."""

from __future__ import annotations

import numpy as np

#: Tolerances keyed by claim ID (or claim ID and a qualifier), from spec/claims.md.
TOL: dict[str, float] = {
    "LIN-GRAD-autograd": 1e-12,
    "LIN-GRAD-fd": 1e-7,
    "LIN-FACTOR": 1e-12,
    "LIN-GF-CONS-dop853": 1e-9,
    "LIN-PL": 1e-12,
    "LIN-GD-DRIFT": 1e-12,
    "LIN-GD-MONO": 1e-12,
}


def rel_err(actual, expected) -> float:
    """max |a - e| / max(1, max |e|): relative for large values, absolute near zero."""
    a = np.asarray(actual, dtype=float)
    e = np.asarray(expected, dtype=float)
    return float(np.max(np.abs(a - e)) / max(1.0, float(np.max(np.abs(e)))))


def assert_close(actual, expected, tol: float | str, what: str = "") -> None:
    """Assert ``rel_err(actual, expected) <= tol``; ``tol`` may be a key of TOL."""
    t = TOL[tol] if isinstance(tol, str) else float(tol)
    err = rel_err(actual, expected)
    assert err <= t, f"{what}: relative error {err:.3e} exceeds tolerance {t:.1e}"


def central_fd_grad(fun, theta: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """Central finite-difference gradient, step eps^(1/3) * scale per coordinate."""
    h = np.finfo(float).eps ** (1.0 / 3.0) * scale
    g = np.empty_like(theta, dtype=float)
    for i in range(theta.size):
        e = np.zeros_like(theta, dtype=float)
        e[i] = h
        g[i] = (fun(theta + e) - fun(theta - e)) / (2 * h)
    return g
