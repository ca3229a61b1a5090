"""``DEQLayer``: a PyTorch module wrapping any ``f(z, x)`` as a DEQ layer."""

from __future__ import annotations

import torch
from torch import nn

from ._fixed_point import DEFAULT_STATE_DTYPE, check_objects, prepare_z0
from ._problem import Problem, check_finite
from .errors import InvalidInputError, reject_unknown
from .gradients.base import AbstractGradient
from .solvers.base import AbstractFixedPointSolver
from .solvers.iterate import check_tolerances
from .solvers.reversible import Reversible

_OPTIONS = ("solver", "gradient", "tol", "max_steps", "throw", "state_dtype")


class DEQLayer(nn.Module):
    """Deep equilibrium layer ``z* = f(z*, x)`` with a chosen solver and gradient.

    The solver (what is solved) and the gradient method (how gradients flow) are
    objects fixed at construction; unknown options raise :class:`UnknownOptionError`.
    Works batch-first on CPU and CUDA (``f`` and ``x`` on the same device). The state
    lives in ``state_dtype`` (default float64) while ``f`` runs in its own dtype; the
    output is in the state dtype (``.to(x.dtype)`` is differentiable).

    Per-example masking: each example stops at its own tolerance, takes no step after
    that, and its step count is ``last_stats["nstep"][b]``; ``tol=0`` runs exactly
    ``max_steps`` steps for every example (fixed-step mode: ``max_steps_reached`` is
    then recorded but not raised).

    Args:
        f: ``nn.Module`` with ``forward(z, x)`` returning a tensor shaped like ``z``
            (deterministic; no BatchNorm inside f for ReversibleExact).
        solver: default ``Reversible(beta=0.8)``.
        gradient: default ``ReversibleExact()`` for the reversible solver, else
            ``ImplicitIFT()``.
        tol: relative residual tolerance (default 1e-3).
        max_steps: step cap (default 50).
        throw: raise on a failed forward or backward (default True); with False the
            failure is only in ``last_stats["result"]``.
        state_dtype: dtype of the iterate (default float64).

    Attributes:
        last_stats: stats of the latest call (updated in place by its backward):
            ``result`` (worst of forward and backward :class:`Result`),
            ``forward_result``, ``backward_result`` (None until backward),
            ``nstep`` (B,), ``residual`` (B,), ``residual_trace`` (B, N),
            ``nfe_forward`` (int), ``nfe_backward`` (int; filled by backward for
            ReversibleExact / ImplicitIFT / DenseIFT), ``reconstruction_error`` (B,)
            (ReversibleExact, after backward; else None), ``example_result`` (B,),
            ``converged`` (B,), and method-specific keys (``backward_residual``,
            ``backward_nstep``, ``nvjp_backward``, ``trajectory``).
    """

    def __init__(
        self,
        f: nn.Module,
        solver: AbstractFixedPointSolver | None = None,
        gradient: AbstractGradient | None = None,
        *,
        tol: float = 1e-3,
        max_steps: int = 50,
        throw: bool = True,
        state_dtype: torch.dtype = DEFAULT_STATE_DTYPE,
        **options,
    ):
        super().__init__()
        for name in options:
            raise reject_unknown("DEQLayer option", name, _OPTIONS)
        if not isinstance(f, nn.Module):
            raise InvalidInputError(
                f"f must be an nn.Module with forward(z, x); got {type(f).__name__} "
                "(use dynamics.fixed_point for plain callables)"
            )
        if solver is None:
            solver = Reversible(beta=0.8)
        self.solver, self.gradient = check_objects(solver, gradient)
        self.tol, self.max_steps = check_tolerances(tol, max_steps)
        if not isinstance(throw, bool):
            raise InvalidInputError(f"throw must be True or False; got {throw!r}")
        if (
            not isinstance(state_dtype, torch.dtype)
            or not state_dtype.is_floating_point
        ):
            raise InvalidInputError(
                f"state_dtype must be a floating torch.dtype; got {state_dtype!r}"
            )
        self.throw = throw
        self.state_dtype = state_dtype
        self.f = f
        self.last_stats: dict = {}

    def forward(self, x: torch.Tensor, z0: torch.Tensor | None = None) -> torch.Tensor:
        """Equilibrium for input ``x`` (batch-first), from ``z0`` (default zeros
        shaped like ``x`` in the state dtype)."""
        if not isinstance(x, torch.Tensor):
            raise InvalidInputError(f"x must be a tensor; got {type(x).__name__}")
        check_finite("x", x)
        z0 = prepare_z0(z0, x, self.state_dtype)
        problem = Problem.build(self.f, x, self.state_dtype)
        z, stats = self.gradient.solve(
            problem,
            self.solver,
            z0,
            tol=self.tol,
            max_steps=self.max_steps,
            throw=self.throw,
        )
        self.last_stats = stats
        return z

    def extra_repr(self) -> str:
        return (
            f"solver={self.solver}, gradient={self.gradient}, tol={self.tol:g}, "
            f"max_steps={self.max_steps}, throw={self.throw}, "
            f"state_dtype={self.state_dtype}"
        )
