"""Relaxed (damped / over-relaxed) iteration z <- (1 - beta) z + beta f(z)."""

from __future__ import annotations

import dataclasses
import math
from typing import final

import torch

from ..errors import InvalidInputError
from .base import AbstractFixedPointSolver, Map, State


def check_beta(name: str, beta: float, low: float = 0.0, high: float = 2.0) -> float:
    """Return ``beta`` as a float in the open interval ``(low, high)``."""
    if isinstance(beta, (str, bytes, bool)):
        raise InvalidInputError(f"{name} must be a number; got {beta!r}")
    try:
        b = float(beta)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{name} must be a number; got {beta!r}") from exc
    if not math.isfinite(b) or not low < b < high:
        raise InvalidInputError(
            f"{name} must lie in the open interval ({low:g}, {high:g}); got {beta!r}"
        )
    return b


@final
@dataclasses.dataclass(frozen=True)
class Relaxed(AbstractFixedPointSolver):
    """Relaxed iteration ``z_{n+1} = (1 - beta) z_n + beta f(z_n)``.

    For an ``L``-contraction it converges for ``0 < beta < 2 / (1 + L)`` with factor
    ``|1 - beta| + beta L``; 1 NFE per step. Authors' baseline: ``beta = 0.8``.

    Args:
        beta: relaxation in (0, 2); 1 is Picard.
    """

    beta: float = 0.8

    def __post_init__(self):
        object.__setattr__(self, "beta", check_beta("Relaxed beta", self.beta))

    def init(self, f: Map, z0: torch.Tensor) -> State:
        return {"fz": f(z0)}

    def step(self, f: Map, z: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        z_next = (1.0 - self.beta) * z + self.beta * state["fz"]
        return z_next, {"fz": f(z_next)}
