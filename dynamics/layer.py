"""``DEQLayer``: a PyTorch module wrapping any ``f(z, x)`` as a DEQ layer."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from ._fixed_point import DEFAULT_STATE_DTYPE, check_objects, prepare_z0
from ._problem import Problem, check_finite
from .errors import InvalidInputError, reject_unknown
from .gradients.base import AbstractGradient
from .solvers.base import AbstractFixedPointSolver
from .solvers.iterate import check_tolerances
from .solvers.reversible import Reversible

_OPTIONS = (
    "solver",
    "gradient",
    "tol",
    "max_steps",
    "throw",
    "state_dtype",
    "eval_tol",
    "eval_max_steps",
)


class DEQOutput(NamedTuple):
    """What ``DEQLayer(x, return_stats=True)`` returns: the equilibrium and the stats
    of this very call (``last_stats`` is overwritten by the next call)."""

    value: torch.Tensor
    stats: dict


def _buffer_versions(module: nn.Module) -> dict[str, int]:
    return {n: b._version for n, b in module.named_buffers()}


def _check_no_running_stats(f: nn.Module) -> None:
    """Refuse modules that update running statistics in train mode (BatchNorm and
    friends) for the reversible gradient: every call of f would change the buffers,
    so the backward's re-evaluations of f would not see the forward's f."""
    for name, mod in f.named_modules():
        if isinstance(mod, nn.modules.batchnorm._NormBase) and mod.track_running_stats:
            raise InvalidInputError(
                f"f contains {type(mod).__name__} ({name or 'f'}) which updates its "
                "running statistics on every call in train mode; ReversibleExact "
                "re-evaluates f in backward and needs f to be a fixed function. Use "
                "LayerNorm / GroupNorm, track_running_stats=False, or another gradient"
            )


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
        state_dtype: dtype of the iterate (default float64, kept for the reversible
            inverse's rounding). The output is returned in the input's dtype
            (float32 in, float32 out); the cast is differentiable.
        eval_tol, eval_max_steps: tolerance and step cap in eval mode (default: the
            training values), as TorchDEQ's separate evaluation budget.

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
        eval_tol: float | None = None,
        eval_max_steps: int | None = None,
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
        self.eval_tol, self.eval_max_steps = check_tolerances(
            self.tol if eval_tol is None else eval_tol,
            self.max_steps if eval_max_steps is None else eval_max_steps,
        )
        if self.gradient.requires_reversible:
            _check_no_running_stats(f)
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

    def forward(
        self,
        x: torch.Tensor,
        z0: torch.Tensor | None = None,
        *,
        return_stats: bool = False,
    ) -> torch.Tensor | DEQOutput:
        """Equilibrium for input ``x`` (batch-first), from ``z0`` (default zeros
        shaped like ``x``), in ``x``'s dtype. In eval mode the solve uses
        ``eval_tol`` / ``eval_max_steps``. With ``return_stats=True`` returns a
        :class:`DEQOutput` ``(value, stats)`` with this call's stats."""
        if not isinstance(x, torch.Tensor):
            raise InvalidInputError(f"x must be a tensor; got {type(x).__name__}")
        check_finite("x", x)
        z0 = prepare_z0(z0, x, self.state_dtype)
        problem = Problem.build(self.f, x, self.state_dtype)
        tol, steps = (
            (self.tol, self.max_steps)
            if self.training
            else (self.eval_tol, self.eval_max_steps)
        )
        before = _buffer_versions(self.f) if self.gradient.requires_reversible else {}
        z, stats = self.gradient.solve(
            problem, self.solver, z0, tol=tol, max_steps=steps, throw=self.throw
        )
        if before and _buffer_versions(self.f) != before:
            raise InvalidInputError(
                "f changed its buffers during the solve (a module updating running "
                "statistics in train mode?); ReversibleExact needs f to be a fixed "
                "function. Put f in eval mode for those modules or use another gradient"
            )
        self.last_stats = stats
        if x.dtype.is_floating_point and z.dtype != x.dtype:
            z = z.to(x.dtype)
        return DEQOutput(z, stats) if return_stats else z

    def extra_repr(self) -> str:
        return (
            f"solver={self.solver}, gradient={self.gradient}, tol={self.tol:g}, "
            f"max_steps={self.max_steps}, eval_tol={self.eval_tol:g}, "
            f"eval_max_steps={self.eval_max_steps}, throw={self.throw}, "
            f"state_dtype={self.state_dtype}"
        )
