"""Batched one-step integrators for B independent flows on a flat (P, B) state.

Each instance has its own step ``h`` (a (B,) tensor), so one call advances B flows of
different stiffness at once. The coefficients are bound from the float64 tableaux of
:mod:`dynamics.integrators.tableaux` (the same data the single-instance integrators
use). Every arithmetic operation is its own kernel (no fused ``alpha=``/``addcmul``),
which keeps each instance's result independent of the batch it sits in.

Field contract: ``field(y) -> (f, aux)`` where ``f`` is the (P, B) vector field at
``y`` and ``aux`` anything the caller wants back from the first evaluation (the
trackers reuse the first stage's inverse and end-to-end map).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ..integrators.tableaux import IMPLICIT_MIDPOINT, RK4

Tensor = torch.Tensor
BatchField = Callable[[Tensor], tuple[Tensor, Any]]

_RK4_A = [float(RK4.a[i, i - 1]) for i in range(1, RK4.stages)]  # 1/2, 1/2, 1
_RK4_B = [float(b) for b in RK4.b]  # 1/6, 1/3, 1/3, 1/6
_MID_A = float(IMPLICIT_MIDPOINT.a[0, 0])  # 1/2
assert all(RK4.a[i, j] == 0.0 for i in range(RK4.stages) for j in range(i - 1)), (
    "the batched RK4 assumes the classical (sub-diagonal) tableau"
)


def rk4_step(
    field: BatchField, y: Tensor, h: Tensor, k1: Tensor | None = None
) -> Tensor:
    """One classical RK4 step of size ``h`` (B,) from ``y`` (P, B).

    ``k1``: the field at ``y`` if the caller has it (4 evaluations become 3).
    """
    if k1 is None:
        k1 = field(y)[0]
    hb = h[None, :]
    ks = [k1]
    for a in _RK4_A:
        ks.append(field(y + (hb * a) * ks[-1])[0])
    acc = ks[0] * _RK4_B[0]
    for b, k in zip(_RK4_B[1:], ks[1:], strict=True):
        acc = acc + k * b
    return y + hb * acc


def implicit_midpoint_step(
    field: BatchField, y: Tensor, h: Tensor, f0: Tensor, *, tol: float, max_iter: int
) -> tuple[Tensor, Tensor, int]:
    """One implicit-midpoint step: y1 = y + h f(z), z = (y + y1) / 2.

    The midpoint z = y + (h/2) f(z) is found by fixed-point iteration from the explicit
    half step, which contracts when (h/2) * Lip(f) < 1; each instance stops updating
    once its own increment is below ``tol * max(1, |z|_inf)``, so its result does not
    depend on how long the slowest instance of the batch iterates. Because the rule
    satisfies Cooper's condition, every quadratic invariant of the field (C, C') is
    conserved up to this solve tolerance.

    Returns:
        (y1, converged (B,) bool, iterations used by the slowest instance).
    """
    half = h[None, :] * _MID_A
    z = y + half * f0
    done = torch.zeros(y.shape[1], dtype=torch.bool, device=y.device)
    prev = torch.full((y.shape[1],), torch.inf, dtype=y.dtype, device=y.device)
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007 - ``it`` is returned
        z_new = y + half * field(z)[0]
        inc = (z_new - z).abs().amax(0)
        scale = torch.clamp(z_new.abs().amax(0), min=1.0)
        z = torch.where(done[None, :], z, z_new)
        # Converged: below tolerance, or within 100x of it and no longer shrinking
        # (the increments have reached the rounding noise of the field evaluation).
        stalled = (inc <= 100.0 * tol * scale) & (inc >= 0.5 * prev)
        done = done | (inc <= tol * scale) | stalled
        prev = inc
        if bool(done.all()):
            break
    y1 = z + (z - y)
    return y1, done, it
