"""Functional entry point: ``fixed_point(f, solver, z0, x, gradient=...)``."""

from __future__ import annotations

import torch

from ._problem import Problem, check_finite
from ._result import Solution
from .errors import InvalidInputError, UnknownOptionError
from .gradients import ImplicitIFT, ReversibleExact
from .gradients.base import AbstractGradient
from .solvers.base import AbstractFixedPointSolver
from .solvers.iterate import check_tolerances

#: Default state dtype (docs/theory/reversible.md: the reversible inverse rounds in the
#: state dtype).
DEFAULT_STATE_DTYPE = torch.float64


def default_gradient(solver: AbstractFixedPointSolver) -> AbstractGradient:
    """ReversibleExact for the reversible solver, ImplicitIFT otherwise."""
    return ReversibleExact() if solver.reversible else ImplicitIFT()


def check_objects(
    solver, gradient
) -> tuple[AbstractFixedPointSolver, AbstractGradient]:
    """Validate the solver and gradient objects (strings and flags are rejected)."""
    if isinstance(solver, str) or not isinstance(solver, AbstractFixedPointSolver):
        raise UnknownOptionError(
            f"solver must be a solver object, e.g. Reversible(beta=0.8), Picard(), "
            f"Relaxed(0.8), Anderson() or Broyden() from dynamics.solvers; got "
            f"{solver!r}"
        )
    if gradient is None:
        gradient = default_gradient(solver)
    if isinstance(gradient, str) or not isinstance(gradient, AbstractGradient):
        raise UnknownOptionError(
            f"gradient must be a gradient object, e.g. ReversibleExact(), Unrolled(), "
            f"ImplicitIFT(), DenseIFT(), Phantom() or JFB() from dynamics.gradients; "
            f"got {gradient!r}"
        )
    gradient.check_solver(solver)
    return solver, gradient


def prepare_z0(z0, x: torch.Tensor, state_dtype: torch.dtype) -> torch.Tensor:
    """``z0`` cast to the state dtype, or zeros shaped like ``x``."""
    if z0 is None:
        if x.dim() < 1:
            raise InvalidInputError("x must have a leading batch dimension")
        return torch.zeros(x.shape, dtype=state_dtype, device=x.device)
    if not isinstance(z0, torch.Tensor):
        raise InvalidInputError(f"z0 must be a tensor or None; got {type(z0).__name__}")
    if z0.dim() < 1 or (x.dim() >= 1 and z0.shape[0] != x.shape[0]):
        raise InvalidInputError(
            f"z0 {tuple(z0.shape)} and x {tuple(x.shape)} must share "
            "the leading batch dimension"
        )
    check_finite("z0", z0)
    return z0.to(state_dtype)


def fixed_point(
    f,
    solver: AbstractFixedPointSolver,
    z0: torch.Tensor | None,
    x: torch.Tensor,
    *,
    gradient: AbstractGradient | None = None,
    tol: float = 1e-3,
    max_steps: int = 50,
    throw: bool = True,
    state_dtype: torch.dtype | None = None,
) -> Solution:
    """Solve ``z = f(z, x)`` batch-first and wire gradients by ``gradient``.

    Args:
        f: an ``nn.Module`` with ``forward(z, x)`` (required for ReversibleExact), or a
            callable ``f(z, x)`` returning a tensor shaped like ``z``.
        solver: a solver object from :mod:`dynamics.solvers`.
        z0: initial state (batch-first) or None for zeros shaped like ``x``.
        x: injected input, batch-first.
        gradient: a gradient object from :mod:`dynamics.gradients`; default
            ``ReversibleExact()`` for the reversible solver, else ``ImplicitIFT()``.
        tol: relative-residual tolerance (docs/theory/reversible.md); 0 runs exactly
        ``max_steps``.
        max_steps: step cap (>= 1).
        throw: raise the named error when the solve (or, later, its backward) fails;
            with False, read ``solution.result`` / ``stats["result"]``.
        state_dtype: dtype of the iterate; default ``z0.dtype`` when given, else
            float64. ``f`` runs in its own dtype.

    Returns:
        :class:`dynamics.Solution` with ``value`` (B, ...), ``result`` and ``stats``
        (keys as for :class:`DEQLayer.last_stats`).
    """
    solver, gradient = check_objects(solver, gradient)
    tol, max_steps = check_tolerances(tol, max_steps)
    if not isinstance(x, torch.Tensor):
        raise InvalidInputError(f"x must be a tensor; got {type(x).__name__}")
    check_finite("x", x)
    if state_dtype is None:
        state_dtype = z0.dtype if isinstance(z0, torch.Tensor) else DEFAULT_STATE_DTYPE
    z0 = prepare_z0(z0, x, state_dtype)
    problem = Problem.build(f, x, state_dtype)
    value, stats = gradient.solve(
        problem, solver, z0, tol=tol, max_steps=max_steps, throw=bool(throw)
    )
    return Solution(value, stats["forward_result"], stats)
