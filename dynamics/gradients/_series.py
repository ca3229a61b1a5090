"""The truncated damped series and the unrolled chain that realises it in torch."""

from __future__ import annotations

from .._result import Result
from .base import record_backward, solve_detached


def damped_series(J, m: int, lam):
    """lam sum_{k<m} ((1 - lam) + lam J)^k, with arithmetic operators only."""
    B = (1 - lam) + lam * J
    total = 1 + 0 * J
    power = 1 + 0 * J
    for _ in range(1, m):
        power = power * B
        total = total + power
    return lam * total


def unrolled_solve(problem, solver, z0, k: int, lam, *, tol, max_steps, throw):
    """Backprop through ``k`` steps ``z <- (1 - lam) z + lam f(z)`` started at the
    detached solution z*; the output value is z* (straight-through). Shared by
    phantom, damped-m (the same chain) and Neumann-m (lam = 1)."""
    f, zs, stats = solve_detached(
        problem, solver, z0, tol=tol, max_steps=max_steps, throw=throw
    )
    lam = float(lam)
    z = zs
    for _ in range(k):
        z = (1.0 - lam) * z + lam * f(z)
    stats["nfe_forward"] += k
    stats["nfe_backward"] = k
    record_backward(stats, Result.successful)
    return zs + (z - z.detach()), stats
