"""Hypothesis strategies for the reversible DEQ: draw structure (seed, beta, width,
contraction factor, dtype, steps), then build the map with a seeded generator so that
shrinking acts on these parameters, never on raw arrays (style.md §13)."""

from __future__ import annotations

import dataclasses

import torch
from hypothesis import strategies as st

from dynamics.instances.torch_examples import TanhMap

SEEDS = st.integers(min_value=0, max_value=2**31 - 1)
DTYPES = st.sampled_from([torch.float64, torch.float32])


def betas(min_gap: float = 0.2) -> st.SearchStrategy[float]:
    """beta in (0.05, 1.95) with |1 - beta| >= min_gap (bounded, finite)."""
    low = st.floats(0.05, 1.0 - min_gap, allow_nan=False, allow_infinity=False)
    high = st.floats(1.0 + min_gap, 1.95, allow_nan=False, allow_infinity=False)
    return st.one_of(low, high)


@dataclasses.dataclass(frozen=True)
class RevCase:
    """A seeded E-TOY instance: f = tanh(W z + U x + b), ||W||_2 = lipschitz."""

    seed: int
    beta: float
    width: int
    dx: int
    lipschitz: float
    dtype: torch.dtype
    steps: int
    batch: int

    def build(self):
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
    """Reversible-DEQ problems over beta, width, contraction factor and dtype."""
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
