"""Backpropagation through the solver's own iterations (the reference)."""

from __future__ import annotations

import dataclasses
from typing import final

import torch
from torch.utils.checkpoint import checkpoint as _checkpoint

from .._result import Result
from ..errors import InvalidInputError
from ..solvers.iterate import iterate
from .base import AbstractGradient, finish_forward, forward_stats, record_backward


@final
@dataclasses.dataclass(frozen=True)
class Unrolled(AbstractGradient):
    """Unrolled backprop: autograd through every step the forward solver took.

    Exact gradient of the N-step map actually run, for any solver; memory O(N) (every
    iterate and every activation of f is stored; with ``checkpoint=True`` each
    evaluation of f is recomputed in backward, so only the iterates are stored). The
    test oracle for REV-EXACT.

    Args:
        checkpoint: recompute the activations of each f call in backward.
        record_trajectory: also put the iterates in ``stats["trajectory"]`` (tests).
    """

    checkpoint: bool = False
    record_trajectory: bool = False

    def __post_init__(self):
        for name in ("checkpoint", "record_trajectory"):
            if not isinstance(getattr(self, name), bool):
                raise InvalidInputError(
                    f"Unrolled {name} must be True or False; got "
                    f"{getattr(self, name)!r}"
                )

    def solve(self, problem, solver, z0, *, tol, max_steps, throw):
        f = problem.bind()
        if self.checkpoint:
            inner = f

            def f(z):
                return _checkpoint(inner, z, use_reentrant=False)

        with torch.enable_grad():
            run = iterate(
                solver,
                f,
                z0,
                tol=tol,
                max_steps=max_steps,
                record_trajectory=self.record_trajectory,
            )
        stats = forward_stats(run)
        stats["nfe_backward"] = run.stats["nfe_forward"]  # one VJP per evaluation
        record_backward(stats, Result.successful)
        finish_forward(run, stats, tol, max_steps, throw)
        return run.z, stats
