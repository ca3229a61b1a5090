"""Contract of a batched fixed-point solver for z = f(z) on torch tensors.

States are batch-first: ``z`` has shape ``(B, ...)`` and every example is an
independent fixed-point problem. The driver (:func:`dynamics.solvers.iterate`)
owns the loop, the stopping rule, per-example masking, NFE counting and the result
codes; a solver only knows how to take one step.

Subclass contract:

1. Implement ``init(f, z0) -> state``: a ``dict`` of tensors, **every one with the
   batch as its leading dimension**, that must contain ``"fz"`` = f(z0). The driver
   masks finished examples by selecting entries of this dict row by row, so nothing
   else (no Python counters, no batch-free tensors) may live in it.
2. Implement ``step(f, z, state) -> (z_next, state_next)``: one iteration, with
   ``state_next["fz"] == f(z_next)``; the driver uses that cached value for the
   residual, so the stopping rule costs no extra evaluation of ``f``.
3. Call ``f`` only through the argument (the driver counts every call as one NFE of the
   whole batch) and never mutate ``z`` or ``state`` in place (the unrolled gradient
   differentiates through the loop).
4. Declare ``nfe_per_step`` (calls of ``f`` per step) and ``nfe_init``.
5. Validate configuration once, in ``__post_init__`` (solvers are frozen dataclasses).

``terminate`` is concrete and shared: the stopping rule of
:mod:`dynamics.solvers.stopping` (``||z - f(z)|| <= tol * (1 + scale_0)`` with a scale
fixed at the start, so a diverging iterate can never look converged).
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import ClassVar

import torch

State = dict[str, torch.Tensor]
Map = Callable[[torch.Tensor], torch.Tensor]

#: Added to ||f(z)|| in the authors' relative residual (their constant). That residual
#: is reported, and is the stopping rule only when asked for by name
#: (:class:`dynamics.solvers.stopping.IterateRelativeTol`): it shrinks as the iterate
#: grows, so on its own it calls a diverging iterate converged.
RESIDUAL_EPS = 1e-5


def relative_residual(z: torch.Tensor, fz: torch.Tensor) -> torch.Tensor:
    """Per-example ``||z - f(z)||_2 / (1e-5 + ||f(z)||_2)``, shape ``(B,)``."""
    b = z.shape[0]
    num = torch.linalg.vector_norm((z - fz).reshape(b, -1), dim=1)
    den = torch.linalg.vector_norm(fz.reshape(b, -1), dim=1)
    return num / (RESIDUAL_EPS + den)


class AbstractFixedPointSolver(abc.ABC):
    """One step of a fixed-point iteration (contract: module docstring)."""

    #: Calls of ``f`` made by ``init`` and by each ``step``.
    nfe_init: ClassVar[int] = 1
    nfe_per_step: ClassVar[int] = 1
    #: True only for the coupled reversible iteration (the ReversibleExact gradient
    #: checks this capability; nothing probes with hasattr).
    reversible: ClassVar[bool] = False

    @abc.abstractmethod
    def init(self, f: Map, z0: torch.Tensor) -> State:
        """State at ``z0``; must hold ``"fz"`` = f(z0)."""

    @abc.abstractmethod
    def step(self, f: Map, z: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """One iteration: ``(z_next, state_next)``, ``state_next["fz"] = f(z_next)``."""

    def terminate(
        self, z: torch.Tensor, state: State, tol: float, scale: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(done, residual)``: per-example ``residual <= tol`` and the normalised
        residual of :func:`dynamics.solvers.stopping.stopping_residual`."""
        from .stopping import stopping_residual

        err = stopping_residual(z, state["fz"], scale, tol)
        return err <= tol, err
