"""Seeded linear-DEQ case streams and the per-profile instance counts, shared by the
pointwise checks (:mod:`proofs_check.checks.lin_static`), the GD / GF / momentum
checks and the case modules :mod:`proofs_check.cases.lin_gd` and
:mod:`proofs_check.cases.lin_mom`.

Every stream draws from the generator it is given (a check's
:meth:`~proofs_check.registry.Context.rng`), so the same seed gives the same cases.
"""

from __future__ import annotations

import numpy as np

from dynamics.instances.linear import matrix_instance, scalar_instance
from dynamics.models.linear_deq import LinearDEQ

from ..registry import Context


def n_instances(ctx: Context, quick: int, full: int) -> int:
    return full if ctx.full else quick


# ------------------------------------------------------------------ instance streams


def scalar_cases(rng: np.random.Generator, count: int, max_d: int = 5):
    """``count`` (label, model, theta) triples: scalar instances, half near (0, 1).

    Besides each instance's own theta0, one extra random point is drawn per instance,
    on the other branch of v = 1 half of the time, so both branches are covered.
    """
    for i in range(count):
        d = int(rng.integers(1, max_d + 1))
        inst = scalar_instance(rng, d, near_singular=bool(i % 2))
        yield f"scalar d={d}{' near' if i % 2 else ''}", inst.model, inst.theta0
        theta = inst.theta0.copy()
        theta[:-1] = rng.normal(size=d)
        gap = rng.uniform(0.05, 2.0) * (1 if rng.random() < 0.5 else -1)
        theta[-1] = 1.0 - gap
        yield f"scalar d={d} random", inst.model, theta


def matrix_cases(
    rng: np.random.Generator, count: int, readout: bool | None = None, max_m: int = 3
):
    """``count`` (label, model, theta) triples: matrix instances, readout alternating
    (or as given), W0 Gaussian without a spectral-radius bound."""
    for i in range(count):
        m = int(rng.integers(1, max_m + 1))
        d = int(rng.integers(m, m + 2))
        ro = bool(i % 2) if readout is None else readout
        k = int(rng.integers(1, m + 2)) if ro else m
        inst = matrix_instance(rng, m, d, k=k, readout=ro)
        yield (
            f"matrix m={m} d={d} k={k}{' readout' if ro else ''}",
            inst.model,
            inst.theta0,
        )


def singular_scale(model, theta) -> float:
    """Distance-like length scale to the singular set: |1 - v| or sigma_min(I - W)."""
    if isinstance(model, LinearDEQ):
        return abs(model.one_minus_v(theta))
    return float(np.linalg.svd(model.A(theta), compute_uv=False)[-1])
