"""Seeded linear-DEQ instances shared by checks, tests, scripts and the scale replay.

Random instances follow the P-GF rules of docs/theory/protocols.md: inputs x ~ N(0, I),
n >= 2d
samples, realizable (noiseless) targets, and an initial feedback weight W0 that is
Gaussian **without** a spectral-radius constraint, only sigma_min(I - W0) >= 0.1
(pitfall P1). The P-LEG / P-SWEEP data and initialisations of
docs/theory/protocols.md are here too, so that the protocols and the
LIN-GD-STEP check draw them identically.

Every generator takes a ``numpy.random.Generator`` and consumes it deterministically:
the same generator state gives the same instance.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .._validate import positive_int
from ..errors import ShapeError
from ..models.linear_deq import LinearDEQ
from ..models.matrix_deq import MatrixLinearDEQ

__all__ = [
    "ScalarInstance",
    "MatrixInstance",
    "scalar_instance",
    "matrix_instance",
    "MIN_SIGMA_A0",
    "LEG_DATA_SEED",
    "LEG_PERTURBATION_SEED",
    "LEG_N",
    "LEG_BETA_STAR",
    "LEG_PERTURBATION",
    "SWEEP_SEED6_THETA0",
    "leg_model",
    "leg_perturbation",
    "sweep_theta0",
]

#: sigma_min(I - W0) (matrix) or |1 - v0| (scalar) is at least this
#: (docs/theory/protocols.md P-GF).
MIN_SIGMA_A0 = 0.1
#: Near-singular scalar starts keep |1 - v0| at least this, so 1 - v0 keeps digits.
MIN_NEAR_SINGULAR_GAP = 1e-3


@dataclasses.dataclass(frozen=True)
class ScalarInstance:
    """A scalar linear DEQ on seeded data, an initialisation and its target.

    Attributes:
        model: the :class:`LinearDEQ` (owns X, y).
        theta0: initial parameters (u0, v0).
        beta_star: the realizable target, y = X beta_star.
    """

    model: LinearDEQ
    theta0: np.ndarray
    beta_star: np.ndarray

    @property
    def d(self) -> int:
        return self.model.d


@dataclasses.dataclass(frozen=True)
class MatrixInstance:
    """A matrix linear DEQ on seeded data, an initialisation and its target.

    Attributes:
        model: the :class:`MatrixLinearDEQ` (owns X, Y; readout or not).
        theta0: initial parameters (vec W0, vec U0[, vec B0]).
        M_star: the realizable end-to-end target (k x d), Y = X M_star^T.
    """

    model: MatrixLinearDEQ
    theta0: np.ndarray
    M_star: np.ndarray


def _n_samples(n, d: int) -> int:
    if n is None:
        return 4 * d + 4
    n = positive_int("n", n)
    if n < 2 * d:
        raise ShapeError(
            f"instances need n >= 2d samples (docs/theory/protocols.md); "
            f"got n={n}, d={d}"
        )
    return n


def scalar_instance(
    rng: np.random.Generator, d: int, n: int | None = None, near_singular: bool = False
) -> ScalarInstance:
    """A random scalar linear DEQ instance (docs/theory/protocols.md P-GF).

    Args:
        rng: the generator to draw from.
        d: input dimension.
        n: number of samples (default 4d + 4; at least 2d).
        near_singular: start at (0_d, 1) + N(0, 0.1^2) (as P-SWEEP does) instead of
            u0 ~ N(0, I/d), v0 ~ N(0, 1) with |1 - v0| >= 0.1.
    """
    d = positive_int("d", d)
    n = _n_samples(n, d)
    X = rng.normal(size=(n, d))
    beta_star = rng.normal(size=d)
    y = X @ beta_star
    if near_singular:
        while True:
            theta0 = rng.normal(0.0, 0.1, size=d + 1)
            theta0[-1] += 1.0
            if abs(1.0 - theta0[-1]) >= MIN_NEAR_SINGULAR_GAP:
                break
    else:
        u0 = rng.normal(size=d) / np.sqrt(d)
        while True:
            v0 = rng.normal()
            if abs(1.0 - v0) >= MIN_SIGMA_A0:
                break
        theta0 = np.concatenate([u0, [v0]])
    return ScalarInstance(LinearDEQ(X, y), theta0, beta_star)


def matrix_instance(
    rng: np.random.Generator,
    m: int,
    d: int,
    k: int | None = None,
    readout: bool = False,
    n: int | None = None,
) -> MatrixInstance:
    """A random matrix linear DEQ instance (docs/theory/protocols.md P-GF).

    W0 has i.i.d. N(0, 1/m) entries (spectral radius often above 1, allowed), redrawn
    until sigma_min(I - W0) >= 0.1; U0 ~ N(0, 1/d), B0 ~ N(0, 1/m). The target is
    realizable: M_star ~ N(0, 1/d) entries without readout; with a readout,
    M_star = B_t M_t of rank <= m so that some (W, U, B) attains zero risk.

    Args:
        rng: the generator to draw from.
        m: state dimension.
        d: input dimension.
        k: output dimension (must equal m, its default, without a readout).
        readout: train a readout B (k x m).
        n: number of samples (default 4d + 4; at least 2d).
    """
    m = positive_int("m", m)
    d = positive_int("d", d)
    k = m if k is None else positive_int("k", k)
    if not readout and k != m:
        raise ShapeError(f"without a readout the output is z*, so k must equal m={m}")
    n = _n_samples(n, d)
    X = rng.normal(size=(n, d))
    if readout:
        M_star = rng.normal(size=(k, m)) @ rng.normal(size=(m, d)) / np.sqrt(m * d)
    else:
        M_star = rng.normal(size=(m, d)) / np.sqrt(d)
    Y = X @ M_star.T
    while True:
        W0 = rng.normal(size=(m, m)) / np.sqrt(m)
        if np.linalg.svd(np.eye(m) - W0, compute_uv=False)[-1] >= MIN_SIGMA_A0:
            break
    U0 = rng.normal(size=(m, d)) / np.sqrt(d)
    model = MatrixLinearDEQ(X, Y, m, readout=readout)
    B0 = rng.normal(size=(k, m)) / np.sqrt(m) if readout else None
    return MatrixInstance(model, model.pack(W0, U0, B0), M_star)


# ----------------------------------------------------------- P-LEG / P-SWEEP (§6.1-6.2)

#: P-LEG data seed, sample count and target slope: x = default_rng(42).uniform(0, 1,
#: 1000), y = 2x.
LEG_DATA_SEED, LEG_N, LEG_BETA_STAR = 42, 1000, 2.0
#: Seed of the P-LEG perturbation p = default_rng(43).normal(0, 0.1, 2).
LEG_PERTURBATION_SEED = 43
#: RNG sanity values given by the spec (inputs, not results).
LEG_PERTURBATION = (0.024422950667176008, 0.06781783200788559)
SWEEP_SEED6_THETA0 = (0.10531157544867582, 1.1776491303816994)


def leg_model() -> LinearDEQ:
    """The P-LEG linear model: d = 1, x ~ U[0, 1] (seed 42, n = 1000), target 2x."""
    x = np.random.default_rng(LEG_DATA_SEED).uniform(0.0, 1.0, LEG_N)
    return LinearDEQ(x[:, None], LEG_BETA_STAR * x)


def leg_perturbation() -> np.ndarray:
    """p = default_rng(43).normal(0, 0.1, 2), the P-LEG initial perturbation."""
    return np.random.default_rng(LEG_PERTURBATION_SEED).normal(0.0, 0.1, 2)


def sweep_theta0(seed: int) -> np.ndarray:
    """P-SWEEP start: default_rng(seed).normal(0, 0.1, 2) + (0, 1)."""
    return np.random.default_rng(seed).normal(0.0, 0.1, 2) + np.array([0.0, 1.0])
