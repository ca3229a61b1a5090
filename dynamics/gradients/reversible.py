"""Exact gradient of the reversible iteration in memory independent of N."""

from __future__ import annotations

import dataclasses
from typing import final

from torch import nn

from .._result import raise_for
from ..errors import InvalidInputError
from ..solvers.iterate import describe_failure, should_raise
from ._reversible_function import (
    RECON_POLICIES,
    RevConfig,
    ReversibleFunction,
    Stats,
)
from .base import AbstractGradient


@final
@dataclasses.dataclass(frozen=True)
class ReversibleExact(AbstractGradient):
    """Reversible exact adjoint (McCallum, Arora & Foster 2025,
    docs/theory/reversible.md).

    Exact reverse-mode gradient of the N-step reversible iteration actually run (any f,
    any N, converged or not) with states reconstructed algebraically: memory
    independent of N, backward cost 2N evaluations of f plus 2N VJPs. Valid only with
    the :class:`Reversible` solver. ``f`` must be an ``nn.Module`` (its parameters are
    passed explicitly to the autograd Function) and deterministic (no dropout without
    replayed RNG, no BatchNorm inside f). The backward measures the reconstruction
    error of (y_0, z_0) into ``stats["reconstruction_error"]`` (B,); non-finite
    reconstructed states or adjoints give ``Result.nonfinite`` (raised as
    :class:`ReconstructionError` when ``throw``). Claims: REV-EXACT, REV-FD,
    REV-MEMORY, REV-NFE, REV-RECON. Scalar factor ``c(v) = 1``.

    Args:
        recon_threshold: absolute reconstruction error above which the backward
            reports ``reconstruction_error_exceeded`` (None: only measure). Default
            1.0: the early states are then wrong at the scale of the states.
        recon_policy: what to do above the threshold: "raise"
            (:class:`ReconstructionError`), "warn" (:class:`ReconstructionWarning`)
            or "ignore" (the code is still recorded).
        store_trajectory: test-only; also keep every (y_n, z_n) in
            ``stats["trajectory"]`` (O(N) memory) and report the per-step
            reconstruction error in ``stats["reconstruction_error_trace"]`` (B, N+1)
            (with ``use_stored_states``: the error of each single inverse step).
        use_stored_states: test-only, needs ``store_trajectory``; run the same adjoint
            recursion on the stored states instead of the reconstructed ones, which
            separates the exactness of the recursion from reconstruction error.
    """

    recon_threshold: float | None = 1.0
    recon_policy: str = "warn"
    store_trajectory: bool = False
    use_stored_states: bool = False

    requires_reversible = True

    def __post_init__(self):
        if self.recon_policy not in RECON_POLICIES:
            raise InvalidInputError(
                f"recon_policy must be one of {RECON_POLICIES}; got "
                f"{self.recon_policy!r}"
            )
        if self.use_stored_states and not self.store_trajectory:
            raise InvalidInputError(
                "use_stored_states=True needs store_trajectory=True"
            )
        if self.recon_threshold is not None and not float(self.recon_threshold) > 0:
            raise InvalidInputError(
                f"recon_threshold must be > 0 or None; got {self.recon_threshold!r}"
            )

    def solve(self, problem, solver, z0, *, tol, max_steps, throw):
        self.check_solver(solver)
        if not isinstance(problem.f, nn.Module):
            raise InvalidInputError(
                "ReversibleExact needs f to be an nn.Module, so that every parameter "
                "can be passed explicitly to the autograd Function (tensors captured "
                "by a plain function would silently get no gradient). Wrap your "
                "function in an nn.Module whose parameters are registered."
            )
        stats: dict = Stats()
        cfg = RevConfig(
            problem,
            solver,
            tol,
            max_steps,
            stats,
            throw=throw,
            recon_threshold=self.recon_threshold,
            recon_policy=self.recon_policy,
            store_trajectory=self.store_trajectory,
            use_stored_states=self.use_stored_states,
        )
        z = ReversibleFunction.apply(cfg, z0, problem.x, *problem.params)
        run = cfg.run
        if throw and should_raise(run.result, tol):
            raise_for(run.result, describe_failure(run, tol, max_steps))
        return z, stats
