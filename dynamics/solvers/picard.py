"""Picard iteration z <- f(z)."""

from __future__ import annotations

import dataclasses
from typing import final

import torch

from .base import AbstractFixedPointSolver, Map, State


@final
@dataclasses.dataclass(frozen=True)
class Picard(AbstractFixedPointSolver):
    """Picard iteration ``z_{n+1} = f(z_n)``.

    Linear rate ``L`` for an ``L``-contraction; 1 NFE per step (the cached f(z) is the
    next iterate). Reference: docs/theory/reversible.md (baselines).
    """

    def init(self, f: Map, z0: torch.Tensor) -> State:
        return {"fz": f(z0)}

    def step(self, f: Map, z: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        del z
        z_next = state["fz"]
        return z_next, {"fz": f(z_next)}
