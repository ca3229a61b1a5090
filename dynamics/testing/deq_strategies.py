"""Hypothesis strategies for PyTorch DEQ maps with a certified Lipschitz constant.

A drawn :class:`RevCase` builds ``f(z, x) = tanh(W z + U x + b)`` with the spectral
norm of W set to ``lipschitz`` (so f is a contraction in z with that constant, since
tanh is 1-Lipschitz), an input batch and a zero start. Shrinking acts on the seed,
beta, width, contraction factor, dtype and step count, never on raw tensors.

Needs Hypothesis and PyTorch.
"""

from __future__ import annotations

import dataclasses

import torch

from ..instances.torch_examples import TanhMap
from ._hypothesis import st

__all__ = ["SEEDS", "DTYPES", "betas", "RevCase", "revdeq_configs", "contractive_maps"]

SEEDS = st.integers(min_value=0, max_value=2**31 - 1)
DTYPES = st.sampled_from([torch.float64, torch.float32])


def betas(min_gap: float = 0.2) -> st.SearchStrategy[float]:
    """Reversible relaxation beta: in (0.05, 1.95), |1 - beta| >= min_gap."""
    low = st.floats(0.05, 1.0 - min_gap, allow_nan=False, allow_infinity=False)
    high = st.floats(1.0 + min_gap, 1.95, allow_nan=False, allow_infinity=False)
    return st.one_of(low, high)


@dataclasses.dataclass(frozen=True)
class RevCase:
    """A seeded contractive DEQ problem: f = tanh(W z + U x + b), ||W||_2 = lipschitz.

    Attributes:
        seed: seeds the map and the input batch.
        beta: relaxation of the reversible iteration.
        width: state dimension.
        dx: input dimension.
        lipschitz: certified Lipschitz constant of f in z (< 1: a contraction).
        dtype: torch dtype of the map and tensors.
        steps: number of iterations a test should run.
        batch: batch size of x.
    """

    seed: int
    beta: float
    width: int
    dx: int
    lipschitz: float
    dtype: torch.dtype
    steps: int
    batch: int

    def build(self):
        """Return ``(f, x, z0)``: the map, an input batch and a zero start."""
        f = TanhMap(
            self.width, self.dx, self.lipschitz, seed=self.seed, dtype=self.dtype
        )
        g = torch.Generator().manual_seed(self.seed + 1)
        x = torch.randn(self.batch, self.dx, generator=g, dtype=torch.float64).to(
            self.dtype
        )
        z0 = torch.zeros(self.batch, self.width, dtype=self.dtype)
        return f, x, z0


@st.composite
def revdeq_configs(
    draw,
    max_width: int = 12,
    max_steps: int = 8,
    dtypes: st.SearchStrategy = DTYPES,
    min_gap: float = 0.2,
    max_lipschitz: float = 0.95,
) -> RevCase:
    """DEQ problems over beta, width, contraction factor, dtype and step count."""
    return RevCase(
        seed=draw(SEEDS),
        beta=draw(betas(min_gap)),
        width=draw(st.integers(1, max_width)),
        dx=draw(st.integers(1, 4)),
        lipschitz=draw(st.floats(0.05, max_lipschitz, allow_nan=False)),
        dtype=draw(dtypes),
        steps=draw(st.integers(1, max_steps)),
        batch=draw(st.integers(1, 3)),
    )


def contractive_maps(max_width: int = 8, max_lipschitz: float = 0.9):
    """Contractive tanh maps in float64 (for fixed-point agreement and rates)."""
    return revdeq_configs(
        max_width=max_width, dtypes=st.just(torch.float64), max_lipschitz=max_lipschitz
    )
