"""The algebraically reversible coupled iteration of RevDEQ
(docs/theory/reversible.md)."""

from __future__ import annotations

import dataclasses
import warnings
from typing import final

import torch

from ..errors import InvalidInputError
from .base import AbstractFixedPointSolver, Map, State
from .relaxed import check_beta

#: Warn when |1 - beta| is below this: each inverse step divides by 1 - beta, so
#: reconstruction error grows at least like 1 / |1 - beta| per step
#: (docs/theory/reversible.md).
BETA_WARN_GAP = 0.1


class ReversibilityWarning(UserWarning):
    """beta close to 1: the reversible step is nearly non-invertible."""


@final
@dataclasses.dataclass(frozen=True)
class Reversible(AbstractFixedPointSolver):
    """Reversible coupled iteration (McCallum, Arora & Foster 2025):

        y_{n+1} = (1 - beta) y_n + beta f(z_n)
        z_{n+1} = (1 - beta) z_n + beta f(y_{n+1})

    with ``y_0 = z_0``; the output is ``z_N``. Each step is exactly invertible for
    ``beta != 1`` (``inverse_step``), which is what lets :class:`ReversibleExact`
    backpropagate in memory independent of N. ``f(z_n)`` is cached, so N steps cost
    ``1 + 2N`` NFEs (docs/theory/reversible.md). Converges for an L-contraction when
    ``0 < beta < 2 / (1 + L)`` with factor ``|1 - beta| + beta L``
    (docs/theory/reversible.md).
    Claims: REV-INVERT, REV-NFE, REV-SAME-FP, REV-RATE.

    Args:
        beta: relaxation in (0, 2), beta != 1; default 0.8 (authors' library default).
            A warning (:class:`ReversibilityWarning`) is issued when |1 - beta| < 0.1.
    """

    beta: float = 0.8

    nfe_per_step = 2
    reversible = True

    def __post_init__(self):
        try:
            if isinstance(self.beta, (str, bytes, bool)):
                raise TypeError
            b = float(self.beta)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(
                f"Reversible beta must be a number; got {self.beta!r}"
            ) from exc
        if b == 1.0:
            raise InvalidInputError(
                "Reversible beta = 1 is not allowed: the step y_{n+1} = f(z_n) forgets "
                "y_n, so it cannot be inverted (the inverse divides by 1 - beta). Use "
                "beta in (0, 2) away from 1, e.g. 0.8 or 1.2."
            )
        b = check_beta("Reversible beta", b)
        if abs(1.0 - b) < BETA_WARN_GAP:
            warnings.warn(
                f"Reversible beta = {b:g} is within {BETA_WARN_GAP} of 1: each inverse "
                f"step amplifies rounding by 1/|1 - beta| = {1 / abs(1 - b):.3g}, so "
                "reconstructed states may be inaccurate; watch "
                "stats['reconstruction_error']",
                ReversibilityWarning,
                stacklevel=3,
            )
        object.__setattr__(self, "beta", b)

    def init(self, f: Map, z0: torch.Tensor) -> State:
        return {"fz": f(z0), "y": z0}

    def step(self, f: Map, z: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        b = self.beta
        y = (1.0 - b) * state["y"] + b * state["fz"]
        z_next = (1.0 - b) * z + b * f(y)
        return z_next, {"fz": f(z_next), "y": y}

    def forward_step(
        self, f: Map, y: torch.Tensor, z: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One step from ``(y_n, z_n)`` to ``(y_{n+1}, z_{n+1})`` (2 NFEs, no cache)."""
        b = self.beta
        y1 = (1.0 - b) * y + b * f(z)
        return y1, (1.0 - b) * z + b * f(y1)

    def undo(self, u_next: torch.Tensor, f_value: torch.Tensor) -> torch.Tensor:
        """One half of the inverse: ``u_n = (u_{n+1} - beta f_value) / (1 - beta)``.

        Both halves of :meth:`inverse_step` are this map (z_n from f(y_{n+1}), then
        y_n from f(z_n)); the reversible backward calls it too, between the two
        evaluations of f whose VJPs it needs, so there is one inverse in the code.
        """
        b = self.beta
        return (u_next - b * f_value) / (1.0 - b)

    def inverse_step(
        self, f: Map, y1: torch.Tensor, z1: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact algebraic inverse (docs/theory/reversible.md): ``z_n`` first (needs
        only ``y_{n+1}``),
        then ``y_n`` from the reconstructed ``z_n``."""
        z = self.undo(z1, f(y1))
        y = self.undo(y1, f(z))
        return y, z
